"""The run history as metric totals: one SQL GROUP BY over finished runs, folded into ``Totals``
(counters and cumulative histogram buckets per label set) that later scrapes add to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from sqlalchemy import Float, and_, case, cast, extract, func, select

from ..core.runs import CACHED, FINAL_STATES, SKIPPED
from ..store import schema as db

DURATION_BUCKETS = (1, 10, 30, 60, 300, 900, 1800, 3600, 14400, 43200, 86400)
RATIO_BUCKETS = (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
MEMORY_BUCKETS = tuple(float(2**20 * m) for m in (64, 256, 1024, 4096, 16384, 65536, 262144))
WAIT_BUCKETS = (0.5, 1, 5, 15, 60, 300, 900, 3600)


@dataclass(frozen=True)
class HistSpec:
    name: str  # metric name
    doc: str
    buckets: tuple
    by_job_only: bool = False  # labels (job_name,) instead of (job_name, shape)


HISTOGRAMS = {
    "dur": HistSpec("costwise_run_duration_seconds", "Run duration (started runs).", DURATION_BUCKETS),
    "cpu": HistSpec("costwise_run_cpu_utilization_ratio", "Run CPU use as a share of its shape's vCPUs.", RATIO_BUCKETS),
    "mem": HistSpec("costwise_run_memory_peak_bytes", "Peak resident memory of a run.", MEMORY_BUCKETS),
    "gpu": HistSpec("costwise_run_gpu_utilization_ratio", "Run GPU utilization (runs with a GPU).", RATIO_BUCKETS),
    "wait": HistSpec("costwise_queue_wait_seconds", "Time from queued to started.", WAIT_BUCKETS, by_job_only=True),
}
GROUP_KEYS = ("job", "pipeline", "step", "shape", "state", "team", "cache_result")


def _seconds_between(later, earlier, dialect: str):
    if dialect == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return cast(extract("epoch", later - earlier), Float)  # numeric on PostgreSQL: make it a float


def _clip01(expr):
    return case((expr > 1.0, 1.0), (expr < 0.0, 0.0), else_=expr)


def cache_result():
    """'hit' / 'miss' as the pipeline runner records a step's cache lookup; null for runs that did none."""
    return db.runs.c.extra[("cache", "result")].as_string()


def history_query(dialect: str, where):
    """One GROUP BY over finished runs: counts, money and cumulative histogram buckets."""
    r = db.runs.c
    util = _clip01(func.coalesce(r.gpu_util_avg, r.cpu_util_avg))
    ran = and_(r.started_at.is_not(None), r.state.not_in((CACHED, SKIPPED)))  # reused / skipped steps ran nothing
    sources = {
        "dur": case((ran, r.duration_s), else_=None),
        "cpu": r.cpu_util_avg,
        "mem": r.mem_peak_bytes,
        "gpu": r.gpu_util_avg,
        "wait": case((ran, _seconds_between(r.started_at, r.queued_at, dialect)), else_=None),
    }
    cols = [
        func.coalesce(r.job, "").label("job"),
        func.coalesce(r.pipeline, "").label("pipeline"),
        func.coalesce(r.step, "").label("step"),
        func.coalesce(r.shape, "").label("shape"),
        r.state.label("state"),
        func.coalesce(r.labels["team"].as_string(), "").label("team"),
        func.coalesce(cache_result(), "").label("cache_result"),
        func.count().label("n"),
        func.sum(r.cost_usd).label("cost"),
        func.sum(r.saved_usd).label("saved"),
        func.sum(r.cost_usd * (1.0 - util)).label("idle"),
    ]
    for key, spec in HISTOGRAMS.items():
        expr = sources[key]
        cols.append(func.count(expr).label(f"{key}_n"))  # COUNT(x) skips nulls: runs without the value
        cols.append(func.sum(expr).label(f"{key}_sum"))
        cols.extend(func.sum(case((expr <= b, 1), else_=0)).label(f"{key}_b{i}") for i, b in enumerate(spec.buckets))
    group = [c for c in cols[: len(GROUP_KEYS)]]
    return select(*cols).where(r.state.in_(FINAL_STATES), where).group_by(*group)


@dataclass
class Totals:
    """Counter and histogram values per label set, summed over a set of runs."""

    runs: dict = field(default_factory=dict)  # (job, pipeline, state) -> n
    spend: dict = field(default_factory=dict)  # (job, pipeline, step, shape, team) -> $
    idle: dict = field(default_factory=dict)  # (job, shape, team) -> $
    saved: dict = field(default_factory=dict)  # (job, pipeline, step) -> $
    cache: dict = field(default_factory=dict)  # (pipeline, step, hit|miss) -> n
    hists: dict = field(default_factory=lambda: {k: {} for k in HISTOGRAMS})  # key -> labels -> [n, sum, b...]

    def fold(self, rows: Iterable[Any]) -> "Totals":
        for row in rows:
            m = row._mapping
            job, pipeline, step, shape, state, team = (m[k] for k in GROUP_KEYS[:6])
            _add(self.runs, (job, pipeline, state), m["n"])
            _add(self.spend, (job, pipeline, step, shape, team), m["cost"] or 0.0)
            if m["idle"] is not None:
                _add(self.idle, (job, shape, team), m["idle"])
            if m["saved"]:
                _add(self.saved, (job, pipeline, step), m["saved"])
            if m["cache_result"] in ("hit", "miss"):
                _add(self.cache, (pipeline, step, m["cache_result"]), m["n"])
            for key, spec in HISTOGRAMS.items():
                n = m[f"{key}_n"]
                if not n:
                    continue
                values = [n, m[f"{key}_sum"] or 0.0] + [m[f"{key}_b{i}"] for i in range(len(spec.buckets))]
                labels = (job,) if spec.by_job_only else (job, shape)
                slot = self.hists[key].get(labels)
                if slot is None:
                    self.hists[key][labels] = values
                else:
                    for i, v in enumerate(values):
                        slot[i] += v
        return self


def _add(target: dict, key: tuple, value: float) -> None:
    target[key] = target.get(key, 0) + value


def _merged(a: dict, b: dict) -> dict:
    if not b:
        return a
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0) + value
    return out


def combine(settled: Totals, recent: Totals) -> Totals:
    out = Totals(
        runs=_merged(settled.runs, recent.runs),
        spend=_merged(settled.spend, recent.spend),
        idle=_merged(settled.idle, recent.idle),
        saved=_merged(settled.saved, recent.saved),
        cache=_merged(settled.cache, recent.cache),
        hists={},
    )
    for key, series in settled.hists.items():
        extra = recent.hists[key]
        merged = {labels: list(values) for labels, values in series.items()}
        for labels, values in extra.items():
            slot = merged.get(labels)
            merged[labels] = list(values) if slot is None else [a + b for a, b in zip(slot, values)]
        out.hists[key] = merged
    return out
