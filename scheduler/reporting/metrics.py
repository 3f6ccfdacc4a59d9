"""Prometheus metrics (contract: DESIGN.md 'Metrics'): built from the store on each scrape.

``StoreCollector.collect()`` builds fresh metric families from the run history and the catalog.
History counters and histograms are aggregated in SQL; runs that ended more than ``settle_s`` ago
are folded once into running totals (so a scrape over a million runs scans only the recent ones),
runs that ended since are re-aggregated on every scrape (a run whose record is committed a little
after its end time is still counted, exactly once). Gauges (queue, slots, prices) are read fresh.
The daemon's own measurements (scheduler lag) live in ``DaemonMetrics`` on the same registry.

Runs still going accrue spend as a separate gauge, ``costwise_running_spend_dollars`` (what the
runs not finished yet have cost so far: price × elapsed, plus earlier preempted attempts), with
``costwise_running_burn_dollars_per_hour`` (their price per hour), not inside the spend counter:
a counter must never go down, and a run's bill when it ends (its recorded end time, its attempts)
can come out a little under an estimate taken a moment earlier; Prometheus reads any decrease as a
reset and counts the whole lifetime spend again. ``costwise_spend_dollars_total`` stays exactly the
finished runs' cost (what `costwise report` says); spend so far is the sum of the two series.

Only the leader serves what is read from the catalog (``leader``, e.g. the daemon's lock): a standby
exports ``costwise_leader 0`` and its own measurements only, so ``sum()`` over leader and standby is
the leader's figures. The cost-allocation labels on the spend series are ``labels`` (metrics_labels).
Serve a registry with ``render(registry)`` (or ``metrics_app`` / ``serve_metrics``): it writes the
history families straight from the totals, about 5x faster than ``generate_latest`` on big histories.

Labels stay low-cardinality: the job's name is ``job_name``, never a run id.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import threading
import time
import weakref
from datetime import datetime, timedelta
from socketserver import ThreadingMixIn
from typing import Any, Callable, NamedTuple
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..core.runs import LIVE_STATES, QUEUED
from ..store.metrics_queries import history_rows, live_counts, unfinished_spend_rows
from .metrics_history import BUCKETS, HISTOGRAMS, Totals, combine, unfinished_spend  # noqa: F401  (HISTOGRAMS: public)
from .metrics_labels import DEFAULT, ENV as LABELS_ENV, AllocationLabel, allocation_labels
from .metrics_text import history_families, render_family, render_history

LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60)
SETTLE_S = 600.0  # a run's record is assumed committed within this long after its ended_at

NONE_SHAPE = "none"  # queue_depth's shape while a run is not placed yet
log = logging.getLogger(__name__)


class StoreCollector(Collector):
    """A prometheus-client collector over a Store (and its catalog)."""

    def __init__(self, store, clock=None, settle_s: float = SETTLE_S,
                 labels: tuple[AllocationLabel, ...] = DEFAULT, leader: Callable[[], bool] | None = None):
        self.store = store
        self.clock = clock or store.clock
        self.settle = timedelta(seconds=settle_s)
        self.label_keys = tuple(a.key for a in labels)
        self.alloc = tuple(a.name for a in labels)
        self.leader = leader or (lambda: True)  # without a daemon (a catalog's own metrics server): it serves
        self._lock = threading.Lock()
        self._settled = Totals()
        self._settled_until: datetime | None = None
        self._label_text: dict[tuple, str] = {}  # label values -> their escaped text, kept between scrapes
        self.last_duration_s = 0.0

    def describe(self):
        return []  # families are built per scrape; nothing to check at registration

    def _history_locked(self) -> tuple[Totals, Totals]:
        """(settled, recent): call with the lock held (the next fold mutates settled in place)."""
        cutoff = self.clock.now() - self.settle
        prices = {s.name: s.price_per_hour for s in self.store.list("Shape")}  # the spot savings' on-demand price
        if self._settled_until is None:
            self._settled.fold(history_rows(self.store, BUCKETS, until=cutoff, label_keys=self.label_keys), prices)
            self._settled_until = cutoff
        elif cutoff > self._settled_until:
            self._settled.fold(history_rows(self.store, BUCKETS, since=self._settled_until, until=cutoff,
                                            label_keys=self.label_keys), prices)
            self._settled_until = cutoff
        recent = history_rows(self.store, BUCKETS, since=self._settled_until, unended=True, label_keys=self.label_keys)
        return self._settled, Totals().fold(recent, prices)

    def prime(self) -> None:
        """Fold the settled history now (one SQL pass over it), so the first scrape is not the slow one."""
        try:
            with self._lock:
                self._history_locked()
        except Exception:  # noqa: BLE001 - a scrape will try again and report the error there
            log.warning("could not pre-aggregate the run history for /metrics", exc_info=True)

    def history(self) -> Totals:
        """Settled totals plus the recent runs (the unsettled window is recomputed each time)."""
        with self._lock:
            return combine(*self._history_locked())

    def collect(self):
        """The standard prometheus-client path (``render_text`` is the same data, written faster)."""
        started = time.perf_counter()
        leading = bool(self.leader())
        yield self._leader_family(leading)
        if leading:
            yield from history_families(self.history(), self.alloc)
            yield from self._gauges()
        self.last_duration_s = time.perf_counter() - started
        yield self._duration_family()

    def render_text(self) -> str:
        """The text exposition of ``collect()``, written straight from the totals (a 10,000-job history has
        ~10^6 samples; prometheus-client's per-sample formatting takes seconds for that)."""
        started = time.perf_counter()
        leading = bool(self.leader())
        parts = [render_family(self._leader_family(leading))]
        if leading:
            with self._lock:
                parts.extend(render_history(*self._history_locked(), self._label_text, self.alloc))
            parts.extend(render_family(f) for f in self._gauges())
        self.last_duration_s = time.perf_counter() - started
        parts.append(render_family(self._duration_family()))
        return "".join(parts)

    @staticmethod
    def _leader_family(leading: bool):
        leader = GaugeMetricFamily("costwise_leader", "1 on the daemon that serves the catalog's figures, 0 on a standby.")
        leader.add_metric([], 1.0 if leading else 0.0)
        return leader

    def _duration_family(self):
        duration = GaugeMetricFamily("costwise_metrics_collect_seconds", "Time the previous /metrics collection took.")
        duration.add_metric([], self.last_duration_s)
        return duration

    def _gauges(self):
        shapes = self.store.list("Shape")
        states, queued, in_use = live_counts(self.store, NONE_SHAPE)
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
        yield from self._unfinished()

    def _unfinished(self):
        rows = unfinished_spend_rows(self.store, self.label_keys)
        now = unfinished_spend(rows, self.clock.now(), len(self.label_keys))
        labels = ["job_name", "pipeline", "step", "shape", "market", *self.alloc]
        spend = GaugeMetricFamily("costwise_running_spend_dollars", "What runs not finished yet have cost so far (USD); "
                                  "spend so far = this + costwise_spend_dollars_total.", labels=labels)
        burn = GaugeMetricFamily("costwise_running_burn_dollars_per_hour", "Price per hour of the runs running now.",
                                 labels=labels)
        preempt = GaugeMetricFamily("costwise_running_preemptions", "Preempted attempts of runs not finished yet; "
                                    "all so far = this + costwise_preemptions_total.",
                                    labels=["job_name", "shape", *self.alloc])
        for family, values in ((spend, now.spend), (burn, now.burn), (preempt, now.preempt)):
            for key in sorted(values):
                family.add_metric(list(key), values[key])
        yield from (spend, burn, preempt)


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


class _Forward:
    """Puts a private registry's metrics (the daemon's own) into the main registry."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def describe(self):
        return []

    def collect(self):
        yield from self.registry.collect()


_FAST: "weakref.WeakKeyDictionary[CollectorRegistry, tuple[StoreCollector, CollectorRegistry]]" = weakref.WeakKeyDictionary()


def make_registry(store, registry: CollectorRegistry | None = None, clock=None, settle_s: float = SETTLE_S,
                  prime: bool = False, labels: tuple[AllocationLabel, ...] = DEFAULT,
                  leader: Callable[[], bool] | None = None) -> tuple[CollectorRegistry, DaemonMetrics, StoreCollector]:
    """A registry holding the store collector and the daemon's histograms (serve it with ``render``).

    With ``prime``, the settled history is folded in a background thread right away (a million runs
    take seconds; otherwise the first scrape pays for it)."""
    registry = registry if registry is not None else CollectorRegistry()
    collector = StoreCollector(store, clock, settle_s, labels, leader)
    own = CollectorRegistry()
    daemon = DaemonMetrics(own)
    registry.register(collector)
    registry.register(_Forward(own))
    _FAST[registry] = (collector, own)
    if prime:
        threading.Thread(target=collector.prime, name="metrics-prime", daemon=True).start()
    return registry, daemon, collector


def render(registry: CollectorRegistry) -> bytes:
    """The /metrics body for a registry from ``make_registry`` (fast path); any other: ``generate_latest``."""
    entry = _FAST.get(registry)
    if entry is None:
        return generate_latest(registry)
    collector, own = entry
    return collector.render_text().encode() + generate_latest(own)


def metrics_app(registry: CollectorRegistry):
    """A WSGI app serving ``render(registry)`` at /metrics (gzip when the scraper accepts it)."""

    def app(environ, start_response):
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found; metrics are at /metrics\n"]
        body = render(registry)
        headers = [("Content-Type", CONTENT_TYPE_LATEST)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # scrapes every few seconds would flood the log
        pass


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
                  clock=None, prime: bool = True, labels: tuple[AllocationLabel, ...] = DEFAULT) -> MetricsServer:
    """Serve /metrics for ``store`` on host:port (0: any free port) in a background thread."""
    registry, daemon, _ = make_registry(store, registry, clock, prime=prime, labels=labels)
    server = make_server(host, port, metrics_app(registry), _Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="metrics-http", daemon=True)
    thread.start()
    return MetricsServer(server, thread, registry, daemon)


def main(argv: list[str] | None = None) -> None:
    """Serve the metrics of a catalog without the daemon (COSTWISE_HOME / COSTWISE_DB pick it)."""
    from ..core.clock import SystemClock
    from ..core.errors import SpecError
    from ..store.settings import Settings
    from ..store.store import Store

    parser = argparse.ArgumentParser(prog="python -m scheduler.reporting.metrics", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9464)
    parser.add_argument("--labels", default=None, help=f"cost-allocation labels (default: ${LABELS_ENV}, else team)")
    args = parser.parse_args(argv)
    try:
        labels = allocation_labels(args.labels if args.labels is not None else os.environ.get(LABELS_ENV))
        settings = Settings.resolve()
    except SpecError as exc:
        parser.exit(2, f"{exc}\n")
    store = Store.open_home(settings, SystemClock())
    served = serve_metrics(store, args.host, args.port, labels=labels)
    print(f"serving http://{args.host}:{served.port}/metrics for {settings.db_url}", flush=True)
    try:
        served.thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        served.shutdown()
        store.close()


if __name__ == "__main__":
    main()
