"""Overhead of `costwise run --wait` on a trivial job vs running the same command directly.

Three medians of --repeats runs each: the command run directly; the same job through the engine
in-process (what the daemon pays per run: placement, store writes, private artifact copy, process
group, sampling, results.json); and through the whole `costwise run --wait` CLI, which also pays
for a fresh Python interpreter importing SQLAlchemy, pydantic and typer.

    python bench/run_overhead.py [--repeats 20] [--json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, median, report

from scheduler.store.catalog import Document, apply_documents
from scheduler.runtime.context import AppContext
from scheduler.store.settings import Settings

TRIVIAL = "print('trivial')\n"


def timed(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        script = Path(tmp) / "trivial.py"
        script.write_text(TRIVIAL)
        app = AppContext(Settings(home=home, db_url=f"sqlite:///{home / 'catalog.db'}"))
        apply_documents([
            Document({"kind": "Shape", "name": "local", "vcpus": 2, "memory_gib": 4, "price_per_hour": 0.1, "capacity": 4}, Path(tmp), "bench"),
            Document({"kind": "Job", "name": "trivial", "artifact": str(script)}, Path(tmp), "bench"),
        ], app.store, app.settings)
        direct = timed(lambda: subprocess.run([sys.executable, str(script)], check=True, capture_output=True), args.repeats)

        def through_engine():
            run = app.engine.submit("trivial")
            assert app.engine.run_to_completion(run).state == "SUCCEEDED"

        engine = timed(through_engine, args.repeats)
        env = {**os.environ, "COSTWISE_HOME": str(home)}
        cli = [sys.executable, "-m", "scheduler.cli", "run", "trivial", "--wait", "--json"]
        whole = timed(lambda: subprocess.run(cli, check=True, capture_output=True, env=env, cwd=ROOT), args.repeats)
        startup = timed(lambda: subprocess.run([sys.executable, "-m", "scheduler.cli", "runs", "--limit", "1", "--json"],
                                               check=True, capture_output=True, env=env, cwd=ROOT), args.repeats)
        app.close()
    report({
        "repeats": args.repeats,
        "direct_median_s": direct,
        "engine_median_s": engine,
        "cli_median_s": whole,
        "cli_startup_median_s": startup,
        "engine_vs_direct_ratio": engine / direct,
        "cli_vs_direct_ratio": whole / direct,
        "goal_ratio": 1.5,
    }, args.json)


if __name__ == "__main__":
    main()
