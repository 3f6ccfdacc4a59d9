"""Synthetic run history for the report and metrics benchmarks: bulk-inserted straight into a SQLite catalog."""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

SHAPES = [  # name, vcpus, memory_gib, gpus, gpu_type, price_per_hour, capacity
    ("cpu-small", 2, 4, 0, None, 0.085, 64),
    ("cpu-medium", 4, 16, 0, None, 0.19, 32),
    ("cpu-highmem", 4, 32, 0, None, 0.27, 16),
    ("cpu-large", 16, 64, 0, None, 0.68, 16),
    ("cpu-xlarge", 32, 128, 0, None, 1.36, 8),
    ("gpu-t4", 8, 32, 1, "T4", 0.53, 8),
    ("gpu-a10", 8, 32, 1, "A10", 1.01, 8),
    ("gpu-a100", 12, 85, 1, "A100", 3.67, 4),
]
SPOT_DISCOUNT = 0.3
TEAMS = ["ml", "data", "platform", "search", "ads", "risk"]
STATES = np.array(["SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELED"])


def populate(url: str, runs: int, jobs: int, days: int = 30, seed: int = 7) -> dict:
    """Declare the shapes and ``jobs`` jobs, then insert ``runs`` finished runs; returns timings."""
    from scheduler.core.clock import SystemClock
    from scheduler.core.specs import JobSpec, ShapeSpec
    from scheduler.store.store import Store

    started = time.perf_counter()
    store = Store.open(url, SystemClock())
    shapes = [ShapeSpec(name=n, vcpus=c, memory_gib=m, gpus=g, gpu_type=t, price_per_hour=p, capacity=cap)
              for n, c, m, g, t, p, cap in SHAPES]
    rng = np.random.default_rng(seed)
    job_shape = rng.choice(len(SHAPES), size=jobs, p=[0.3, 0.2, 0.1, 0.1, 0.05, 0.1, 0.1, 0.05])
    job_team = rng.integers(0, len(TEAMS), size=jobs)
    job_pipeline = rng.random(jobs) < 0.3
    specs = []
    for j in range(jobs):
        s = SHAPES[job_shape[j]]
        specs.append(JobSpec(
            name=f"job-{j:05d}", artifact="synthetic.py",
            requirements={"cpus": max(1, s[1] // 2), "memory_gib": s[2] / 2, "gpus": s[3], "gpu_type": s[4]},
            labels={"team": TEAMS[job_team[j]], "project": f"p{j % 40}"},
        ))
    store.apply(shapes + specs)
    store.close()

    job = rng.integers(0, jobs, size=runs)
    spill = rng.random(runs) < 0.1  # a tenth of runs spilled to the next shape up
    shape = np.minimum(job_shape[job] + spill, len(SHAPES) - 1)
    shape[(job_shape[job] < 5) & (shape >= 5)] = 4  # CPU jobs never spill onto GPUs
    price = np.array([s[5] for s in SHAPES])[shape]
    mem_gib = np.array([s[2] for s in SHAPES], dtype=float)[shape]
    has_gpu = np.array([s[3] for s in SHAPES])[shape] > 0
    duration = rng.lognormal(mean=6.0, sigma=1.2, size=runs)  # median ~400 s
    cached = job_pipeline[job] & (rng.random(runs) < 0.25)
    state = STATES[rng.choice(4, size=runs, p=[0.9, 0.06, 0.02, 0.02])].astype(object)
    state[cached] = "CACHED"
    duration[cached] = 0.0
    cost = price * duration / 3600.0
    saved = np.where(cached, price * rng.lognormal(6.0, 1.0, size=runs) / 3600.0, 0.0)
    cpu = np.clip(rng.beta(2, 4, size=runs) * (1.0 + (job % 3 == 0)), 0, 1)
    mem = (mem_gib * np.clip(rng.beta(2, 5, size=runs), 0.01, 1) * 2**30).astype(np.int64)
    gpu = np.where(has_gpu, rng.beta(4, 2, size=runs), np.nan)
    t0 = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=days)
    offsets = np.sort(rng.random(runs)) * days * 86400
    wait = rng.exponential(20.0, size=runs)
    # drawn last, so the other columns are what they were before spot rows existed
    spot = ~cached & (rng.random(runs) < 0.2)  # a fifth of the runs ran on spot at 30 % of the price
    preempted = spot & (rng.random(runs) < 0.15)  # some of them preempted once, a third of the way in
    price = np.where(spot, price * SPOT_DISCOUNT, price)
    cost = price * duration / 3600.0
    base = np.datetime64(t0, "us")
    queued = base + (offsets * 1e6).astype("timedelta64[us]")
    start = queued + (wait * 1e6).astype("timedelta64[us]")
    end = start + (duration * 1e6).astype("timedelta64[us]")

    def fmt(a):
        return np.char.replace(np.datetime_as_string(a, unit="us"), "T", " ").tolist()

    q, s_, e = fmt(queued), fmt(start), fmt(end)
    names = [f"job-{j:05d}" for j in range(jobs)]
    labels = [json.dumps({"team": TEAMS[job_team[j]], "project": f"p{j % 40}"}) for j in range(jobs)]
    shape_names = [s[0] for s in SHAPES]
    shape_names_arr = np.array(shape_names, dtype=object)[shape]
    rows = []
    for i in range(runs):
        j = int(job[i])
        is_cached = bool(cached[i])
        rows.append((
            f"r-{i:010x}", names[j], state[i], f"pipe-{j % 50}" if job_pipeline[j] else None,
            "train" if job_pipeline[j] else None, None if is_cached else shape_names_arr[i],
            None if is_cached else "local", q[i], None if is_cached else s_[i], e[i], float(duration[i]),
            float(cost[i]), float(saved[i]), int(is_cached), None if is_cached else float(cpu[i]),
            None if is_cached else int(mem[i]), None if is_cached or np.isnan(gpu[i]) else float(gpu[i]),
            labels[j], None if is_cached else float(price[i]),
            "spot" if spot[i] else "on_demand", 2 if preempted[i] else 1, int(preempted[i]),
            float(duration[i]) / 6 if preempted[i] else 0.0,
            json.dumps({"attempt_log": _attempts(float(price[i]), float(duration[i]), bool(preempted[i]))})
            if spot[i] else None,
        ))
    conn = sqlite3.connect(url.split("///", 1)[1])
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executemany(
        "INSERT INTO runs (id, job, state, pipeline, step, shape, backend, queued_at, started_at, ended_at,"
        " duration_s, cost_usd, saved_usd, cache_hit, cpu_util_avg, mem_peak_bytes, gpu_util_avg, labels,"
        " price_per_hour, attempt, market, attempts, preemptions, lost_s, extra)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,?,?,?,?,?)",
        rows,
    )
    conn.commit()
    conn.close()
    return {"generate_s": time.perf_counter() - started, "total_cost_usd": float(cost.sum())}


def _attempts(price: float, duration: float, preempted: bool) -> list[dict]:
    """A spot run's extra["attempt_log"] (core/attempts.py's shape): one attempt, or a preempted one and the last."""
    cuts = [0.0, duration / 3, duration] if preempted else [0.0, duration]
    return [{"attempt": k + 1, "state": "PREEMPTED" if k + 2 < len(cuts) else "SUCCEEDED", "market": "spot",
             "price_per_hour": price, "seconds": b - a, "cost_usd": price * (b - a) / 3600.0,
             "lost_s": duration / 6 if k + 2 < len(cuts) else 0.0} for k, (a, b) in enumerate(zip(cuts, cuts[1:]))]


def existing_runs(path: Path) -> int:
    """How many runs the SQLite catalog at path holds (-1 when there is none to read)."""
    if not path.exists():
        return -1
    try:
        with sqlite3.connect(path) as conn:
            return conn.execute("select count(*) from runs").fetchone()[0]
    except sqlite3.Error:
        return -1


def ensure_catalog(path: Path, runs: int, jobs: int) -> float:
    """A synthetic catalog of `runs` runs at path: reused when it already holds them, else made
    afresh; returns the seconds spent generating (0 when reused)."""
    if existing_runs(path) == runs:
        return 0.0
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return round(populate(f"sqlite:///{path}", runs, jobs)["generate_s"], 2)


def add_catalog_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--db", type=Path, default=None, help="keep the synthetic catalog here and reuse it")


def catalog_for(args: argparse.Namespace, workdir: Path) -> tuple[str, dict]:
    """The catalog URL the options name (made when missing) and the figures describing it."""
    db_path = args.db or workdir / "catalog.db"
    generate_s = ensure_catalog(db_path, args.runs, args.jobs)  # 0 when reused
    return f"sqlite:///{db_path}", {"runs": args.runs, "jobs": args.jobs, "generate_s": generate_s}
