"""Pipelines for real: local runs, the content-addressed store and the step cache."""

import json
import os
import threading
import time
from pathlib import Path

import pytest

from scheduler.store.catalog import apply_documents, load_documents
from scheduler.runtime.pipeline_runner import PipelineRunner
from tests.conftest import write

SHAPES = """
kind: Shape
name: small
vcpus: 2
memory_gib: 4
price_per_hour: 0.10
capacity: 4
---
kind: Shape
name: large
vcpus: 8
memory_gib: 32
price_per_hour: 0.80
capacity: 4
"""

STEP = """
import json, os, pathlib, sys, time
inp = pathlib.Path(os.environ["COSTWISE_INPUT_DIR"])
out = pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"])
name = sys.argv[1]
seen = {p.name: p.read_text() for p in sorted(inp.iterdir())}
time.sleep(float(os.environ.get("SLEEP", "0")))
payload = {"step": name, "seen": seen, "args": sys.argv[2:], "score": float(os.environ.get("SCORE", "1"))}
for output in sys.argv[2:3]:
    for item in output.split(","):
        if item:
            (out / item).write_text(json.dumps(payload, sort_keys=True))
"""

PIPELINE = """
kind: Pipeline
name: flow
parameters: {threshold: 5.0, mode: fast}
steps:
  - name: a
    job: step-a
    args: ["a", "a.json"]
    outputs: [a.json]
  - name: b
    job: step-b
    args: ["b", "b.json", "${params.mode}"]
    inputs: {a.json: a/a.json}
    outputs: [b.json]
  - name: c
    job: step-c
    args: ["c", "c.json"]
    inputs: {b.json: b/b.json}
    outputs: [c.json]
  - name: d
    job: step-d
    args: ["d", "d.json"]
    inputs: {c.json: c/c.json}
    outputs: [d.json]
  - name: publish
    job: step-d
    args: ["publish", ""]
    inputs: {d.json: d/d.json}
    when: {value: "c/c.json#score", op: "<=", than: "${params.threshold}"}
  - name: too-high
    fail: "score above the threshold"
    when: {value: "c/c.json#score", op: ">", than: "${params.threshold}"}
"""


def jobs_doc(root: Path, **env) -> str:
    docs = []
    for name in ("step-a", "step-b", "step-c", "step-d"):
        script = root / f"{name}.py"
        if not script.exists():
            write(script, STEP)
        extra = env.get(name, {})
        docs.append(f"kind: Job\nname: {name}\nartifact: {name}.py\nrequirements: {{cpus: 1, memory_gib: 1}}\n"
                    f"env: {json.dumps(extra)}\n")
    return "---\n".join(docs)


@pytest.fixture
def flow(app, tmp_path):
    root = tmp_path / "flow"
    write(root / "shapes.yaml", SHAPES)
    write(root / "jobs.yaml", jobs_doc(root))
    write(root / "pipeline.yaml", PIPELINE)
    apply_all(app, root)
    return root


def apply_all(app, root, *names):
    files = [root / n for n in (names or ("shapes.yaml", "jobs.yaml", "pipeline.yaml"))]
    return apply_documents(load_documents(files), app.store, app.settings)


def run(app, params=None, **kw):
    runner = PipelineRunner(app.engine)
    started = time.monotonic()
    record = runner.execute(runner.submit("flow", params or {}, **kw)["id"])
    record["wall_s"] = time.monotonic() - started
    record["by_step"] = {s["step"]: s for s in record["steps"]}
    return record


def states(record):
    return {name: s["state"] for name, s in record["by_step"].items()}


def test_full_run_then_all_cached_rerun(app, flow):
    # steps that take a while, as real ones do: 0.3 s each, so the ratio is not start-up noise
    write(flow / "jobs.yaml", jobs_doc(flow, **{f"step-{x}": {"SLEEP": "0.3"} for x in "abcd"}))
    apply_all(app, flow, "jobs.yaml")
    first = run(app)
    assert first["state"] == "SUCCEEDED", first
    assert states(first) == {"a": "SUCCEEDED", "b": "SUCCEEDED", "c": "SUCCEEDED", "d": "SUCCEEDED",
                             "publish": "SUCCEEDED", "too-high": "SKIPPED"}
    assert len(first["steps"]) == 6  # one record per declared step, skipped ones included
    second = run(app)
    assert all(s == "CACHED" for n, s in states(second).items() if n != "too-high")
    assert second["wall_s"] < 0.10 * first["wall_s"], (second["wall_s"], first["wall_s"])
    a1, a2 = first["by_step"]["a"], second["by_step"]["a"]
    assert a2["cost_usd"] == 0 and a2["cache_hit"] and a2["reused_from"] == a1["id"]
    assert a2["saved_usd"] == a1["cost_usd"] > 0
    assert second["saved_usd"] == pytest.approx(first["cost_usd"] - 0)  # everything reused
    assert second["cost_usd"] == 0


def test_editing_step_3_of_4_reruns_exactly_3_and_4(app, flow):
    run(app)
    edit = "\nfor p in out.iterdir():\n    p.write_text(p.read_text() + ' ')  # an edit that changes the output\n"
    (flow / "step-c.py").write_text(STEP + edit)
    apply_all(app, flow, "jobs.yaml")
    again = run(app)
    assert states(again) == {"a": "CACHED", "b": "CACHED", "c": "SUCCEEDED", "d": "SUCCEEDED",
                             "publish": "SUCCEEDED", "too-high": "SKIPPED"}
    events = app.store.events(again["by_step"]["c"]["id"])
    assert any("the job's artifact changed" in (e["message"] or "") for e in events)


def test_same_outputs_keep_dependants_cached(app, flow):
    run(app)
    again = run(app, force_steps=["a"])
    assert states(again)["a"] == "SUCCEEDED"  # forced, but it writes the same bytes...
    assert states(again)["b"] == "CACHED"  # ...so nothing downstream reruns


def test_changed_input_content_invalidates_dependants(app, flow):
    run(app)
    write(flow / "jobs.yaml", jobs_doc(flow, **{"step-a": {"SCORE": "2"}}))  # a now writes other bytes
    apply_all(app, flow, "jobs.yaml")
    again = run(app)
    assert states(again)["a"] == "SUCCEEDED" and states(again)["b"] == "SUCCEEDED"
    reason = app.store.get_run(again["by_step"]["b"]["id"]).extra["cache"]["reason"]
    assert reason == "inputs changed (a.json)"


def test_moving_a_step_to_another_shape_keeps_the_cache(app, flow):
    first = run(app)
    assert first["by_step"]["c"]["shape"] == "small"
    write(flow / "pipeline.yaml", PIPELINE.replace('args: ["c", "c.json"]', 'args: ["c", "c.json"]\n    shape: large'))
    apply_all(app, flow, "pipeline.yaml")
    assert states(run(app))["c"] == "CACHED"
    forced = run(app, force_steps=["c"])
    assert forced["by_step"]["c"]["shape"] == "large"


def test_parameter_change_flips_the_branch_and_fail_step_fails(app, flow, cli):
    first = run(app)
    flipped = run(app, {"threshold": "0.5"})
    assert flipped["state"] == "FAILED" and "score above the threshold" in flipped["reason"]
    assert states(flipped)["publish"] == "SKIPPED" and states(flipped)["too-high"] == "FAILED"
    assert states(flipped)["d"] == "CACHED"  # the parameter is not used by d: its key did not change
    proc = cli("pipeline", "run", "flow", "--param", "threshold=0.5", "--wait", "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["state"] == "FAILED"
    proc = cli("pipeline", "run", "flow", "--param", "threshold=high", "--wait")
    assert proc.returncode == 2 and "threshold='high' is not a float" in proc.stderr
    assert first["state"] == "SUCCEEDED"


def test_string_parameter_reaches_args_and_changes_the_key(app, flow):
    run(app)
    again = run(app, {"mode": "slow"})
    assert states(again)["a"] == "CACHED" and states(again)["b"] == "SUCCEEDED"
    assert app.store.get_run(again["by_step"]["b"]["id"]).spec["args"] == ["b", "b.json", "slow"]


def test_failed_step_skips_dependants_only(app, tmp_path):
    root = tmp_path / "branches"
    write(root / "shapes.yaml", SHAPES)
    write(root / "ok.py", "import os, pathlib; pathlib.Path(os.environ['COSTWISE_OUTPUT_DIR'], 'x').write_text('x')\n")
    write(root / "bad.py", "raise SystemExit(4)\n")
    write(root / "docs.yaml", """
        kind: Job
        name: ok
        artifact: ok.py
        ---
        kind: Job
        name: bad
        artifact: bad.py
        ---
        kind: Pipeline
        name: flow
        steps:
          - {name: broken, job: bad, outputs: [x]}
          - {name: after-broken, job: ok, inputs: {x: broken/x}, outputs: [x]}
          - {name: fine, job: ok, outputs: [x]}
          - {name: after-fine, job: ok, inputs: {x: fine/x}, outputs: [x]}
    """)
    apply_all(app, root, "shapes.yaml", "docs.yaml")
    record = run(app)
    assert record["state"] == "FAILED" and record["reason"].startswith("step broken FAILED")
    assert states(record) == {"broken": "FAILED", "after-broken": "SKIPPED", "fine": "SUCCEEDED", "after-fine": "SUCCEEDED"}


def test_a_step_that_does_not_write_its_output_fails(app, tmp_path):
    root = tmp_path / "lazy"
    write(root / "shapes.yaml", SHAPES)
    write(root / "lazy.py", "print('forgot')\n")
    write(root / "docs.yaml", "kind: Job\nname: lazy\nartifact: lazy.py\n---\nkind: Pipeline\nname: flow\n"
                              "steps:\n  - {name: s, job: lazy, outputs: [model.pkl]}\n")
    apply_all(app, root, "shapes.yaml", "docs.yaml")
    record = run(app)
    assert record["by_step"]["s"]["state"] == "FAILED"
    assert "declared output model.pkl was not written" in record["by_step"]["s"]["reason"]


def test_killed_mid_write_leaves_nothing_in_the_store(app, tmp_path, home):
    root = tmp_path / "slow"
    write(root / "shapes.yaml", SHAPES)
    write(root / "slow.py", """
        import os, pathlib, time
        with open(pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"], "big.bin"), "wb") as f:
            for _ in range(100):
                f.write(b"x" * 65536)
                f.flush()
                time.sleep(0.05)
    """)
    write(root / "docs.yaml", "kind: Job\nname: slow\nartifact: slow.py\nstop_grace: 1s\n---\nkind: Pipeline\n"
                              "name: flow\nsteps:\n  - {name: s, job: slow, outputs: [big.bin], max_runtime: 1s}\n")
    apply_all(app, root, "shapes.yaml", "docs.yaml")
    record = run(app)
    assert record["by_step"]["s"]["state"] == "TIMED_OUT"
    store = home / "store"
    assert not list((store / "entries").glob("*.json")) if (store / "entries").exists() else True
    objects = [p for p in (store / "objects").rglob("*") if p.is_file()] if (store / "objects").exists() else []
    assert objects == []
    assert not any((store / "tmp").iterdir()) if (store / "tmp").exists() else True


def test_deleted_cached_output_is_a_miss_that_says_so(app, flow, home):
    first = run(app)
    ref = app.store.get_run(first["by_step"]["b"]["id"]).extra["outputs"]["b.json"]
    obj = home / "store" / "objects" / ref["sha256"][:2] / ref["sha256"]
    obj.chmod(0o644)
    obj.unlink()
    again = run(app)
    assert states(again)["a"] == "CACHED" and states(again)["b"] == "SUCCEEDED"
    reason = app.store.get_run(again["by_step"]["b"]["id"]).extra["cache"]["reason"]
    assert reason == "cached output b.json is missing from the store"
    assert obj.exists()  # republished


def test_concurrent_runs_share_the_store_safely(app, flow):
    results = []

    def go():
        results.append(run(app))

    threads = [threading.Thread(target=go) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert [r["state"] for r in results] == ["SUCCEEDED", "SUCCEEDED"]
    launched = sum(1 for r in results for s in r["steps"] if s["step"] == "a" and s["state"] == "SUCCEEDED")
    assert launched == 1  # the second run waited on the step's lock and reused the first one's outputs
    assert run(app)["by_step"]["d"]["state"] == "CACHED"


def test_results_json_and_inputs_are_recorded(app, flow):
    record = run(app)
    b = app.store.get_run(record["by_step"]["b"]["id"])
    results = json.loads((Path(b.artifacts_dir) / "results.json").read_text())
    assert results["parameters"]["pipeline_parameters"] == {"threshold": 5.0, "mode": "fast"}
    assert list(results["inputs"]) == ["a.json"] and results["inputs"]["a.json"]["sha256"]
    assert results["outputs"]["b.json"]["sha256"] == b.extra["outputs"]["b.json"]["sha256"]
    payload = json.loads((Path(b.artifacts_dir).parent / "outputs" / "b.json").read_text())
    assert "a.json" in payload["seen"]


@pytest.mark.parametrize("body,expected", [
    ("steps:\n  - {name: x, job: step-a, inputs: {i: y/o}, outputs: [o]}\n  - {name: y, job: step-a, inputs: {i: x/o}, outputs: [o]}\n",
     "steps form a cycle"),
    ("steps:\n  - {name: x, job: step-a, inputs: {i: ghost/o}}\n", "unknown step 'ghost'"),
    ("steps:\n  - {name: x, job: step-a, outputs: [o]}\n  - {name: y, job: step-a, inputs: {i: x/nope}}\n", "declares outputs ['o']"),
    ("steps:\n  - {name: x, job: nojob}\n", "uses job 'nojob', which is not declared"),
    ("steps:\n  - {name: x, job: step-a, args: ['${params.missing}']}\n", "${params.missing}, which is not a parameter"),
    ("steps:\n  - {name: x, job: step-a}\n  - {name: x, job: step-a}\n", "step name 'x' is used twice"),
    ("steps:\n  - {name: x, job: step-a, requirements: {memory_gib: 999}}\n", "requirements.memory_gib=999 fits no shape"),
])
def test_bad_pipelines_are_refused_with_exit_2(cli, flow, tmp_path, body, expected):
    proc = cli("apply", str(flow / "shapes.yaml"), str(flow / "jobs.yaml"))
    assert proc.returncode == 0, proc.stderr
    write(tmp_path / "bad.yaml", "kind: Pipeline\nname: bad\n" + body)
    proc = cli("apply", str(tmp_path / "bad.yaml"))
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_show_draws_the_dag(cli, flow):
    assert cli("apply", str(flow / "shapes.yaml"), str(flow / "jobs.yaml"), str(flow / "pipeline.yaml")).returncode == 0
    record = cli.json("pipeline", "run", "flow", "--wait")
    text = cli("show", record["id"]).stdout
    for name in ("a", "b", "c", "d", "publish", "too-high"):
        assert f"{name} " in text
    assert "SKIPPED" in text and "SUCCEEDED" in text
    assert set(record) >= {"id", "pipeline", "state", "reason", "started_at", "ended_at", "cost_usd", "saved_usd", "steps"}


def test_cancel_a_pipeline_run(cli, tmp_path, home):
    import subprocess
    import sys

    write(tmp_path / "shapes.yaml", SHAPES)
    write(tmp_path / "slow.py", "import time\ntime.sleep(60)\n")
    write(tmp_path / "quick.py", "print('quick')\n")
    write(tmp_path / "docs.yaml", """
        kind: Job
        name: slow
        artifact: slow.py
        stop_grace: 1s
        ---
        kind: Job
        name: quick
        artifact: quick.py
        ---
        kind: Pipeline
        name: flow
        steps:
          - {name: long, job: slow}
          - {name: after, job: quick}
    """)
    assert cli("apply", str(tmp_path / "shapes.yaml"), str(tmp_path / "docs.yaml")).returncode == 0
    waiting = subprocess.Popen([sys.executable, "-m", "scheduler.cli", "pipeline", "run", "flow", "--wait", "--json"],
                               env={**os.environ, "COSTWISE_HOME": str(home)}, stdout=subprocess.PIPE, text=True)
    for _ in range(100):
        runs = cli.json("runs", "--job", "slow")
        if runs and runs[0]["state"] == "RUNNING":
            break
        time.sleep(0.1)
    prun_id = runs[0]["pipeline_run"]
    assert cli("cancel", prun_id, "--json").returncode == 0
    out, _ = waiting.communicate(timeout=30)
    record = json.loads(out)
    assert waiting.returncode == 1 and record["state"] == "CANCELED"
    assert {s["step"]: s["state"] for s in record["steps"]}["long"] == "CANCELED"
