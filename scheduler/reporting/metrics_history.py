"""The run history as metric totals: the store's GROUP BY rows over finished runs
(``store.metrics_queries.history_rows``) folded into ``Totals`` (counters and cumulative histogram
buckets per label set) that later scrapes add to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..store.metrics_queries import GROUP_KEYS, HISTORY_VALUES

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
assert tuple(HISTOGRAMS) == HISTORY_VALUES
BUCKETS = {key: spec.buckets for key, spec in HISTOGRAMS.items()}  # what the store's history query counts


@dataclass
class Totals:
    """Counter and histogram values per label set, summed over a set of runs."""

    runs: dict = field(default_factory=dict)  # (job, pipeline, state) -> n
    spend: dict = field(default_factory=dict)  # (job, pipeline, step, shape, team) -> $
    idle: dict = field(default_factory=dict)  # (job, shape, team) -> $
    saved: dict = field(default_factory=dict)  # (job, pipeline, step) -> $
    cache: dict = field(default_factory=dict)  # (pipeline, step, hit|miss) -> n
    hists: dict = field(default_factory=lambda: {k: {} for k in HISTOGRAMS})  # key -> labels -> [n, sum, b...]

    def fold(self, rows: Iterable[Mapping[str, Any]]) -> "Totals":
        for m in rows:
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
