"""`costwise demo`: the main job on the embedded default, end to end in a few seconds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .catalog import Document, apply_documents
from .context import AppContext
from .specs import RunOverrides

ASSETS = Path(__file__).parent / "demo_assets"

SHAPES = [
    {"kind": "Shape", "name": "local-small", "backend": "local", "vcpus": 1, "memory_gib": 2, "price_per_hour": 0.021, "capacity": 2},
    {"kind": "Shape", "name": "local-medium", "backend": "local", "vcpus": 2, "memory_gib": 8, "price_per_hour": 0.083, "capacity": 2},
    {"kind": "Shape", "name": "local-highmem", "backend": "local", "vcpus": 2, "memory_gib": 16, "price_per_hour": 0.126, "capacity": 1},
    {"kind": "Shape", "name": "local-large", "backend": "local", "vcpus": 4, "memory_gib": 16, "price_per_hour": 0.166, "capacity": 1},
]

JOBS = [
    {"kind": "Job", "name": "hello", "artifact": "hello.py", "requirements": {"cpus": 0.5, "memory_gib": 0.5},
     "labels": {"team": "platform", "project": "demo"}},
    {"kind": "Job", "name": "crunch", "artifact": "crunch.py", "args": ["1.0"],
     "requirements": {"cpus": 1, "memory_gib": 1}, "labels": {"team": "ml", "project": "demo"}},
    {"kind": "Job", "name": "feature-build", "artifact": "crunch.py", "args": ["0.5"],
     "requirements": {"cpus": 2, "memory_gib": 12}, "labels": {"team": "data", "project": "demo"}},
    {"kind": "Job", "name": "runaway", "artifact": "runaway.py", "max_runtime": "2s", "stop_grace": "1s",
     "requirements": {"cpus": 1, "memory_gib": 1}, "labels": {"team": "ml", "project": "demo"}},
]


def declare(app: AppContext) -> list[dict]:
    docs = [Document(body, ASSETS, f"demo#{i}") for i, body in enumerate(SHAPES + JOBS, 1)]
    return apply_documents(docs, app.store, app.settings)


def run_demo(app: AppContext, as_json: bool = False) -> int:
    from rich.console import Console

    out = Console(stderr=as_json)
    out.print(f"[bold]costwise demo[/] — catalog {app.settings.db_url}")
    declare(app)
    out.print(f"declared {len(SHAPES)} local shapes and {len(JOBS)} jobs")
    records = []
    for job in ("hello", "crunch", "feature-build", "runaway"):
        run = app.engine.submit(job, RunOverrides(), message="queued by the demo")
        final = app.engine.run_to_completion(run)
        out.print(f"  {job:<14} → {final.shape:<14} {final.state:<10} {final.placement.get('reason', '')}")
        records.append(final)
    from .views import runs_table

    if as_json:
        json.dump([r.public() for r in records], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        out.print(runs_table(records, title="demo runs"))
    total = sum(r.cost_usd for r in records)
    out.print(f"total spend ${total:.6f}; runaway stopped at its max runtime: {records[-1].state}")
    expected = ["SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "TIMED_OUT"]
    return 0 if [r.state for r in records] == expected else 1
