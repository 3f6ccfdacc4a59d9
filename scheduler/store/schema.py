"""Database engine and schema: SQLite (WAL) by default, PostgreSQL through COSTWISE_DB.

Migrations are additive: tables and nullable columns that a newer costwise added are created on
open, so a newer version opens an older catalog; a catalog from a *newer* version is refused.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.types import TypeDecorator

from ..core.errors import CatalogTooNew
from ..core.extras import Extra, require
from .schema_version import SCHEMA_VERSION


class UTCDateTime(TypeDecorator):
    """Stored as naive UTC everywhere; read back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=timezone.utc) if value is not None else None


metadata = MetaData()

meta = Table("costwise_meta", metadata, Column("key", String(64), primary_key=True), Column("value", Text))

catalog = Table(
    "catalog",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("spec", JSON, nullable=False),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("job", String(128), index=True),
    Column("state", String(16), nullable=False, index=True),
    Column("pipeline", String(128), index=True),
    Column("pipeline_run", String(32), index=True),
    Column("step", String(128)),
    Column("reason", Text),
    Column("shape", String(128), index=True),
    Column("backend", String(16)),
    Column("queued_at", UTCDateTime, index=True),
    Column("started_at", UTCDateTime),
    Column("ended_at", UTCDateTime, index=True),
    Column("duration_s", Float),
    Column("exit_code", Integer),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("saved_usd", Float, nullable=False, default=0.0),
    Column("cache_hit", Boolean, nullable=False, default=False),
    Column("reused_from", String(32)),
    Column("cpu_util_avg", Float),
    Column("mem_peak_bytes", BigInteger),
    Column("gpu_util_avg", Float),
    Column("artifacts_dir", Text),
    # server defaults: rows written by older versions, or by hand, read as on-demand with no attempts
    Column("market", String(16), nullable=False, default="on_demand", server_default="on_demand"),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("preemptions", Integer, nullable=False, default=0, server_default="0"),
    Column("lost_s", Float, nullable=False, default=0.0, server_default="0"),
    Column("preempt_requested_at", UTCDateTime),
    Column("spec", JSON),
    Column("overrides", JSON),
    Column("labels", JSON),
    Column("price_per_hour", Float),
    Column("placement", JSON),
    Column("handle", JSON),
    Column("deadline_at", UTCDateTime),
    Column("attempt", Integer, nullable=False, default=0),
    Column("cancel_requested_at", UTCDateTime),
    Column("fire_key", String(256)),
    Column("extra", JSON),
    Index("ux_runs_fire_key", "fire_key", unique=True),
)

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("pipeline", String(128), nullable=False, index=True),
    Column("state", String(16), nullable=False, index=True),
    Column("reason", Text),
    Column("queued_at", UTCDateTime, index=True),
    Column("started_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("saved_usd", Float, nullable=False, default=0.0),
    Column("parameters", JSON),
    Column("spec", JSON),
    Column("force", JSON),
    Column("trigger", String(64)),
    Column("cancel_requested_at", UTCDateTime),
    Column("fire_key", String(256)),
    Column("extra", JSON),
    Index("ux_pipeline_runs_fire_key", "fire_key", unique=True),
)

run_events = Table(
    "run_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
    Column("state", String(16)),
    Column("message", Text),
)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60}, pool_size=20, max_overflow=40)
        _sqlite_pragmas(engine)
        return engine
    if make_url(url).get_driver_name() == "psycopg":
        require("psycopg", Extra.POSTGRES, "a PostgreSQL catalog (--db postgresql+psycopg://...)")
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        # Writers (Store.writer) take the write lock up front with IMMEDIATE, so read-then-write
        # (claiming a slot) is atomic across processes instead of failing later with "database is
        # locked"; readers begin deferred and, under WAL, never wait for a writer.
        if conn.get_execution_options().get("costwise_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def ensure_schema(engine: Engine) -> None:
    """Create what is missing; refuse a catalog written by a newer costwise.

    Tables and columns are checked on every open, not only when the stored version differs: a
    catalog stamped with today's version can still lack a column (a column added without a version
    bump, or a half-applied migration), and the first query that reads it would fail far from here.
    """
    with engine.begin() as conn:
        found = _stored_version(conn)
        if found is not None and found > SCHEMA_VERSION:
            raise CatalogTooNew(
                f"the catalog at {engine.url.render_as_string(hide_password=True)} has schema "
                f"version {found}, newer than this costwise's schema version {SCHEMA_VERSION}: "
                "it was written by a newer costwise; upgrade costwise to open it"
            )
        metadata.create_all(conn)
        _add_missing_columns(conn)
        if found != SCHEMA_VERSION:
            conn.execute(meta.delete().where(meta.c.key == "schema_version"))
            conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))


def _stored_version(conn) -> int | None:
    if not inspect(conn).has_table("costwise_meta"):
        return None
    row = conn.execute(meta.select().where(meta.c.key == "schema_version")).first()
    return int(row.value) if row else None


def _add_missing_columns(conn) -> None:
    insp = inspect(conn)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in insp.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                ddl = column.type.compile(dialect=conn.dialect)
                if column.server_default is not None:  # old rows get the default, as new ones do
                    ddl += f" DEFAULT '{column.server_default.arg}'"
                # IF NOT EXISTS on PostgreSQL: two processes opening the same old catalog both add it
                guard = "IF NOT EXISTS " if conn.dialect.name == "postgresql" else ""
                conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN {guard}"{column.name}" {ddl}'))
