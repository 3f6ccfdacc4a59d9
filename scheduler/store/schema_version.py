"""The catalog's schema version, apart from schema.py so that what reads a catalog without SQLAlchemy
(run_rows.read_sqlite_runs) checks the same number schema.ensure_schema stamps."""

SCHEMA_VERSION = 1
