"""The ``costwise`` command line (typer), the demo and the shipped examples."""
