"""Step reuse: a 5-step chain of 1-second steps run in full, rerun with everything cached, and
rerun with one changed step (the last one, so it alone reruns) — wall times and ratios.

Goals: all-cached rerun <= 5% of the full run; one-changed-step rerun <= 1.2x the changed step's
own time (measured on the changed step's run record, in the same run).

    python bench/pipeline_reuse.py [--step-seconds 1.0] [--json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import report

from scheduler.store.catalog import Document, apply_documents
from scheduler.runtime.context import AppContext
from scheduler.runtime.pipeline_runner import PipelineRunner
from scheduler.store.settings import Settings

STEP = """
import os, pathlib, sys, time
inp, out = pathlib.Path(os.environ["COSTWISE_INPUT_DIR"]), pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"])
time.sleep(float(sys.argv[1]))
previous = (inp / "data.txt").read_text() if (inp / "data.txt").exists() else ""
(out / "data.txt").write_text(previous + sys.argv[2] + "\\n")
"""


def declare(app: AppContext, root: Path, seconds: float, version: str) -> None:
    script = root / "step.py"
    script.write_text(STEP)
    docs = [{"kind": "Shape", "name": "local", "vcpus": 2, "memory_gib": 4, "price_per_hour": 0.2, "capacity": 4},
            {"kind": "Job", "name": "step", "artifact": str(script)}]
    steps = []
    for i in range(5):
        step = {"name": f"s{i}", "job": "step", "args": [str(seconds), f"s{i}"], "outputs": ["data.txt"]}
        if i:
            step["inputs"] = {"data.txt": f"s{i - 1}/data.txt"}
        if i == 4:
            step["args"] = [str(seconds), f"s{i}-{version}"]
        steps.append(step)
    docs.append({"kind": "Pipeline", "name": "chain", "steps": steps})
    apply_documents([Document(d, root, "bench") for d in docs], app.store, app.settings)


def timed_run(runner: PipelineRunner) -> tuple[float, dict]:
    start = time.perf_counter()
    record = runner.execute(runner.submit("chain")["id"])
    return time.perf_counter() - start, record


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--step-seconds", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        app = AppContext(Settings(home=root / "home", db_url=f"sqlite:///{root / 'home' / 'catalog.db'}"))
        declare(app, root, args.step_seconds, "v1")
        runner = PipelineRunner(app.engine)
        full, first = timed_run(runner)
        cached, second = timed_run(runner)
        declare(app, root, args.step_seconds, "v2")  # step s4 changes its args: it alone reruns
        changed, third = timed_run(runner)
        states = [s["state"] for s in third["steps"]]
        assert [s["state"] for s in second["steps"]] == ["CACHED"] * 5, second
        assert states == ["CACHED"] * 4 + ["SUCCEEDED"], states
        own = third["steps"][4]["duration_s"]
        app.close()
    report({
        "step_seconds": args.step_seconds,
        "full_run_s": full,
        "all_cached_rerun_s": cached,
        "one_changed_step_rerun_s": changed,
        "cached_vs_full_ratio": cached / full,
        "changed_step_own_s": own,
        "changed_rerun_vs_changed_step_ratio": changed / own,
        "changed_rerun_vs_full_ratio": changed / full,
        "saved_usd_cached_rerun": second["saved_usd"],
        "goal_cached_vs_full": 0.05,
        "goal_changed_vs_own": 1.2,
    }, args.json)


if __name__ == "__main__":
    main()
