"""The store's read queries over runs: listings, the dispatch round's queue and slots, a job's
duration history and a run's events (a mixin of Store: one table, read only)."""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any, Iterator, Sequence

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Engine

from . import schema as db
from .run_rows import record_from_row
from ..core.runs import LIVE_STATES, SUCCEEDED, RunRecord

HISTORY_RUNS = 200  # finished runs of a job looked at when estimating its duration per shape


class RunQueries:
    engine: Engine

    def list_runs(
        self,
        job: str | None = None,
        state: str | Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        pipeline_run: str | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[RunRecord]:
        query = select(db.runs)
        if job:
            query = query.where(db.runs.c.job == job)
        if state:
            query = query.where(db.runs.c.state.in_([state] if isinstance(state, str) else list(state)))
        if since:
            query = query.where(db.runs.c.queued_at >= since)
        if until:
            query = query.where(db.runs.c.queued_at < until)
        if pipeline_run:
            query = query.where(db.runs.c.pipeline_run == pipeline_run)
        order = (db.runs.c.queued_at.desc(), db.runs.c.id.desc()) if newest_first else (db.runs.c.queued_at, db.runs.c.id)
        query = query.order_by(*order)
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(query)]

    def queued_oldest_first(self, page: int = 16, limit: int = 200) -> Iterator[RunRecord]:
        """Queued runs, oldest first, read a page at a time (keyset on queued_at, id): a dispatch
        round that fills its free slots after a few runs does not read a long backlog."""
        after: tuple[datetime, str] | None = None
        while limit > 0:
            query = select(db.runs).where(db.runs.c.state == "QUEUED")
            if after is not None:
                at, run_id = after
                query = query.where(or_(db.runs.c.queued_at > at, and_(db.runs.c.queued_at == at, db.runs.c.id > run_id)))
            query = query.order_by(db.runs.c.queued_at, db.runs.c.id).limit(min(page, limit))
            with self.engine.connect() as conn:
                rows = [_record(r) for r in conn.execute(query)]
            yield from rows
            if len(rows) < min(page, limit):
                return
            limit -= len(rows)
            after = (rows[-1].queued_at, rows[-1].id)

    def any_queued(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(db.runs.c.id).where(db.runs.c.state == "QUEUED").limit(1)).first() is not None

    def in_use_by_shape(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(db.runs.c.shape, func.count()).where(db.runs.c.state.in_(LIVE_STATES)).group_by(db.runs.c.shape)
            )
            return {shape: n for shape, n in rows if shape}

    def duration_history(self, job: str) -> dict[str, tuple[float, int]]:
        """(median duration, number of runs) of this job's recent successful runs, per shape."""
        query = (
            select(db.runs.c.shape, db.runs.c.duration_s)
            .where(db.runs.c.job == job, db.runs.c.state == SUCCEEDED, db.runs.c.duration_s.is_not(None))
            .order_by(db.runs.c.ended_at.desc())
            .limit(HISTORY_RUNS)
        )
        per_shape: dict[str, list[float]] = {}
        with self.engine.connect() as conn:
            for shape, seconds in conn.execute(query):
                per_shape.setdefault(shape, []).append(seconds)
        return {shape: (statistics.median(v), len(v)) for shape, v in per_shape.items()}

    def events(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(db.run_events).where(db.run_events.c.run_id == run_id).order_by(db.run_events.c.id)
            )
            return [dict(r._mapping) for r in rows]

    def count_live_runs(self, job: str | None = None, pipeline: str | None = None) -> int:
        query = select(func.count()).select_from(db.runs).where(db.runs.c.state.in_(("QUEUED",) + LIVE_STATES))
        if job:
            query = query.where(db.runs.c.job == job)
        if pipeline:
            query = query.where(db.runs.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            count = conn.execute(query).scalar_one()
            if pipeline:
                count += conn.execute(
                    select(func.count()).select_from(db.pipeline_runs).where(
                        db.pipeline_runs.c.pipeline == pipeline, db.pipeline_runs.c.state.in_(("QUEUED", "RUNNING"))
                    )
                ).scalar_one()
            return count


def _record(row) -> RunRecord:
    return record_from_row(row._mapping)
