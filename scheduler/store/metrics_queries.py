"""What /metrics reads from the run history: one GROUP BY over finished runs (counts, money and
cumulative histogram buckets per label set) for a window of end times, the live counts behind the
gauges, and the runs not finished yet that have cost money (what they cost so far is the caller's sum).

``label_keys`` are the run labels the cost-allocation series carry (``team`` unless configured): each
is one more group column, ``label_0``, ``label_1``, ...

Spot: a run's cost is split by market per attempt (``spot_cost``, ``spot_s``: its spot attempts' cost
and seconds, null for a run never on spot). Only a run that fell back from spot to on-demand has
attempts on both markets; for it (rare) a correlated subquery sums the spot attempts in its
``extra["attempt_log"]`` (core/attempts.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Mapping, NamedTuple, Sequence

from sqlalchemy import Float, and_, case, cast, extract, func, or_, select, true
from sqlalchemy.engine import RowMapping

from . import schema as db
from ..core.runs import CACHED, FINAL_STATES, LIVE_STATES, QUEUED, SKIPPED
from ..core.spot import Market

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


def _spot_attempts(dialect: str, field: str):
    """SUM(``field``) over the run's logged spot attempts (a correlated scalar subquery; null when none)."""
    r = db.runs.c
    if dialect == "sqlite":
        log = func.json_each(r.extra, "$.attempt_log").table_valued("value")
        value, market = func.json_extract(log.c.value, f"$.{field}"), func.json_extract(log.c.value, "$.market")
        is_array = func.json_type(r.extra, "$.attempt_log") == "array"
    else:
        log = func.json_array_elements(r.extra["attempt_log"]).table_valued("value")
        value, market = cast(log.c.value.op("->>")(field), Float), log.c.value.op("->>")("market")
        is_array = func.json_typeof(r.extra["attempt_log"]) == "array"
    return case((is_array, select(func.sum(value)).where(market == Market.SPOT.value).scalar_subquery()), else_=None)


def spot_columns(dialect: str) -> tuple:
    """(spot cost, spot seconds) of a run; null for a run never on spot. A run that ends on spot ran on spot
    throughout (one that falls back to on-demand stays there), so its cost is spot and its seconds are its
    cost over its spot price; only a run that fell back (on-demand now, preempted before) has its log read."""
    r = db.runs.c
    spot = r.market == Market.SPOT.value
    fell_back = and_(r.market != Market.SPOT.value, r.preemptions > 0)
    cost = case((spot, r.cost_usd), (fell_back, _spot_attempts(dialect, "cost_usd")), else_=None)
    seconds = case((and_(spot, r.price_per_hour > 0), r.cost_usd * 3600.0 / r.price_per_hour), (spot, r.duration_s),
                   (fell_back, _spot_attempts(dialect, "seconds")), else_=None)
    return cost, seconds


def label_columns(label_keys: Sequence[str]) -> list:
    """The run labels as text columns ``label_<i>`` ('' where a run lacks one)."""
    return [func.coalesce(db.runs.c.labels[key].as_string(), "").label(f"label_{i}")
            for i, key in enumerate(label_keys)]


def history_query(dialect: str, where, buckets: Mapping[str, Sequence[float]],
                  label_keys: Sequence[str] = DEFAULT_LABEL_KEYS):
    """One GROUP BY over finished runs: counts, money and, per ``HISTORY_VALUES`` key, cumulative buckets."""
    r = db.runs.c
    util = _clip01(func.coalesce(r.gpu_util_avg, r.cpu_util_avg))
    spot_cost, spot_s = spot_columns(dialect)
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
        func.sum(r.preemptions).label("preemptions"),
        func.sum(spot_cost).label("spot_cost"),
        func.sum(spot_s).label("spot_s"),
        func.sum(spot_cost * (1.0 - util)).label("spot_idle"),
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
    """Runs holding a slot, and queued runs already preempted (few: bounded by the shapes' capacity), with
    what their cost so far is made of: ``market`` and ``price_per_hour`` (the current attempt's),
    ``started_at``, ``cost_usd`` (earlier attempts), ``preemptions`` and ``extra`` (the attempt log,
    when the current attempt started)."""
    r = db.runs.c
    cols = [func.coalesce(r.job, "").label("job"), func.coalesce(r.pipeline, "").label("pipeline"),
            func.coalesce(r.step, "").label("step"), func.coalesce(r.shape, "").label("shape"),
            *label_columns(label_keys), r.state, r.market, r.price_per_hour, r.started_at, r.cost_usd, r.preemptions,
            r.extra]
    where = or_(r.state.in_(LIVE_STATES), and_(r.state == QUEUED, or_(r.cost_usd > 0, r.preemptions > 0)))
    with store.engine.connect() as conn:
        return list(conn.execute(select(*cols).where(where)).mappings())
