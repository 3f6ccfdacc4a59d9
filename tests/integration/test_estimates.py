"""Cost before running, for real: a pipeline run once on local shapes, one step's args changed, the
next run estimated (the unchanged step cached at $0, the changed one and the one after it priced from
their history), then run -- each step's real cost falls in its estimated p10-p90 on the estimated shape."""

import pytest

from scheduler.runtime.estimates import estimate_pipeline_run, estimate_run
from scheduler.runtime.pipeline_runner import PipelineRunner
from tests.conftest import write
from tests.integration.test_pipelines import SHAPES, apply_all, jobs_doc

PIPELINE = """
kind: Pipeline
name: flow
steps:
  - name: a
    job: step-a
    args: ["a", "a.json"]
    outputs: [a.json]
  - name: b
    job: step-b
    args: ["b", "b.json", "{tag}"]
    inputs: {{a.json: a/a.json}}
    outputs: [b.json]
  - name: c
    job: step-c
    args: ["c", "c.json"]
    inputs: {{b.json: b/b.json}}
    outputs: [c.json]
"""


@pytest.fixture
def flow(app, tmp_path):
    root = tmp_path / "flow"
    write(root / "shapes.yaml", SHAPES)
    write(root / "jobs.yaml", jobs_doc(root, **{f"step-{x}": {"SLEEP": "0.3"} for x in "abc"}))
    write(root / "pipeline.yaml", PIPELINE.format(tag="v1"))
    apply_all(app, root)
    return root


def run(app):
    runner = PipelineRunner(app.engine)
    record = runner.execute(runner.submit("flow", {})["id"])
    assert record["state"] == "SUCCEEDED", record
    return {s["step"]: s for s in record["steps"]}


def test_one_cached_step_is_free_and_the_new_ones_cost_what_the_estimate_said(app, flow):
    first = run(app)
    write(flow / "pipeline.yaml", PIPELINE.format(tag="v2"))  # b's key changes, so c's inputs will too
    apply_all(app, flow, "pipeline.yaml")
    before = len(app.store.list_runs(limit=100)), len(app.store.pipeline_runs.list(pipeline="flow"))

    est = estimate_pipeline_run(app.engine, "flow")
    steps = {s.step: s for s in est.steps}
    assert (len(app.store.list_runs(limit=100)), len(app.store.pipeline_runs.list(pipeline="flow"))) == before
    assert steps["a"].outcome == "cached" and steps["a"].expected_cost_usd == 0
    assert steps["a"].saved_usd == pytest.approx(first["a"]["cost_usd"])
    assert steps["b"].outcome == "run" and "args changed" in steps["b"].reason
    assert steps["c"].outcome == "run" and "upstream step b runs again" in steps["c"].reason

    second = run(app)
    assert {n: s["state"] for n, s in second.items()} == {"a": "CACHED", "b": "SUCCEEDED", "c": "SUCCEEDED"}
    assert second["a"]["cost_usd"] == 0
    for name in ("b", "c"):
        guess, real = steps[name], second[name]
        assert guess.estimate.shape == real["shape"] and guess.estimate.duration_source == "history"
        assert guess.p10_usd <= real["cost_usd"] <= guess.p90_usd, (name, guess, real["cost_usd"])
    spent = sum(s["cost_usd"] for s in second.values())
    assert est.p10_usd <= spent <= est.p90_usd
    assert est.expected_cost_usd == pytest.approx(steps["b"].expected_cost_usd + steps["c"].expected_cost_usd)


def test_a_job_run_estimate_uses_its_history(app, flow):
    cold = estimate_run(app.engine, "step-a")
    assert cold.shape == "small" and cold.expected_cost_usd is None  # no history, no expected_duration
    run(app)
    warm = estimate_run(app.engine, "step-a")
    real = app.store.list_runs(job="step-a", limit=1)[0]
    assert warm.duration_source == "history" and warm.p10_usd <= real.cost_usd <= warm.p90_usd


def test_the_estimate_commands_print_and_launch_nothing(app, flow, cli):
    run(app)
    before = len(app.store.list_runs(limit=100))
    est = cli.json("pipeline", "run", "flow", "--estimate")
    assert [s["outcome"] for s in est["steps"]] == ["cached"] * 3 and est["expected_cost_usd"] == 0
    assert est["saved_usd"] > 0
    table = cli("pipeline", "run", "flow", "--estimate")
    assert table.returncode == 0, table.stderr
    assert "total $0.00" in table.stdout and "yes" in table.stdout and "saved by the step cache" in table.stdout
    one = cli("run", "step-a", "--estimate", "--arg", "a", "--arg", "a.json")
    assert one.returncode == 0, one.stderr
    assert "small" in one.stdout and "history" in one.stdout and "$0.1/h" in one.stdout
    job = cli.json("run", "step-a", "--estimate")
    assert job["shape"] == "small" and job["p10_usd"] < job["expected_cost_usd"] < job["p90_usd"]
    assert len(app.store.list_runs(limit=100)) == before
    bad = cli("run", "step-a", "--estimate", "--shape", "nowhere")
    assert bad.returncode == 2 and "nowhere" in bad.stderr
