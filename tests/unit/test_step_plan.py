"""The pure step planner: what to do with a pipeline step, from data alone (no store, no process)."""

from scheduler.core import cache
from scheduler.core.pipelines import PipelineSpec
from scheduler.core.specs import JobSpec, parse_spec
from scheduler.core.step_plan import (
    CacheLookup, ConditionDocument, Fail, Hit, Miss, RunSoFar, Skip, StepKey, Sweep, gate_step, needs_lookup,
    plan_step, step_key,
)

JOB = JobSpec(name="train", artifact="train.py", artifact_hash="sha256:1", args=["--lr", "${params.lr}"])
DATA = {"sha256": "ab" * 32, "size": 3}
SWEEP = {"job": "train", "parameters": {"lr": {"grid": [0.1, 0.2]}},
         "objective": {"value": "metrics.json#loss", "goal": "minimize"}}


def pipeline() -> PipelineSpec:
    return parse_spec({"kind": "Pipeline", "name": "p", "parameters": {"lr": 0.1}, "steps": [
        {"name": "prepare", "job": "prepare", "outputs": ["train.csv", "metrics.json"]},
        {"name": "train", "job": "train", "args": ["--lr", "${params.lr}"], "inputs": {"train.csv": "prepare/train.csv"}, "outputs": ["model.pkl"]},
        {"name": "deploy", "job": "train", "when": {"value": "prepare/metrics.json#auc", "op": ">=", "than": 0.8}},
        {"name": "stop", "fail": "quality too low", "when": {"value": "prepare/metrics.json#auc", "op": "<", "than": 0.8}},
        {"name": "tune", "sweep": SWEEP, "outputs": ["metrics.json"]},
        {"name": "scratch", "job": "train", "cache": False},
    ]})


SPEC = pipeline()


def so_far(**kw) -> RunSoFar:
    base = {"params": {"lr": 0.1}, "states": {"prepare": "SUCCEEDED"},
            "outputs": {"prepare": {"train.csv": DATA, "metrics.json": DATA}}}
    return RunSoFar(**{**base, **kw})


def key_of(name: str, run: RunSoFar | None = None) -> StepKey:
    job = JOB.model_copy(update={"args": ["--lr", str((run or so_far()).params["lr"])]})
    return step_key(SPEC.step(name), job, run or so_far())


def test_a_cached_entry_is_a_hit():
    entry = {"run_id": "r-1", "outputs": {"model.pkl": DATA}}
    plan = plan_step(SPEC.step("train"), so_far(), key_of("train"), CacheLookup(entry=entry))
    assert plan == Hit(entry)


def test_a_miss_names_the_key_part_that_changed():
    before = key_of("train")
    changed = so_far(params={"lr": 0.2})
    now = key_of("train", changed)
    plan = plan_step(SPEC.step("train"), changed, now, CacheLookup(last_parts=before.parts))
    assert isinstance(plan, Miss) and not isinstance(plan, Sweep)
    assert plan.reason == "args changed (['--lr', '0.1'] -> ['--lr', '0.2']); parameters changed (lr)"
    assert (plan.key, plan.parts) == (now.key, now.parts)
    assert now.key != before.key


def test_a_miss_after_a_broken_entry_says_why_and_a_first_run_says_so():
    assert plan_step(SPEC.step("train"), so_far(), key_of("train"), CacheLookup(problem="x is corrupt")).reason == \
        "x is corrupt"
    assert plan_step(SPEC.step("train"), so_far(), key_of("train"), CacheLookup()).reason == \
        "no earlier run of this step"


def test_the_key_is_the_cache_module_s_key_over_the_upstream_input_hashes():
    key = key_of("train")
    expected = cache.key_parts(JOB.model_copy(update={"args": ["--lr", "0.1"]}), {"lr": 0.1}, {"train.csv": DATA["sha256"]},
                               ["model.pkl"], None)
    assert key.parts == expected and key.key == cache.cache_key(expected)
    assert key.inputs == {"train.csv": DATA}


def test_a_false_when_skips_and_a_true_one_runs():
    low, high = ConditionDocument(value={"auc": 0.5}), ConditionDocument(value={"auc": 0.9})
    assert gate_step(SPEC.step("deploy"), so_far(), low) == Skip(
        "condition false: prepare/metrics.json#auc = 0.5 >= 0.8 is False")
    assert gate_step(SPEC.step("deploy"), so_far(), high) is None
    assert plan_step(SPEC.step("deploy"), so_far(), key_of("deploy"), CacheLookup(), low) == Skip(
        "condition false: prepare/metrics.json#auc = 0.5 >= 0.8 is False")


def test_a_fail_step_fails_when_its_condition_holds():
    assert gate_step(SPEC.step("stop"), so_far(), ConditionDocument(value={"auc": 0.5})) == Fail("quality too low")
    assert isinstance(gate_step(SPEC.step("stop"), so_far(), ConditionDocument(value={"auc": 0.9})), Skip)


def test_a_condition_that_cannot_be_evaluated_fails_the_step_naming_the_value():
    missing = gate_step(SPEC.step("deploy"), so_far(), ConditionDocument(value={"other": 1}))
    assert isinstance(missing, Fail) and "'auc'" in missing.message
    null = gate_step(SPEC.step("deploy"), so_far(), ConditionDocument(value={"auc": None}))
    assert null == Fail("condition could not be evaluated: condition 'prepare/metrics.json#auc': "
                        "cannot compare None (null) >= 0.8 (number)")
    text = gate_step(SPEC.step("deploy"), so_far(), ConditionDocument(value={"auc": "abc"}))
    assert isinstance(text, Fail) and "'abc' (string)" in text.message
    unread = gate_step(SPEC.step("deploy"), so_far(), ConditionDocument(error="'metrics.json'"))
    assert unread == Fail("condition could not be evaluated: 'metrics.json'")


def test_a_failed_upstream_or_a_cancel_skips():
    failed = so_far(states={"prepare": "FAILED"}, outputs={"prepare": {}})
    assert gate_step(SPEC.step("train"), failed) == Skip("upstream step prepare is FAILED")
    assert gate_step(SPEC.step("train"), so_far(canceled=True)) == Skip("the pipeline run was canceled")


def test_a_forced_step_reruns_without_a_lookup():
    forced = so_far(force_steps=frozenset({"train"}))
    assert not needs_lookup(SPEC.step("train"), forced) and needs_lookup(SPEC.step("train"), so_far())
    entry = {"run_id": "r-1", "outputs": {}}
    assert plan_step(SPEC.step("train"), forced, key_of("train"), CacheLookup(entry=entry)).reason == "forced rerun"
    everything = so_far(force_all=True)
    assert plan_step(SPEC.step("train"), everything, key_of("train")).reason == "forced rerun"


def test_an_uncached_step_and_a_sweep_step_miss_as_their_kind():
    scratch = plan_step(SPEC.step("scratch"), so_far(), key_of("scratch"))
    assert isinstance(scratch, Miss) and scratch.reason == "cache: false on this step"
    assert not needs_lookup(SPEC.step("scratch"), so_far())
    tune = plan_step(SPEC.step("tune"), so_far(), key_of("tune"), CacheLookup())
    assert isinstance(tune, Sweep) and "sweep" in tune.parts
