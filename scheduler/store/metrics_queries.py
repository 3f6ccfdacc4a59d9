"""What /metrics reads from the run history: one GROUP BY over finished runs (counts, money and
cumulative histogram buckets per label set) for a window of end times, the live counts behind the
gauges, and the runs not finished yet that have cost money (what they cost so far is the caller's sum).

``label_keys`` are the run labels the cost-allocation series carry (``team`` unless configured): each
is one more group column, ``label_0``, ``label_1``, ..."""

from __future__ import annotations

from datetime import datetime
from typing import Mapping, NamedTuple, Sequence

from sqlalchemy import Float, and_, case, cast, extract, func, or_, select, true
from sqlalchemy.engine import RowMapping

from . import schema as db
from ..core.runs import CACHED, FINAL_STATES, LIVE_STATES, QUEUED, SKIPPED

GROUP_KEYS = ("job", "pipeline", "step", "shape", "state", "cache_result")  # then one label_<i> per label key
DEFAULT_LABEL_KEYS = ("team",)
HISTORY_VALUES = ("dur", "cpu", "mem", "gpu", "wait")  # what a row has <key>_n, <key>_sum, <key>_b<i> columns for


def _seconds_between(later, earlier, dialect: str):
    if dialect == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return cast(extract("epoch", later - earlier), Float)  # numeric on PostgreSQL: make it a float


def _clip01(expr):
    return case((expr > 1.0, 1.0), (expr < 0.0, 0.0), else_=expr)


def cache_result():
    """'hit' / 'miss' as the pipeline runner records a step's cache lookup; null for runs that did none."""
    return db.runs.c.extra[("cache", "result")].as_string()


def _sources(dialect: str) -> dict:
    r = db.runs.c
    ran = and_(r.started_at.is_not(None), r.state.not_in((CACHED, SKIPPED)))  # reused / skipped steps ran nothing
    return {
        "dur": case((ran, r.duration_s), else_=None),
        "cpu": r.cpu_util_avg,
        "mem": r.mem_peak_bytes,
        "gpu": r.gpu_util_avg,
        "wait": case((ran, _seconds_between(r.started_at, r.queued_at, dialect)), else_=None),
    }


def label_columns(label_keys: Sequence[str]) -> list:
    """The run labels as text columns ``label_<i>`` ('' where a run lacks one)."""
    return [func.coalesce(db.runs.c.labels[key].as_string(), "").label(f"label_{i}")
            for i, key in enumerate(label_keys)]


def history_query(dialect: str, where, buckets: Mapping[str, Sequence[float]],
                  label_keys: Sequence[str] = DEFAULT_LABEL_KEYS):
    """One GROUP BY over finished runs: counts, money and, per ``HISTORY_VALUES`` key, cumulative buckets."""
    r = db.runs.c
    util = _clip01(func.coalesce(r.gpu_util_avg, r.cpu_util_avg))
    cols = [
        func.coalesce(r.job, "").label("job"),
        func.coalesce(r.pipeline, "").label("pipeline"),
        func.coalesce(r.step, "").label("step"),
        func.coalesce(r.shape, "").label("shape"),
        r.state.label("state"),
        func.coalesce(cache_result(), "").label("cache_result"),
        *label_columns(label_keys),
        func.count().label("n"),
        func.sum(r.cost_usd).label("cost"),
        func.sum(r.saved_usd).label("saved"),
        func.sum(r.cost_usd * (1.0 - util)).label("idle"),
    ]
    for key, expr in _sources(dialect).items():
        cols.append(func.count(expr).label(f"{key}_n"))  # COUNT(x) skips nulls: runs without the value
        cols.append(func.sum(expr).label(f"{key}_sum"))
        cols.extend(func.sum(case((expr <= b, 1), else_=0)).label(f"{key}_b{i}") for i, b in enumerate(buckets[key]))
    group = cols[: len(GROUP_KEYS) + len(label_keys)]
    return select(*cols).where(r.state.in_(FINAL_STATES), where).group_by(*group)


def history_rows(store, buckets: Mapping[str, Sequence[float]], since: datetime | None = None,
                 until: datetime | None = None, unended: bool = False,
                 label_keys: Sequence[str] = DEFAULT_LABEL_KEYS) -> list[RowMapping]:
    """The aggregated finished runs that ended in [since, until) (either end open when None); with
    ``unended``, also those without an end time."""
    r = db.runs.c
    window = and_(true(), *([r.ended_at >= since] if since is not None else []),
                  *([r.ended_at < until] if until is not None else []))
    where = or_(window, r.ended_at.is_(None)) if unended else window
    with store.engine.connect() as conn:
        return list(conn.execute(history_query(store.dialect, where, buckets, label_keys)).mappings())


class LiveCounts(NamedTuple):
    by_state: dict[str, int]  # queued and live runs per state
    queued_by_shape: dict[str, int]  # queued runs per shape; ``unplaced`` names those without one
    in_use_by_shape: dict[str, int]  # live runs per shape


def live_counts(store, unplaced: str) -> LiveCounts:
    r = db.runs.c
    with store.engine.connect() as conn:
        states = dict(conn.execute(
            select(r.state, func.count()).where(r.state.in_((QUEUED,) + LIVE_STATES)).group_by(r.state)
        ).all())
        queued = dict(conn.execute(
            select(func.coalesce(r.shape, unplaced), func.count()).where(r.state == QUEUED).group_by(r.shape)
        ).all())
        in_use = dict(conn.execute(
            select(r.shape, func.count()).where(r.state.in_(LIVE_STATES), r.shape.is_not(None)).group_by(r.shape)
        ).all())
    return LiveCounts(states, queued, in_use)


def unfinished_spend_rows(store, label_keys: Sequence[str] = DEFAULT_LABEL_KEYS) -> list[RowMapping]:
    """Runs holding a slot, and queued runs already billed for a preempted attempt (few: bounded by the
    shapes' capacity), with what their cost so far is made of: ``price_per_hour``, ``started_at``,
    ``cost_usd`` (earlier attempts), ``preemptions`` and ``extra`` (when the current attempt started)."""
    r = db.runs.c
    cols = [func.coalesce(r.job, "").label("job"), func.coalesce(r.pipeline, "").label("pipeline"),
            func.coalesce(r.step, "").label("step"), func.coalesce(r.shape, "").label("shape"),
            *label_columns(label_keys), r.state, r.price_per_hour, r.started_at, r.cost_usd, r.preemptions, r.extra]
    where = or_(r.state.in_(LIVE_STATES), and_(r.state == QUEUED, r.cost_usd > 0))
    with store.engine.connect() as conn:
        return list(conn.execute(select(*cols).where(where)).mappings())
