"""What the daemon's web page reads: one page of runs at a time (keyset on queued_at, id, newest first),
a run's latest events, spend per day and per label over a window. Every query is bounded (a LIMIT or
a GROUP BY over few groups): a page never loads the whole history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import Date, and_, cast, func, or_, select

from . import schema as db
from .store import _record
from ..core.runs import RunRecord

EVENTS_SHOWN = 200
LABEL_GROUPS_SHOWN = 50


@dataclass(frozen=True)
class RunsFilter:
    job: str | None = None
    pipeline: str | None = None
    state: str | None = None
    label: tuple[str, str] | None = None  # (key, value)
    since: datetime | None = None
    until: datetime | None = None


class Cursor(NamedTuple):
    """Where a page of runs ends: the (queued_at, id) of its last run; the next page starts after it."""

    queued_at: datetime
    run_id: str


class RunsPage(NamedTuple):
    runs: list[RunRecord]
    next: Cursor | None  # None on the last page


def runs_page(store, wanted: RunsFilter, after: Cursor | None = None, limit: int = 50) -> RunsPage:
    """One page of runs, newest first, from just after ``after``: an index walk on queued_at that stops
    at ``limit + 1`` rows (the extra one says whether there is a next page)."""
    r = db.runs.c
    query = select(db.runs)
    for column, value in ((r.job, wanted.job), (r.pipeline, wanted.pipeline), (r.state, wanted.state)):
        if value:
            query = query.where(column == value)
    if wanted.label:
        key, value = wanted.label
        query = query.where(r.labels[key].as_string() == value)
    if wanted.since:
        query = query.where(r.queued_at >= wanted.since)
    if wanted.until:
        query = query.where(r.queued_at < wanted.until)
    if after is not None:
        query = query.where(or_(r.queued_at < after.queued_at,
                                and_(r.queued_at == after.queued_at, r.id < after.run_id)))
    query = query.order_by(r.queued_at.desc(), r.id.desc()).limit(limit + 1)
    with store.engine.connect() as conn:
        runs = [_record(row) for row in conn.execute(query)]
    more = len(runs) > limit
    runs = runs[:limit]
    return RunsPage(runs, Cursor(runs[-1].queued_at, runs[-1].id) if more and runs else None)


def latest_events(store, run_id: str, limit: int = EVENTS_SHOWN) -> list[dict[str, Any]]:
    """A run's last ``limit`` events, oldest first."""
    e = db.run_events.c
    query = select(db.run_events).where(e.run_id == run_id).order_by(e.id.desc()).limit(limit)
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)][::-1]


def _day(column, dialect: str):
    return func.date(column) if dialect == "sqlite" else cast(func.date_trunc("day", column), Date)


def _as_date(value) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value if isinstance(value, date) else value.date()


class DaySpend(NamedTuple):
    day: date
    cost_usd: float
    saved_usd: float
    runs: int


def spend_by_day(store, since: datetime, until: datetime | None = None) -> list[DaySpend]:
    """Cost and savings of the runs that ended in [since, until), per UTC day (a range walk on ended_at)."""
    r = db.runs.c
    day = _day(r.ended_at, store.dialect)
    query = select(day, func.sum(r.cost_usd), func.sum(r.saved_usd), func.count()).where(r.ended_at >= since)
    if until is not None:
        query = query.where(r.ended_at < until)
    query = query.group_by(day).order_by(day)
    with store.engine.connect() as conn:
        return [DaySpend(_as_date(d), float(c or 0), float(s or 0), int(n)) for d, c, s, n in conn.execute(query)]


class LabelSpendRow(NamedTuple):
    value: str | None  # None: runs without that label
    cost_usd: float
    runs: int


def spend_by_label(store, key: str, since: datetime, limit: int = LABEL_GROUPS_SHOWN) -> list[LabelSpendRow]:
    """Cost of the runs that ended since ``since`` per value of one label, dearest first."""
    r = db.runs.c
    value = r.labels[key].as_string()
    cost = func.sum(r.cost_usd)
    query = (select(value, cost, func.count()).where(r.ended_at >= since).group_by(value)
             .order_by(cost.desc()).limit(limit))
    with store.engine.connect() as conn:
        return [LabelSpendRow(v, float(c or 0), int(n)) for v, c, n in conn.execute(query)]


def pipeline_runs_page(store, pipeline: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The latest pipeline runs (a LIMIT on the queued_at index)."""
    return store.pipeline_runs.list(pipeline=pipeline, limit=limit)
