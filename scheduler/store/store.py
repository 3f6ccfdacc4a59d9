"""The catalog and run history behind one narrow interface (SQLAlchemy Core; SQLite or PostgreSQL)."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from sqlalchemy import and_, bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from . import schema as db
from .pipeline_runs import PipelineRunStore
from .run_queries import RunQueries
from .run_rows import record_from_row
from ..core.errors import NotFound, SpecError
from ..core.runs import LIVE_STATES, RunRecord

if TYPE_CHECKING:
    from ..core.specs import Spec

log = logging.getLogger(__name__)


class Store(RunQueries):
    def __init__(self, engine: Engine, clock):
        self.engine = engine
        self._writer = engine.execution_options(costwise_write=True)  # transactions that write
        # SQLite has one writer at a time and its busy handler sleeps in growing steps while it
        # waits; threads of one process queue on a lock instead, which hands over at once
        self._write_lock = threading.Lock() if engine.dialect.name == "sqlite" else None
        self.clock = clock

    def write_lock(self):
        """The in-process lock writers of this catalog share (a no-op on PostgreSQL)."""
        return self._write_lock or contextlib.nullcontext()

    @contextlib.contextmanager
    def write(self):
        """A write transaction (BEGIN IMMEDIATE on SQLite)."""
        if self._write_lock is None:
            with self._writer.begin() as conn:
                yield conn
            return
        with self._write_lock, self._writer.begin() as conn:
            yield conn

    @classmethod
    def open(cls, url: str, clock) -> "Store":
        engine = db.make_engine(url)
        db.ensure_schema(engine)
        return cls(engine, clock)

    @classmethod
    def open_home(cls, settings, clock) -> "Store":
        """The store ``settings`` name, creating the home folder first (the SQLite default lives there)."""
        settings.home.mkdir(parents=True, exist_ok=True)
        return cls.open(settings.db_url, clock)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    # -- catalog -------------------------------------------------------------------------------
    def apply(self, specs: Sequence[Spec], delete_first: Iterable[tuple[str, str]] = ()) -> list[str]:
        """Upsert all specs in one transaction; returns 'created' / 'updated' / 'unchanged' for each."""
        now = self.clock.now()
        outcomes = []
        with self.write() as conn:
            for kind, name in delete_first:
                conn.execute(delete(db.catalog).where(db.catalog.c.kind == kind, db.catalog.c.name == name))
            for spec in specs:
                doc = spec_to_doc(spec)
                key = and_(db.catalog.c.kind == spec.kind, db.catalog.c.name == spec.name)
                row = conn.execute(select(db.catalog.c.spec, db.catalog.c.version).where(key)).first()
                if row is None:
                    conn.execute(
                        insert(db.catalog).values(
                            kind=spec.kind, name=spec.name, spec=doc, version=1, created_at=now, updated_at=now
                        )
                    )
                    outcomes.append("created")
                elif row.spec != doc:
                    conn.execute(update(db.catalog).where(key).values(spec=doc, version=row.version + 1, updated_at=now))
                    outcomes.append("updated")
                else:
                    outcomes.append("unchanged")
        return outcomes

    def get(self, kind: str, name: str) -> Spec | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(db.catalog.c.spec).where(db.catalog.c.kind == kind, db.catalog.c.name == name)
            ).first()
        return _stored_spec(row.spec, kind, name) if row else None

    def require(self, kind: str, name: str) -> Spec:
        spec = self.get(kind, name)
        if spec is None:
            known = self.names(kind)
            hint = f"; known: {', '.join(known[:10])}" if known else f"; no {kind} is declared"
            raise NotFound(f"{kind.lower()} {name!r} is not in the catalog{hint}")
        return spec

    def names(self, kind: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.scalars(select(db.catalog.c.name).where(db.catalog.c.kind == kind).order_by(db.catalog.c.name)))

    def list(self, kind: str) -> list[Spec]:
        """Every valid entry of a kind; one stored under older bounds is skipped with a warning, so
        it cannot stop the daemon or a listing (reading it by name says why: `get`)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(db.catalog.c.name, db.catalog.c.spec).where(db.catalog.c.kind == kind).order_by(db.catalog.c.name)
            ).all()
        specs = []
        for row in rows:
            try:
                specs.append(_stored_spec(row.spec, kind, row.name))
            except SpecError as exc:
                log.warning("skipping %s", exc)
        return specs

    def catalog_version(self) -> tuple:
        """Changes whenever anything in the catalog changes (for caches and schedule sync)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(func.count(), func.max(db.catalog.c.updated_at), func.sum(db.catalog.c.version))
            ).first()
        return tuple(row)

    def delete(self, kind: str, name: str) -> bool:
        with self.write() as conn:
            result = conn.execute(delete(db.catalog).where(db.catalog.c.kind == kind, db.catalog.c.name == name))
        return result.rowcount > 0

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, run: RunRecord, message: str | None = None) -> RunRecord:
        """Insert a run; a run with the same fire_key as an existing one is not inserted again and
        the existing one is returned (a schedule fire or an alert repeated after a crash)."""
        now = self.clock.now()
        try:
            with self.write() as conn:
                # parameters apart from the statement: one compiled INSERT reused, no per-call cache key
                conn.execute(insert(db.runs), run.as_row())
                conn.execute(insert(db.run_events), {"run_id": run.id, "at": now, "state": run.state, "message": message})
        except IntegrityError:
            if run.fire_key is None:
                raise
            with self.engine.connect() as conn:
                row = conn.execute(select(db.runs).where(db.runs.c.fire_key == run.fire_key)).first()
            if row is None:
                raise
            return _record(row)
        return run

    def get_run(self, run_id: str) -> RunRecord:
        with self.engine.connect() as conn:
            row = conn.execute(_GET_RUN, {"_run_id": run_id}).first()
        if row is None:
            raise NotFound(f"run {run_id!r} is not in the history")
        return _record(row)

    def update_run(
        self, run_id: str, *, expect: Sequence[str] | None = None, message: str | None = None,
        match: dict[str, Any] | None = None, **values: Any
    ) -> bool:
        """Change a run; with ``expect``, only if it is in one of those states (compare-and-set), and
        with ``match``, only if those columns still hold those values (e.g. the same attempt)."""
        return self.update_runs([(run_id, expect, message, values)], match)[0]

    def update_runs(self, changes: Sequence[tuple[str, Sequence[str] | None, str | None, dict[str, Any]]],
                    match: dict[str, Any] | None = None) -> list[bool]:
        """Several update_run calls (run id, expect, message, values) in one transaction, each its own
        compare-and-set; whether each changed its run."""
        if not changes:
            return []
        done, events = [], []
        with self.write() as conn:
            now = self.clock.now()
            for run_id, expect, message, values in changes:
                changed = conn.execute(_update_statement(expect, match), {**values, "_run_id": run_id}).rowcount > 0
                done.append(changed)
                if changed and (message or "state" in values):
                    events.append({"run_id": run_id, "at": now, "state": values.get("state"), "message": message})
            if events:
                conn.execute(insert(db.run_events), events)
        return done

    def claim_slot(self, run_id: str, shape: str, capacity: int, **values: Any) -> bool:
        """Move a QUEUED run to STARTING on ``shape`` if the shape still has a free slot (atomic)."""
        return bool(self.claim_slots([(run_id, shape, capacity, values)]))

    def claim_slots(self, claims: Sequence[tuple[str, str, int, dict[str, Any]]]) -> set[str]:
        """Claims (run id, shape, capacity, values) of one dispatch round in one transaction, each as
        claim_slot makes it: QUEUED -> STARTING only while its shape still has a free slot, counted
        once per shape and kept up to date as the claims take slots. Returns the ids claimed."""
        shapes = sorted({shape for _, shape, _, _ in claims})
        claimed: set[str] = set()
        with self.write() as conn:
            if conn.dialect.name == "postgresql":
                for shape in shapes:  # in name order: two claimers never wait on each other's locks
                    conn.execute(select(func.pg_advisory_xact_lock(func.hashtext("costwise-shape:" + shape))))
            busy = dict(conn.execute(
                select(db.runs.c.shape, func.count()).where(db.runs.c.shape.in_(shapes), db.runs.c.state.in_(LIVE_STATES))
                .group_by(db.runs.c.shape)).all())
            now, events = self.clock.now(), []
            for run_id, shape, capacity, values in claims:
                if busy.get(shape, 0) >= capacity:
                    continue
                if conn.execute(_update_by_id(("QUEUED",)),
                                {**values, "state": "STARTING", "shape": shape, "_run_id": run_id}).rowcount:
                    busy[shape] = busy.get(shape, 0) + 1
                    claimed.add(run_id)
                    events.append({"run_id": run_id, "at": now, "state": "STARTING", "message": f"placed on {shape}"})
            if events:
                conn.execute(insert(db.run_events), events)
        return claimed

    @property
    def pipeline_runs(self) -> PipelineRunStore:
        return PipelineRunStore(self.engine, self.write)

# the statements of the hot paths (a dispatch, a launch, an end), built once: building a WHERE
# clause costs more than SQLAlchemy's cached compile of it
_BY_ID = db.runs.c.id == bindparam("_run_id")
_GET_RUN = select(db.runs).where(_BY_ID)


@functools.lru_cache(maxsize=64)
def _update_by_id(expect: tuple[str, ...] | None):
    """UPDATE runs by id (with ``expect``, only in those states: a handful of sets, each built once)."""
    statement = update(db.runs).where(_BY_ID)
    return statement if expect is None else statement.where(db.runs.c.state.in_(expect))


def _update_statement(expect: Sequence[str] | None, match: dict[str, Any] | None):
    statement = _update_by_id(None if expect is None else tuple(expect))
    if not match:  # (only while those columns hold those values)
        return statement
    return statement.where(*(db.runs.c[name] == value for name, value in match.items()))


def _specs():
    """core.specs with every kind registered: its pydantic models are imported when a spec is read or
    written, not with the store (~0.1 s a command line that lists runs does not need)."""
    from ..core import budgets, pipelines, specs  # noqa: F401 - budgets and pipelines register their kinds

    return specs


def spec_to_doc(spec: Spec) -> dict:
    return _specs().spec_to_doc(spec)


def _stored_spec(doc: Any, kind: str, name: str) -> Spec:
    """A catalog row as a spec; a row written before today's bounds is a one-line SpecError."""
    try:
        return _specs().parse_spec(doc, kind)
    except SpecError as exc:
        raise SpecError(f"stored {kind} {name!r} is no longer valid: {exc}; apply it again",
                        exc.field, exc.value) from None


def _record(row) -> RunRecord:
    return record_from_row(row._mapping)
