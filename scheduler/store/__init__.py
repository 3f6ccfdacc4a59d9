"""What is kept: the schema, the Store, catalog apply, content-addressed outputs and artifacts, the leader
lock and the settings that say where it all lives. Imports only ``core``."""
