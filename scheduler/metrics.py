"""Prometheus metrics (contract: DESIGN.md 'Metrics'): built from the store on each scrape.

``StoreCollector.collect()`` builds fresh metric families from the run history and the catalog.
History counters and histograms are aggregated in SQL; runs that ended more than ``settle_s`` ago
are folded once into running totals (so a scrape over a million runs scans only the recent ones),
runs that ended since are re-aggregated on every scrape (a run whose record is committed a little
after its end time is still counted, exactly once). Gauges (queue, slots, prices) are read fresh.
The daemon's own measurements (scheduler lag) live in ``DaemonMetrics`` on the same registry.

Labels stay low-cardinality: the job's name is ``job_name``, never a run id.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, NamedTuple

from prometheus_client import CollectorRegistry, Histogram, make_wsgi_app, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import and_, case, extract, func, or_, select

from . import db
from .runs import FINAL_STATES, LIVE_STATES, QUEUED, SKIPPED

DURATION_BUCKETS = (1, 10, 30, 60, 300, 900, 1800, 3600, 14400, 43200, 86400)
RATIO_BUCKETS = (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
MEMORY_BUCKETS = tuple(float(2**20 * m) for m in (64, 256, 1024, 4096, 16384, 65536, 262144))
WAIT_BUCKETS = (0.5, 1, 5, 15, 60, 300, 900, 3600)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60)
SETTLE_S = 600.0  # a run's record is assumed committed within this long after its ended_at

NONE_SHAPE = "none"  # queue_depth's shape while a run is not placed yet


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
GROUP_KEYS = ("job", "pipeline", "step", "shape", "state", "team", "cache_hit")


def _seconds_between(later, earlier, dialect: str):
    if dialect == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return extract("epoch", later - earlier)


def _clip01(expr):
    return case((expr > 1.0, 1.0), (expr < 0.0, 0.0), else_=expr)


def history_query(dialect: str, where):
    """One GROUP BY over finished runs: counts, money and cumulative histogram buckets."""
    r = db.runs.c
    util = _clip01(func.coalesce(r.gpu_util_avg, r.cpu_util_avg))
    sources = {
        "dur": case((r.started_at.is_not(None), r.duration_s), else_=None),
        "cpu": r.cpu_util_avg,
        "mem": r.mem_peak_bytes,
        "gpu": r.gpu_util_avg,
        "wait": case((r.started_at.is_not(None), _seconds_between(r.started_at, r.queued_at, dialect)), else_=None),
    }
    cols = [
        func.coalesce(r.job, "").label("job"),
        func.coalesce(r.pipeline, "").label("pipeline"),
        func.coalesce(r.step, "").label("step"),
        func.coalesce(r.shape, "").label("shape"),
        r.state.label("state"),
        func.coalesce(r.labels["team"].as_string(), "").label("team"),
        r.cache_hit.label("cache_hit"),
        func.count().label("n"),
        func.sum(r.cost_usd).label("cost"),
        func.sum(r.saved_usd).label("saved"),
        func.sum(r.cost_usd * (1.0 - util)).label("idle"),
    ]
    for key, spec in HISTOGRAMS.items():
        expr = sources[key]
        cols.append(func.count(expr).label(f"{key}_n"))
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
            if step and state != SKIPPED:
                _add(self.cache, (pipeline, step, "hit" if m["cache_hit"] else "miss"), m["n"])
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


class StoreCollector:
    """A prometheus-client collector over a Store (and its catalog)."""

    def __init__(self, store, clock=None, settle_s: float = SETTLE_S):
        self.store = store
        self.clock = clock or store.clock
        self.settle = timedelta(seconds=settle_s)
        self._lock = threading.Lock()
        self._settled = Totals()
        self._settled_until: datetime | None = None
        self.last_duration_s = 0.0

    def describe(self):
        return []  # families are built per scrape; nothing to check at registration

    def _aggregate(self, where) -> list:
        query = history_query(self.store.dialect, where)
        with self.store.engine.connect() as conn:
            return list(conn.execute(query))

    def history(self) -> Totals:
        """Settled totals plus the recent runs (the unsettled window is recomputed each time)."""
        r = db.runs.c
        cutoff = self.clock.now() - self.settle
        with self._lock:
            if self._settled_until is None:
                self._settled.fold(self._aggregate(r.ended_at < cutoff))
                self._settled_until = cutoff
            elif cutoff > self._settled_until:
                self._settled.fold(self._aggregate(and_(r.ended_at >= self._settled_until, r.ended_at < cutoff)))
                self._settled_until = cutoff
            settled, since = self._settled, self._settled_until
            # Read under the lock: the next fold mutates histogram slots in place.
            recent = Totals().fold(self._aggregate(or_(r.ended_at >= since, r.ended_at.is_(None))))
            return _combine(settled, recent)

    def collect(self):
        started = time.perf_counter()
        totals = self.history()
        yield from _history_families(totals)
        yield from self._gauges()
        self.last_duration_s = time.perf_counter() - started
        duration = GaugeMetricFamily(
            "costwise_metrics_collect_seconds", "Time the previous /metrics collection took."
        )
        duration.add_metric([], self.last_duration_s)
        yield duration

    def _gauges(self):
        r = db.runs.c
        shapes = self.store.list("Shape")
        with self.store.engine.connect() as conn:
            states = dict(conn.execute(
                select(r.state, func.count()).where(r.state.in_((QUEUED,) + LIVE_STATES)).group_by(r.state)
            ).all())
            queued = dict(conn.execute(
                select(func.coalesce(r.shape, NONE_SHAPE), func.count()).where(r.state == QUEUED).group_by(r.shape)
            ).all())
            in_use = dict(conn.execute(
                select(r.shape, func.count()).where(r.state.in_(LIVE_STATES), r.shape.is_not(None)).group_by(r.shape)
            ).all())
        active = GaugeMetricFamily("costwise_runs_active", "Runs queued, starting or running now.", labels=["state"])
        for state in (QUEUED,) + LIVE_STATES:
            active.add_metric([state], states.get(state, 0))
        depth = GaugeMetricFamily("costwise_queue_depth", "Queued runs per shape ('none' while unplaced).", labels=["shape"])
        for name in sorted({s.name for s in shapes} | set(queued) | {NONE_SHAPE}):
            depth.add_metric([name], queued.get(name, 0))
        used = GaugeMetricFamily("costwise_shape_slots_in_use", "Runs holding a slot on a shape.", labels=["shape", "backend"])
        total = GaugeMetricFamily("costwise_shape_slots_total", "Runs a shape may hold at once.", labels=["shape", "backend"])
        price = GaugeMetricFamily(
            "costwise_shape_price_dollars_per_hour", "On-demand price of a shape.", labels=["shape", "backend"]
        )
        for s in shapes:
            used.add_metric([s.name, s.backend], in_use.get(s.name, 0))
            total.add_metric([s.name, s.backend], s.capacity)
            price.add_metric([s.name, s.backend], s.price_per_hour)
        yield from (active, depth, used, total, price)


def _combine(settled: Totals, recent: Totals) -> Totals:
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


def _history_families(t: Totals):
    families = (
        ("costwise_runs_total", "Finished runs by final state.", ["job_name", "pipeline", "state"], t.runs),
        ("costwise_spend_dollars_total", "Money spent on runs (USD).",
         ["job_name", "pipeline", "step", "shape", "team"], t.spend),
        ("costwise_idle_spend_dollars_total", "Spend on capacity runs did not use: cost × (1 − utilization).",
         ["job_name", "shape", "team"], t.idle),
        ("costwise_saved_dollars_total", "Money saved by reusing cached step outputs (USD).",
         ["job_name", "pipeline", "step"], t.saved),
        ("costwise_cache_lookups_total", "Step cache lookups by result.", ["pipeline", "step", "result"], t.cache),
    )
    for name, doc, labels, values in families:
        family = CounterMetricFamily(name, doc, labels=labels)
        for key in sorted(values):
            family.add_metric(list(key), values[key])
        yield family
    for key, spec in HISTOGRAMS.items():
        labels = ["job_name"] if spec.by_job_only else ["job_name", "shape"]
        family = HistogramMetricFamily(spec.name, spec.doc, labels=labels)
        bounds = [_le(b) for b in spec.buckets] + ["+Inf"]
        for label_values in sorted(t.hists[key]):
            n, total, *cumulative = t.hists[key][label_values]
            family.add_metric(list(label_values), list(zip(bounds, cumulative + [n])), total)
        yield family


def _le(bound: float) -> str:
    return repr(float(bound))


class DaemonMetrics:
    """What only the daemon can measure, observed as it happens (on the daemon's registry)."""

    def __init__(self, registry: CollectorRegistry):
        self.scheduler_lag = Histogram(
            "costwise_scheduler_lag_seconds",
            "How late the daemon acted on a due schedule or a dispatch tick.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )

    def observe_lag(self, seconds: float) -> None:
        self.scheduler_lag.observe(max(0.0, seconds))


def make_registry(store, registry: CollectorRegistry | None = None, clock=None,
                  settle_s: float = SETTLE_S) -> tuple[CollectorRegistry, DaemonMetrics, StoreCollector]:
    """A registry holding the store collector and the daemon's histograms."""
    registry = registry if registry is not None else CollectorRegistry()
    collector = StoreCollector(store, clock, settle_s)
    registry.register(collector)
    return registry, DaemonMetrics(registry), collector


def metrics_app(registry: CollectorRegistry):
    """A WSGI app serving the registry (mount it at /metrics)."""
    return make_wsgi_app(registry)


class MetricsServer(NamedTuple):
    server: Any
    thread: threading.Thread
    registry: CollectorRegistry
    daemon: DaemonMetrics

    @property
    def port(self) -> int:
        return self.server.server_port

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(store, host: str = "127.0.0.1", port: int = 9464, registry: CollectorRegistry | None = None,
                  clock=None) -> MetricsServer:
    """Serve /metrics for ``store`` on host:port (0: any free port) in a background thread."""
    registry, daemon, _ = make_registry(store, registry, clock)
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread, registry, daemon)


def main(argv: list[str] | None = None) -> None:
    """Serve the metrics of a catalog without the daemon (COSTWISE_HOME / COSTWISE_DB pick it)."""
    from .context import AppContext
    from .settings import Settings

    parser = argparse.ArgumentParser(prog="python -m scheduler.metrics", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9464)
    args = parser.parse_args(argv)
    ctx = AppContext(Settings.resolve())
    served = serve_metrics(ctx.store, args.host, args.port)
    print(f"serving http://{args.host}:{served.port}/metrics for {ctx.settings.db_url}", flush=True)
    try:
        served.thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        served.shutdown()
        ctx.close()


if __name__ == "__main__":
    main()
