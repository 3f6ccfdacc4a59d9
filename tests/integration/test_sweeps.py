"""Sweep steps for real: trials as local runs through the PipelineRunner, the best trial's outputs
downstream, the budget, the step cache, and bad documents refused by `costwise apply`."""

import json
import math
from pathlib import Path

import pytest

from scheduler.store.catalog import apply_documents, load_documents
from scheduler.runtime.pipeline_runner import PipelineRunner
from scheduler.runtime.sweep_runner import SweepRunner
from scheduler.core.pipelines import PipelineSpec
from scheduler.core.sweeps import generate_trials
from scheduler.reporting.views import pipeline_tree
from tests.conftest import write

SHAPES = """
kind: Shape
name: small
vcpus: 4
memory_gib: 4
price_per_hour: 0.10
capacity: 4
---
kind: Shape
name: pricey
vcpus: 4
memory_gib: 4
price_per_hour: 36000.0
capacity: 4
"""

PREPARE = """
import os, pathlib
(pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"]) / "train.csv").write_text("x,y\\n1,2\\n")
"""

# mse is smallest for lr near 0.01 and small depth; FAIL_DEPTH makes a trial exit 1; NO_KEY omits mse
TRAIN = """
import json, math, os, pathlib, sys
out = pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"])
inp = pathlib.Path(os.environ["COSTWISE_INPUT_DIR"])
trial = json.loads(os.environ["COSTWISE_TRIAL"])
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
if os.environ.get("FAIL_DEPTH") == args.get("--depth"):
    sys.exit(1)
lr, depth = float(args["--lr"]), int(args["--depth"])
mse = abs(math.log10(lr) + 2) + depth / 10 + trial.get("seed", 0) / 1000
metrics = {"regression": {"mse": mse}, "args": args, "trial": trial, "input": (inp / "train.csv").read_text()}
if os.environ.get("NO_KEY") == args["--depth"]:
    metrics = {"regression": {}}
(out / "metrics.json").write_text(json.dumps(metrics))
(out / "model.pkl").write_text(os.environ["COSTWISE_TRIAL"])
"""

EVALUATE = """
import json, os, pathlib
inp = pathlib.Path(os.environ["COSTWISE_INPUT_DIR"])
seen = {p.name: p.read_text() for p in sorted(inp.iterdir())}
(pathlib.Path(os.environ["COSTWISE_OUTPUT_DIR"]) / "report.json").write_text(json.dumps(seen))
"""

JOBS = """
kind: Job
name: prepare
artifact: prepare.py
requirements: {cpus: 1, memory_gib: 1}
---
kind: Job
name: train
artifact: train.py
requirements: {cpus: 1, memory_gib: 1}
env: {FAIL_DEPTH: "", NO_KEY: ""}
---
kind: Job
name: evaluate
artifact: evaluate.py
requirements: {cpus: 1, memory_gib: 1}
"""

SWEEP = {
    "job": "train",
    "parameters": {"lr": {"loguniform": [0.0001, 0.1]}, "depth": {"choice": [3, 5, 7]}, "seed": {"grid": [1, 2]}},
    "trials": 4, "parallel": 2, "seed": 7,
    "objective": {"value": "metrics.json#regression.mse", "goal": "minimize"},
}


def pipeline_doc(sweep=None, **step) -> str:
    tune = {"name": "tune", "sweep": {**SWEEP, **(sweep or {})}, "args": ["--lr", "${trial.lr}", "--depth", "${trial.depth}"],
            "inputs": {"train.csv": "prepare/train.csv"}, "outputs": ["model.pkl", "metrics.json"], **step}
    return json.dumps({
        "kind": "Pipeline", "name": "tuning",
        "steps": [
            {"name": "prepare", "job": "prepare", "outputs": ["train.csv"]},
            tune,
            {"name": "evaluate", "job": "evaluate", "inputs": {"model.pkl": "tune/model.pkl"}, "outputs": ["report.json"]},
        ],
    })


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "sweep"
    write(root / "shapes.yaml", SHAPES)
    write(root / "jobs.yaml", JOBS)
    write(root / "prepare.py", PREPARE)
    write(root / "train.py", TRAIN)
    write(root / "evaluate.py", EVALUATE)
    return root


def declare(app, root: Path, sweep=None, **step) -> PipelineSpec:
    (root / "pipeline.json").write_text(pipeline_doc(sweep, **step))
    files = [root / "shapes.yaml", root / "jobs.yaml", root / "pipeline.json"]
    apply_documents(load_documents(files), app.store, app.settings)
    return app.store.require("Pipeline", "tuning")


def run(app, **kw) -> dict:
    runner = PipelineRunner(app.engine)
    record = runner.execute(runner.submit("tuning", {}, **kw)["id"])
    record["by_step"] = {s["step"]: s for s in record["steps"]}
    return record


def output(app, record: dict, step: str, name: str) -> str:
    run = app.store.get_run(record["by_step"][step]["id"])
    return (Path(run.artifacts_dir).parent / "outputs" / name).read_text()


def test_sweep_picks_the_best_trial_and_downstream_gets_its_outputs(app, root):
    spec = declare(app, root)
    record = run(app)
    assert record["state"] == "SUCCEEDED", record
    assert [s["step"] for s in record["steps"]] == ["prepare", "tune", "evaluate"]  # one record per step
    tune = record["by_step"]["tune"]
    trials = tune["trials"]
    planned = generate_trials(spec.step("tune").sweep)
    assert [t["trial"] for t in trials] == planned and len(planned) == 4
    assert all(t["state"] == "SUCCEEDED" and t["step"] == "tune" and t["pipeline_run"] == record["id"] for t in trials)
    for t in trials:  # the objective is the trial's own metrics, computed from what reached the process
        p = t["trial"]
        assert t["objective"] == pytest.approx(abs(math.log10(p["lr"]) + 2) + p["depth"] / 10 + p["seed"] / 1000)
    best = min(trials, key=lambda t: t["objective"])
    assert tune["best_trial"] == best["id"] == tune["id"]
    assert tune["trial"] == best["trial"] and tune["objective"] == best["objective"]
    assert tune["sweep"]["trials_started"] == 4 and tune["sweep"]["stopped"] is None
    # downstream got the best trial's model, whose content is the COSTWISE_TRIAL the process saw
    seen = json.loads(output(app, record, "evaluate", "report.json"))
    assert json.loads(seen["model.pkl"]) == best["trial"]
    # ${trial.x} reached the args; every trial got the prepared input
    for t in trials:
        metrics = json.loads((Path(t["artifacts_dir"]).parent / "outputs" / "metrics.json").read_text())
        assert metrics["args"] == {"--lr": str(t["trial"]["lr"]), "--depth": str(t["trial"]["depth"])}
        assert metrics["trial"] == t["trial"] and metrics["input"] == "x,y\n1,2\n"
    # the pipeline's cost is every trial's, not just the best one's
    step_costs = record["by_step"]["prepare"]["cost_usd"] + record["by_step"]["evaluate"]["cost_usd"]
    assert record["cost_usd"] == pytest.approx(step_costs + sum(t["cost_usd"] for t in trials))
    assert tune["sweep"]["cost_usd"] == pytest.approx(sum(t["cost_usd"] for t in trials))
    # a trial is an ordinary run record, with its parameters and objective kept
    stored = app.store.get_run(trials[0]["id"])
    assert stored.extra["trial"] == planned[0] and stored.extra["objective"] == trials[0]["objective"]
    assert json.loads(stored.extra["env"]["COSTWISE_TRIAL"]) == planned[0]
    runner = PipelineRunner(app.engine)
    assert runner.record(record["id"])["steps"][1]["best_trial"] == best["id"]  # read back the same
    pipeline_tree(runner, record)  # `costwise show` draws it


def test_rerun_reuses_the_whole_sweep_and_a_changed_sweep_reruns(app, root):
    declare(app, root, {"trials": 2})
    first = run(app)
    assert first["state"] == "SUCCEEDED", first
    second = run(app)
    assert {s["step"]: s["state"] for s in second["steps"]} == {"prepare": "CACHED", "tune": "CACHED", "evaluate": "CACHED"}
    tune = second["by_step"]["tune"]
    assert tune["trials"] == [] and tune["best_trial"] == first["by_step"]["tune"]["best_trial"]
    assert tune["reused_from"] == first["by_step"]["tune"]["id"] and tune["cost_usd"] == 0
    assert tune["saved_usd"] == pytest.approx(sum(t["cost_usd"] for t in first["by_step"]["tune"]["trials"]))
    assert second["cost_usd"] == 0
    declare(app, root, {"trials": 2, "seed": 8})  # a different sweep: the step's key changed
    third = run(app)
    assert third["by_step"]["tune"]["state"] == "SUCCEEDED" and len(third["by_step"]["tune"]["trials"]) == 2
    events = app.store.events(third["by_step"]["tune"]["trials"][0]["id"])
    assert any("the sweep definition changed (seed)" in (e["message"] or "") for e in events), events


def test_budget_stops_new_trials(app, root):
    # $10 per second of runtime: the two first trials always start, then one more would pass $0.01
    declare(app, root, {"trials": 6, "parallel": 2, "budget_usd": 0.01}, shape="pricey")
    record = run(app)
    tune = record["by_step"]["tune"]
    assert record["state"] == "SUCCEEDED" and len(tune["trials"]) == 2, tune
    assert all(t["shape"] == "pricey" and t["cost_usd"] > 0.01 for t in tune["trials"])
    assert tune["sweep"]["trials_planned"] == 6 and tune["sweep"]["trials_started"] == 2
    assert "would pass budget_usd $0.01" in tune["sweep"]["stopped"]
    assert tune["best_trial"] == min(tune["trials"], key=lambda t: t["objective"])["id"]


def test_no_successful_trial_fails_the_step_and_skips_dependants(app, root):
    # depth 3 exits 1, depth 5 writes metrics without the objective: neither can win
    declare(app, root, {"parameters": {"depth": {"grid": [3, 5]}, "lr": {"choice": [0.01]}}, "trials": None},
            env={"FAIL_DEPTH": "3", "NO_KEY": "${trial.depth}"})
    record = run(app)
    assert record["state"] == "FAILED" and len(record["steps"]) == 3
    tune = record["by_step"]["tune"]
    assert tune["state"] == "FAILED" and tune["best_trial"] is None
    assert tune["reason"].startswith("no trial succeeded (2 of 2 started")
    by_depth = {t["trial"]["depth"]: t for t in tune["trials"]}
    assert by_depth[3]["state"] == "FAILED" and by_depth[3]["exit_code"] == 1
    assert by_depth[5]["state"] == "FAILED" and "no 'mse' in the output" in by_depth[5]["reason"]
    assert record["by_step"]["evaluate"]["state"] == "SKIPPED"
    assert "step tune FAILED" in record["reason"]


@pytest.mark.parametrize("sweep,step,expected", [
    ({"parameters": {"lr": {"gaussian": [0, 1]}}}, {}, "unknown distribution 'gaussian'"),
    ({"parameters": {"lr": {"loguniform": [-1, 0.1]}}}, {}, "loguniform bounds must be > 0"),
    ({"objective": {"value": "metrics.json"}}, {}, "is not 'output.json#json.path'"),
    ({"parallel": 0}, {}, "sweep.parallel=0"),
    ({"job": "ghost"}, {}, "step 'tune' uses job 'ghost', which is not declared"),
    ({}, {"args": ["${trial.momentum}"]}, "${trial.momentum}, which is not a sweep parameter"),
    ({}, {"job": "train"}, "exactly one of 'job', 'fail' or 'sweep'"),
    ({}, {"requirements": {"memory_gib": 999}}, "requirements.memory_gib=999 fits no shape"),
])
def test_bad_sweep_documents_exit_2(cli, root, sweep, step, expected):
    (root / "bad.json").write_text(pipeline_doc(sweep, **step))
    proc = cli("apply", str(root / "shapes.yaml"), str(root / "jobs.yaml"), str(root / "bad.json"))
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


class _Crash(Exception):
    pass


class _CrashingSweeps(SweepRunner):
    """Dies (like a daemon killed mid-sweep) when the sweep is about to start its third trial."""

    def _submit_trial(self, state, step, planned, index, *args, **kw):
        if index == 2:
            raise _Crash()
        return super()._submit_trial(state, step, planned, index, *args, **kw)


class _CrashingRunner(PipelineRunner):
    def __init__(self, engine):
        super().__init__(engine)
        self.steps.sweeps = _CrashingSweeps(self.steps)


def test_a_resumed_sweep_keeps_its_finished_trials_and_starts_only_the_rest(app, root):
    declare(app, root, {"parallel": 1})
    crashing = _CrashingRunner(app.engine)
    prun_id = crashing.submit("tuning", {})["id"]
    with pytest.raises(_Crash):
        crashing.execute(prun_id)
    before = [r.id for r in app.store.list_runs(pipeline_run=prun_id) if "trial" in r.extra]
    assert len(before) == 2
    record = PipelineRunner(app.engine).execute(prun_id, resume=True)
    assert record["state"] == "SUCCEEDED", record
    tune = {s["step"]: s for s in record["steps"]}["tune"]
    assert [t["trial"]["seed"] for t in tune["trials"]] == [1, 2, 1, 2]
    assert {t["id"] for t in tune["trials"][:2]} == set(before)  # kept, not started again
    assert len([r for r in app.store.list_runs(pipeline_run=prun_id) if "trial" in r.extra]) == 4
    assert tune["best_trial"] == min(tune["trials"], key=lambda t: t["objective"])["id"]
