"""Benchmark: the daemon's web page over a 100,000-run history (goal: first paint under 300 ms).

    .venv/bin/python bench/web_page.py [--runs 100000] [--jobs 2000] [--repeat 15] [--db PATH] [--json]

The history is bulk-inserted into a SQLite catalog first (timed apart); then a real `costwise daemon`
serves it and each page is fetched over HTTP as the browser does, median of --repeat fetches. The
runs page paints when both its shell (`/`) and its first view (`/web/f/runs`, the newest 50 runs) are
in: `first_paint_ms` is the sum of their medians. Filtered, older and other views are timed too.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import ROOT, median, report
from synthetic import add_catalog_options, catalog_for

GOAL_MS = 300.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_daemon(url: str, home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "COSTWISE_DB": url, "COSTWISE_HOME": str(home)}
    log = open(home / "daemon.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "scheduler.cli", "daemon", "--metrics-port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited {proc.returncode}: {(home / 'daemon.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
                if b'"leader": true' in resp.read():
                    return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the daemon did not come up in 300 s")


def fetch(url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as resp:
        body = resp.read()
        if resp.status != 200:
            raise SystemExit(f"{url}: {resp.status}")
    return (time.perf_counter() - started) * 1000.0, body


def timed(url: str, repeat: int) -> tuple[float, bytes]:
    """The median milliseconds of ``repeat`` fetches (after one untimed warm-up) and the last body."""
    fetch(url)
    times, body = [], b""
    for _ in range(repeat):
        ms, body = fetch(url)
        times.append(ms)
    return median(times), body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_catalog_options(parser)
    parser.set_defaults(runs=100_000, jobs=2_000)
    parser.add_argument("--repeat", type=int, default=15, help="fetches per page (the median is reported)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")

    tmp = tempfile.TemporaryDirectory(prefix="costwise-bench-web-")
    url, figures = catalog_for(args, Path(tmp.name))
    home = Path(tmp.name) / "home"
    home.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cold_started = time.perf_counter()
    proc = start_daemon(url, home, port)
    figures["daemon_start_s"] = round(time.perf_counter() - cold_started, 2)
    try:
        first_ms, _ = fetch(f"{base}/web/f/runs")  # the first view after start-up, caches cold
        shell_ms, _ = timed(f"{base}/", args.repeat)
        runs_ms, body = timed(f"{base}/web/f/runs", args.repeat)
        rows = body.count(b"<tr data-run=")
        older = re.search(rb'href="/\?before=([^"]+)"', body)
        figures.update(
            shell_ms=round(shell_ms, 2), runs_view_ms=round(runs_ms, 2), runs_view_first_ms=round(first_ms, 2),
            first_paint_ms=round(shell_ms + runs_ms, 2), runs_shown=rows,
            runs_view_bytes=len(body), goal_ms=GOAL_MS, within_goal=shell_ms + runs_ms < GOAL_MS,
        )
        views = {
            "older_page_ms": f"/web/f/runs?before={older.group(1).decode()}" if older else None,
            "filtered_job_ms": "/web/f/runs?job=job-00007",
            "filtered_label_ms": "/web/f/runs?label=team%3Dads",
            "filtered_state_ms": "/web/f/runs?state=TIMED_OUT&since=7d",
            "spend_view_ms": "/web/f/spend",
            "spend_view_90d_ms": "/web/f/spend?days=90",
            "shapes_view_ms": "/web/f/shapes",
        }
        for name, path in views.items():
            if path is not None:
                figures[name] = round(timed(base + path.replace("&amp;", "&"), args.repeat)[0], 2)
    finally:
        proc.terminate()
        proc.wait(30)
    report(figures, args.json)


if __name__ == "__main__":
    main()
