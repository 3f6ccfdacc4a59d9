"""The run history as metric totals: the store's GROUP BY rows over finished runs
(``store.metrics_queries.history_rows``) folded into ``Totals`` (counters and cumulative histogram
buckets per label set) that later scrapes add to; and what the runs not finished yet cost so far
(``unfinished_spend``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, NamedTuple

from ..core.runs import LIVE_STATES
from ..core.spot import Market
from ..store.metrics_queries import GROUP_KEYS, HISTORY_VALUES

ATTEMPT_STARTED_KEY = "attempt_started"  # extra[...] of a run relaunched after a preemption (core/attempts.py)
ATTEMPT_LOG_KEY = "attempt_log"  # extra[...]: the run's ended attempts (core/attempts.py)
ON_DEMAND, SPOT = Market.ON_DEMAND.value, Market.SPOT.value

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
    spend: dict = field(default_factory=dict)  # (job, pipeline, step, shape, market, *allocation labels) -> $
    idle: dict = field(default_factory=dict)  # (job, shape, market, *allocation labels) -> $
    preempt: dict = field(default_factory=dict)  # (job, shape, *allocation labels) -> preempted attempts
    spot_saved: dict = field(default_factory=dict)  # (job, shape, *allocation labels) -> $ on-demand less spot
    saved: dict = field(default_factory=dict)  # (job, pipeline, step) -> $
    cache: dict = field(default_factory=dict)  # (pipeline, step, hit|miss) -> n
    hists: dict = field(default_factory=lambda: {k: {} for k in HISTOGRAMS})  # key -> labels -> [n, sum, b...]

    def fold(self, rows: Iterable[Mapping[str, Any]], prices: Mapping[str, float] | None = None) -> "Totals":
        """Add the history rows; ``prices``: each shape's on-demand price now (the spot saving's yardstick;
        a shape no longer in the catalog counts no saving)."""
        label_keys: list[str] | None = None
        for m in rows:
            if label_keys is None:
                label_keys = [k for k in m.keys() if k.startswith("label_")]
            job, pipeline, step, shape, state = (m[k] for k in GROUP_KEYS[:5])
            labels = tuple(m[k] for k in label_keys)
            _add(self.runs, (job, pipeline, state), m["n"])
            self._money(m, job, pipeline, step, shape, labels, prices or {})
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

    def _money(self, m: Mapping[str, Any], job, pipeline, step, shape, labels: tuple, prices) -> None:
        """Spend and idle spend split by market (the on-demand series always, spot where a run used it),
        preempted attempts and the spot saving."""
        spot, idle, spot_idle = m["spot_cost"], m["idle"], m["spot_idle"]
        _add(self.spend, (job, pipeline, step, shape, ON_DEMAND, *labels), max((m["cost"] or 0.0) - (spot or 0.0), 0.0))
        if idle is not None:
            _add(self.idle, (job, shape, ON_DEMAND, *labels), max(idle - (spot_idle or 0.0), 0.0))
        if spot is not None:
            _add(self.spend, (job, pipeline, step, shape, SPOT, *labels), spot)
            if spot_idle is not None:
                _add(self.idle, (job, shape, SPOT, *labels), spot_idle)
            price = prices.get(shape)
            if price is not None:  # negative only if spot cost more than on-demand: no saving then
                _add(self.spot_saved, (job, shape, *labels), max(price * (m["spot_s"] or 0.0) / 3600.0 - spot, 0.0))
        if m["preemptions"]:
            _add(self.preempt, (job, shape, *labels), m["preemptions"])


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
        preempt=_merged(settled.preempt, recent.preempt),
        spot_saved=_merged(settled.spot_saved, recent.spot_saved),
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


class Unfinished(NamedTuple):
    spend: dict  # (job, pipeline, step, shape, market, *allocation labels) -> $ spent so far
    burn: dict  # the same labels -> $/h of the runs running now
    preempt: dict  # (job, shape, *allocation labels) -> preempted attempts so far


def unfinished_spend(rows: Iterable[Mapping[str, Any]], now: datetime, n_labels: int) -> Unfinished:
    """What runs not finished yet have cost so far: their earlier (preempted) attempts as billed, each on
    its market, plus price × elapsed of the attempt running now, as ``record_end`` will bill it; their
    price per hour; and their preempted attempts."""
    out = Unfinished({}, {}, {})
    for m in rows:
        labels = tuple(m[f"label_{i}"] for i in range(n_labels))
        head = (m["job"], m["pipeline"], m["step"], m["shape"])
        market = str(m["market"] or ON_DEMAND)
        _add(out.spend, (*head, market, *labels), 0.0)  # the run's series, even before it has cost anything
        if m["preemptions"]:  # earlier attempts billed (none before a first preemption)
            _add(out.preempt, (m["job"], m["shape"], *labels), m["preemptions"])
            for attempt_market, cost in _billed(m):
                _add(out.spend, (*head, attempt_market, *labels), cost)
        start = _attempt_start(m) if m["state"] in LIVE_STATES else None
        if start is not None:
            price = float(m["price_per_hour"] or 0.0)
            _add(out.spend, (*head, market, *labels), price * max((now - start).total_seconds(), 0.0) / 3600.0)
            _add(out.burn, (*head, market, *labels), price)
    return out


def _billed(m: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(market, cost) of the run's ended attempts, from its log; without one, its cost on its market."""
    log = (m["extra"] or {}).get(ATTEMPT_LOG_KEY)
    if not isinstance(log, list) or not log:
        return [(str(m["market"] or ON_DEMAND), float(m["cost_usd"] or 0.0))]
    return [(str(a.get("market") or ON_DEMAND), float(a.get("cost_usd") or 0.0)) for a in log if isinstance(a, dict)]


def _attempt_start(m: Mapping[str, Any]) -> datetime | None:
    """When the attempt running now started: its relaunch after a preemption, else the run's start."""
    mark = (m["extra"] or {}).get(ATTEMPT_STARTED_KEY) if m["preemptions"] else None
    if isinstance(mark, dict) and mark.get("after_preemptions") == m["preemptions"] and mark.get("at"):
        return datetime.fromisoformat(mark["at"])
    return m["started_at"]
