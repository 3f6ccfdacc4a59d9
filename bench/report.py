"""Benchmark: `costwise report` over a large synthetic run history (goal: 1M runs in <= 10 s, <= 2 GiB).

    .venv/bin/python bench/report.py [--runs 1000000] [--jobs 2000] [--formats html,json,csv,parquet,focus]
                                     [--db PATH] [--json]

The history is bulk-inserted straight into a SQLite catalog first (timed apart). Each report is then
made by the real command line in its own process (`python -m scheduler.cli report ...`), so the
wall time includes interpreter start-up and imports, and the peak memory is that process's max RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, report
from synthetic import add_catalog_options, catalog_for

GOAL_WALL_S = 10.0
GOAL_PEAK_MIB = 2048.0


def run_report(url: str, fmt: str, out: Path, extra: list[str]) -> dict:
    env = {**os.environ, "COSTWISE_DB": url}
    cmd = [sys.executable, "-m", "scheduler.cli", "report", "--format", fmt, "--out", str(out), "--json", *extra]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"report --format {fmt} failed ({proc.returncode}): {stderr.decode()[-2000:]}")
    summary = json.loads(stdout)
    return {"wall_s": wall, "peak_mib": usage.ru_maxrss / 1024, "bytes": out.stat().st_size, "runs": summary["runs"],
            "cost_usd": summary["cost_usd"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_catalog_options(parser)
    parser.add_argument("--formats", default="html,json,csv,parquet,focus")
    parser.add_argument("--since", default=None, help="also pass --since to the report (e.g. 7d)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="costwise-bench-report-")
    url, figures = catalog_for(args, Path(tmp.name))
    from sqlalchemy import create_engine, text

    with create_engine(url).connect() as conn:
        truth = conn.execute(text("select sum(cost_usd) from runs where ended_at is not null")).scalar_one()
    extra = ["--since", args.since] if args.since else []
    out_dir = Path(tmp.name)
    for fmt in [f.strip() for f in args.formats.split(",") if f.strip()]:
        result = run_report(url, fmt, out_dir / f"report.{fmt}", extra)
        figures[f"{fmt}_wall_s"] = round(result["wall_s"], 2)
        figures[f"{fmt}_peak_mib"] = round(result["peak_mib"], 1)
        figures[f"{fmt}_file_mib"] = round(result["bytes"] / 2**20, 2)
        if not args.since:
            figures[f"{fmt}_cost_matches_records"] = int(round(result["cost_usd"], 2) == round(truth, 2))
        figures[f"{fmt}_runs"] = result["runs"]
    figures["goal_wall_s"] = GOAL_WALL_S
    figures["goal_peak_mib"] = GOAL_PEAK_MIB
    walls = [v for k, v in figures.items() if k.endswith("_wall_s") and k != "goal_wall_s"]
    peaks = [v for k, v in figures.items() if k.endswith("_peak_mib") and k != "goal_peak_mib"]
    figures["max_wall_s"] = max(walls) if walls else 0.0
    figures["max_peak_mib"] = max(peaks) if peaks else 0.0
    report(figures, args.json)
    tmp.cleanup()


if __name__ == "__main__":
    main()
