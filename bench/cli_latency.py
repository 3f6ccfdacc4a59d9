"""Wall time of `costwise` commands as people type them, with and without a daemon up.

Each figure is the median of --repeats fresh interpreters (process wall, what a shell loop pays):
`--help`, `runs --json`, `shapes --json`, a trivial `run JOB --wait --json`, and a 5-step chain of
1-second steps through `pipeline run chain --wait --json`: rerun with every step cached, in full
(--force-all) and with one step rerun (--force-step s4, the last: what editing it costs), against one
home, first with no daemon (the CLI opens the catalog itself), then with a `costwise daemon` up (the
thin client talks to its API). `python -c pass` is the floor.

Goals (issue 15): --help <= 0.10 s; with a daemon runs <= 0.15 s, run --wait <= 0.25 s; without one
runs <= 0.30 s, run --wait <= 0.50 s; the pipeline's cached rerun <= 0.35 s, full <= 5.4 s, one step <= 2.3 s.

    python bench/cli_latency.py [--repeats 10] [--pipeline-repeats N] [--no-pipeline] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import ROOT, median, report

DOCS = """
kind: Shape
name: local
vcpus: 2
memory_gib: 4
price_per_hour: 0.1
capacity: 4
---
kind: Job
name: trivial
artifact: trivial.py
---
kind: Job
name: step
artifact: step.py
---
kind: Pipeline
name: chain
steps:
""" + "".join(f"""  - name: s{i}
    job: step
    args: ["1", "s{i}"]
    outputs: [data.txt]
""" + (f"""    inputs: {{data.txt: s{i - 1}/data.txt}}
""" if i else "") for i in range(5))
STEP = """
import os, pathlib, sys, time
inp, out = pathlib.Path(os.environ["COSTWISE_INPUT_DIR"]), pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"])
time.sleep(float(sys.argv[1]))
previous = (inp / "data.txt").read_text() if (inp / "data.txt").exists() else ""
(out / "data.txt").write_text(previous + sys.argv[2] + "\\n")
"""
COMMANDS = {
    "help": ["--help"],
    "runs": ["runs", "--limit", "20", "--json"],
    "shapes": ["shapes", "--json"],
    "run_wait": ["run", "trivial", "--wait", "--json"],
}
PIPELINE = ["pipeline", "run", "chain", "--wait", "--json"]
PIPELINE_COMMANDS = {  # the cached rerun first: the full run before it fills the cache
    "pipeline_cached": PIPELINE,
    "pipeline_full": [*PIPELINE, "--force-all"],
    "pipeline_one_step": [*PIPELINE, "--force-step", "s4"],
}


def timed(argv: list[str], env: dict, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env, cwd=ROOT)
        samples.append(time.perf_counter() - start)
    return median(samples)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_daemon(env: dict, home: Path) -> subprocess.Popen:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "scheduler.cli", "daemon", "--metrics-port", str(port)],
                            env=env, cwd=ROOT, stdout=open(home / "daemon.log", "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                if json.load(resp)["leader"]:
                    time.sleep(1.5)  # one heartbeat written after leading
                    return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("bench: the daemon did not come up (see daemon.log)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--pipeline-repeats", type=int, default=None, help="default: --repeats")
    parser.add_argument("--no-pipeline", action="store_true", help="leave the pipeline figures out")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    pipeline_repeats = args.pipeline_repeats or args.repeats
    figures: dict = {"repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        (Path(tmp) / "trivial.py").write_text("print('trivial')\n")
        (Path(tmp) / "step.py").write_text(STEP)
        (Path(tmp) / "docs.yaml").write_text(DOCS)
        env = {**os.environ, "COSTWISE_HOME": str(home)}
        env.pop("COSTWISE_DB", None)
        cli = [sys.executable, "-m", "scheduler.cli"]
        subprocess.run([*cli, "apply", str(Path(tmp) / "docs.yaml")], check=True, capture_output=True, env=env, cwd=ROOT)
        figures["python_pass_s"] = timed([sys.executable, "-c", "pass"], env, args.repeats)
        pipelines = {} if args.no_pipeline else PIPELINE_COMMANDS
        if pipelines:
            subprocess.run([*cli, *PIPELINE], check=True, capture_output=True, env=env, cwd=ROOT)  # fills the cache
        for name, argv in COMMANDS.items():
            figures[f"no_daemon_{name}_s"] = timed([*cli, *argv], env, args.repeats)
        for name, argv in pipelines.items():
            figures[f"no_daemon_{name}_s"] = timed([*cli, *argv], env, pipeline_repeats)
        daemon = start_daemon(env, home)
        try:
            for name, argv in COMMANDS.items():
                if name != "help":
                    figures[f"daemon_{name}_s"] = timed([*cli, *argv], env, args.repeats)
            for name, argv in pipelines.items():
                figures[f"daemon_{name}_s"] = timed([*cli, *argv], env, pipeline_repeats)
        finally:
            daemon.terminate()
            daemon.wait(30)
    report(figures, args.json)


if __name__ == "__main__":
    main()
