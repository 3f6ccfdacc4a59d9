"""Benchmark: one `/metrics` scrape with 10,000 jobs and 1,000,000 runs in the history: time and size.

    .venv/bin/python bench/metrics_scrape.py [--runs 1000000] [--jobs 10000] [--db PATH] [--json]

The history is bulk-inserted into a SQLite catalog (timed apart). Then /metrics is served by
`serve_metrics` (what the daemon mounts) and scraped over HTTP as Prometheus does: the first scrape
after start-up (folds the whole settled history in one SQL pass), then warm scrapes (only the runs
that ended in the last settle window are re-read), plain and gzip-encoded.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import report
from synthetic import add_catalog_options, catalog_for


def fetch(url: str, gzip_ok: bool) -> tuple[float, bytes, int]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"} if gzip_ok else {})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as resp:
        body = resp.read()
    elapsed = time.perf_counter() - started
    raw = gzip.decompress(body) if gzip_ok and body[:2] == b"\x1f\x8b" else body
    return elapsed, raw, len(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_catalog_options(parser)
    parser.add_argument("--warm", type=int, default=3, help="warm scrapes to time")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    from scheduler.core.clock import SystemClock
    from scheduler.reporting.metrics import serve_metrics
    from scheduler.store.store import Store

    tmp = tempfile.TemporaryDirectory(prefix="costwise-bench-metrics-")
    url, figures = catalog_for(args, Path(tmp.name))

    store = Store.open(url, SystemClock())
    served = serve_metrics(store, "127.0.0.1", 0, prime=False)  # time the first scrape itself
    endpoint = f"http://127.0.0.1:{served.port}/metrics"
    try:
        cold_s, body, _ = fetch(endpoint, gzip_ok=False)
        warm = [fetch(endpoint, gzip_ok=False) for _ in range(args.warm)]
        gz = [fetch(endpoint, gzip_ok=True) for _ in range(args.warm)]
    finally:
        served.shutdown()
        store.close()
    lines = body.decode().splitlines()
    figures.update(
        first_scrape_s=round(cold_s, 2),
        warm_scrape_s=round(statistics.median(t for t, _, _ in warm), 2),
        warm_scrape_gzip_s=round(statistics.median(t for t, _, _ in gz), 2),
        scrape_mib=round(len(body) / 2**20, 2),
        scrape_gzip_mib=round(gz[0][2] / 2**20, 2),
        samples=sum(1 for line in lines if line and not line.startswith("#")),
        job_names=len({line.split('job_name="', 1)[1].split('"', 1)[0] for line in lines if 'job_name="' in line}),
    )
    report(figures, args.json)
    tmp.cleanup()


if __name__ == "__main__":
    main()
