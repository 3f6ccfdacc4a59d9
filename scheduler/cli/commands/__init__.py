"""The `costwise` commands, one module a noun; importing a module registers its commands on ``cli.app``."""
