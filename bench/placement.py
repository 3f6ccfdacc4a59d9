"""Placement throughput: 10,000 requests over 1,000 shapes (goal >= 50,000 decisions/s).

Shapes are 1,000 real VM sizes from ../shared/data/prices-azure.csv when it is there (else
synthetic), requests are real pod requests from the openb trace (else synthetic); a third of the
requests carry a duration history on a few shapes, which takes placement's per-class path.

    python bench/placement.py [--requests 10000] [--shapes 1000] [--json]
"""

from __future__ import annotations

import argparse
import csv
import random
import time
from datetime import datetime, timezone

from _common import SHARED_DATA, median, report

from scheduler.core.placement import PlacementRequest, ShapeIndex, place
from scheduler.core.specs import Requirements, ShapeSpec


def load_shapes(n: int, rng: random.Random) -> list[ShapeSpec]:
    path = SHARED_DATA / "prices-azure.csv"
    shapes: dict[str, ShapeSpec] = {}
    if path.exists():
        with open(path) as handle:
            for row in csv.DictReader(handle):
                gpus = float(row["AcceleratorCount"] or 0)
                if row["InstanceType"] in shapes or not row["Price"] or gpus and gpus < 1:
                    continue
                shapes[row["InstanceType"]] = ShapeSpec(
                    name=row["InstanceType"], vcpus=float(row["vCPUs"]), memory_gib=float(row["MemoryGiB"]),
                    gpus=gpus, gpu_type=row["AcceleratorName"] or None, price_per_hour=float(row["Price"]),
                    capacity=rng.randint(1, 8),
                )
        # every GPU size first (85% of the trace's pods ask for a GPU), then CPU sizes up to n
        ordered = sorted(shapes.values(), key=lambda s: (s.gpus == 0, s.name))
        shapes = {s.name: s for s in ordered[:n]}
    while len(shapes) < n:
        i = len(shapes)
        shapes[f"syn-{i}"] = ShapeSpec(name=f"syn-{i}", vcpus=2 ** rng.randint(0, 7), memory_gib=2 ** rng.randint(0, 9),
                                       price_per_hour=rng.uniform(0.01, 30), capacity=rng.randint(1, 8))
    return list(shapes.values())


def load_requests(n: int, rng: random.Random) -> list[Requirements]:
    path = SHARED_DATA / "trace-openb-pods.csv"
    pool = []
    if path.exists():
        with open(path) as handle:
            for row in csv.DictReader(handle):
                pool.append(Requirements(cpus=int(row["cpu_milli"]) / 1000, memory_gib=int(row["memory_mib"]) / 1024,
                                         gpus=int(row["num_gpu"])))
    if not pool:
        pool = [Requirements(cpus=rng.choice([1, 2, 4, 8]), memory_gib=rng.choice([1, 4, 16, 64])) for _ in range(500)]
    return [rng.choice(pool) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--shapes", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = random.Random(7)
    shapes = load_shapes(args.shapes, rng)
    index = ShapeIndex(shapes)
    reqs = load_requests(args.requests, rng)
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    requests, histories = [], []
    for i, r in enumerate(reqs):
        requests.append(PlacementRequest(job=f"job-{i % 500}", requirements=r, max_wait_s=600, queued_at=now))
        hist = {}
        if i % 3 == 0:
            fitting = [s for s in shapes if s.vcpus >= r.cpus and s.memory_gib >= r.memory_gib and s.gpus >= r.gpus]
            for s in rng.sample(fitting, min(3, len(fitting))):
                hist[s.name] = rng.uniform(60, 7200)
        histories.append(hist)
    in_use = {s.name: rng.randint(0, s.capacity) for s in shapes}
    snapshot = index.snapshot(in_use)  # one snapshot per dispatch round, as the daemon does
    timings, actions = [], {}
    for _ in range(args.repeats):
        start = time.perf_counter()
        for req, hist in zip(requests, histories):
            decision = place(req, snapshot, hist, now)
            actions[decision.action] = actions.get(decision.action, 0) + 1
        timings.append(time.perf_counter() - start)
    best = median(timings)
    report({
        "shapes": len(shapes),
        "requests": len(requests),
        "decisions_per_s": len(requests) / best,
        "median_us_per_decision": best / len(requests) * 1e6,
        "placed_share": actions.get("place", 0) / sum(actions.values()),
        "waiting_share": actions.get("wait", 0) / sum(actions.values()),
        "refused_share": actions.get("refuse", 0) / sum(actions.values()),
        "goal_decisions_per_s": 50_000,
    }, args.json)


if __name__ == "__main__":
    main()
