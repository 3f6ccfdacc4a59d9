"""Pipeline runs: the DAG-level records (their steps are ordinary runs, in the Store, with pipeline_run set)."""

from __future__ import annotations

from typing import Any, Callable, ContextManager, Sequence

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from . import schema as db
from ..core.errors import NotFound


class PipelineRunStore:
    """Pipeline runs: the DAG-level record (its steps are ordinary runs with pipeline_run set)."""

    def __init__(self, engine: Engine, write: Callable[[], ContextManager[Connection]]):
        self.engine = engine
        self.write = write  # the Store's write transaction (its lock on SQLite)

    def create(self, **values: Any) -> dict[str, Any]:
        try:
            with self.write() as conn:
                conn.execute(insert(db.pipeline_runs).values(**values))
        except IntegrityError:
            if not values.get("fire_key"):
                raise
            with self.engine.connect() as conn:
                row = conn.execute(select(db.pipeline_runs).where(db.pipeline_runs.c.fire_key == values["fire_key"])).first()
            if row is None:
                raise
            return dict(row._mapping)
        return self.get(values["id"])

    def get(self, prun_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(db.pipeline_runs).where(db.pipeline_runs.c.id == prun_id)).first()
        if row is None:
            raise NotFound(f"pipeline run {prun_id!r} is not in the history")
        return dict(row._mapping)

    def update(self, prun_id: str, *, expect: Sequence[str] | None = None, **values: Any) -> bool:
        cond = db.pipeline_runs.c.id == prun_id
        if expect is not None:
            cond = and_(cond, db.pipeline_runs.c.state.in_(list(expect)))
        with self.write() as conn:
            return conn.execute(update(db.pipeline_runs).where(cond).values(**values)).rowcount > 0

    def list(self, pipeline: str | None = None, state: str | Sequence[str] | None = None, limit: int | None = 50) -> list[dict[str, Any]]:
        query = select(db.pipeline_runs)
        if pipeline:
            query = query.where(db.pipeline_runs.c.pipeline == pipeline)
        if state:
            query = query.where(db.pipeline_runs.c.state.in_([state] if isinstance(state, str) else list(state)))
        query = query.order_by(db.pipeline_runs.c.queued_at.desc(), db.pipeline_runs.c.id.desc())
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
