"""Sweep steps, the pure parts: the document, trial generation, the budget rule, the best trial."""

import math

import pytest

from scheduler.core import cache
from scheduler.core.errors import SpecError
from scheduler.runtime.pipeline_runner import step_job, sweep_key_part
from scheduler.core.pipelines import PipelineSpec
from scheduler.core.specs import JobSpec, parse_spec
from scheduler.core.sweeps import (
    SweepSpec,
    best_trial,
    budget_allows,
    expected_trial_cost,
    generate_trials,
    read_objective,
    substitute_trial,
)

OBJECTIVE = {"value": "metrics.json#regression.mse", "goal": "minimize"}
DESIGN_SWEEP = {
    "job": "train",
    "parameters": {"lr": {"loguniform": [0.0001, 0.1]}, "depth": {"choice": [3, 5, 7]}, "seed": {"grid": [1, 2]}},
    "trials": 8, "parallel": 2, "seed": 7, "objective": OBJECTIVE, "budget_usd": 5.0,
}


def sweep(**kw) -> SweepSpec:
    return SweepSpec.model_validate({"job": "train", "objective": OBJECTIVE, **kw})


def pipeline(step: dict, **kw) -> PipelineSpec:
    steps = [{"name": "prepare", "job": "prepare", "outputs": ["train.csv"]}, {"name": "tune", **step}]
    return parse_spec({"kind": "Pipeline", "name": "p", "steps": steps, **kw})


def sweep_step(**kw) -> dict:
    return {"sweep": DESIGN_SWEEP, "args": ["--lr", "${trial.lr}", "--depth", "${trial.depth}"],
            "inputs": {"train.csv": "prepare/train.csv"}, "outputs": ["model.pkl", "metrics.json"], **kw}


# -- trials ----------------------------------------------------------------------------------------
def test_the_design_example_is_deterministic_and_in_bounds():
    spec = SweepSpec.model_validate(DESIGN_SWEEP)
    trials = generate_trials(spec)
    assert trials == generate_trials(SweepSpec.model_validate(DESIGN_SWEEP))  # same seed, same trials
    assert len(trials) == 8
    assert [t["seed"] for t in trials] == [1, 2] * 4  # the grid is walked in order, cycled
    for t in trials:
        assert set(t) == {"lr", "depth", "seed"}
        assert 0.0001 <= t["lr"] <= 0.1 and t["depth"] in (3, 5, 7)
    assert len({t["lr"] for t in trials}) == 8
    other = generate_trials(SweepSpec.model_validate({**DESIGN_SWEEP, "seed": 8}))
    assert [t["lr"] for t in other] != [t["lr"] for t in trials]


def test_parameter_order_in_the_document_does_not_matter():
    a = sweep(parameters={"a": {"uniform": [0, 1]}, "b": {"randint": [1, 100]}}, trials=5, seed=3)
    b = sweep(parameters={"b": {"randint": [1, 100]}, "a": {"uniform": [0, 1]}}, trials=5, seed=3)
    assert generate_trials(a) == generate_trials(b)


def test_grid_is_a_cross_product_and_sets_the_default_trial_count():
    spec = sweep(parameters={"depth": {"grid": [3, 5, 7]}, "opt": {"grid": ["adam", "sgd"]}})
    assert spec.trial_count == 6
    trials = generate_trials(spec)
    assert {(t["depth"], t["opt"]) for t in trials} == {(d, o) for d in (3, 5, 7) for o in ("adam", "sgd")}
    assert len(trials) == 6


def test_default_trials_is_at_least_one():
    assert sweep().trial_count == 1
    assert generate_trials(sweep()) == [{}]
    assert sweep(parameters={"lr": {"uniform": [0, 1]}}).trial_count == 1


def test_fewer_trials_than_grid_points_takes_the_first_ones():
    trials = generate_trials(sweep(parameters={"x": {"grid": [1, 2, 3, 4]}}, trials=2))
    assert trials == [{"x": 1}, {"x": 2}]


def test_distributions_sample_their_ranges_and_types():
    spec = sweep(parameters={"u": {"uniform": [-1, 1]}, "l": {"loguniform": [1e-5, 1e-1]},
                             "r": {"randint": [2, 4]}, "c": {"choice": ["a", 1.5, True]}}, trials=200, seed=1)
    trials = generate_trials(spec)
    assert all(-1 <= t["u"] <= 1 for t in trials)
    assert all(1e-5 <= t["l"] <= 1e-1 for t in trials)
    assert {t["r"] for t in trials} == {2, 3, 4} and all(isinstance(t["r"], int) for t in trials)
    assert {repr(t["c"]) for t in trials} == {"'a'", "1.5", "True"}
    logs = [math.log10(t["l"]) for t in trials]  # log-uniform: about as many below 1e-3 as above
    assert 60 < sum(x < -3 for x in logs) < 140


def test_trial_values_substitute_into_args_and_env():
    spec = pipeline(sweep_step(env={"DEPTH": "${trial.depth}", "MODE": "x"}))
    job = JobSpec(name="train", artifact="train.py", artifact_hash="sha256:1", args=["--old"])
    trial = {"lr": 0.01, "depth": 5, "seed": 1}
    out = step_job(job, spec.step("tune"), {}, trial=trial)
    assert out.args == ["--lr", "0.01", "--depth", "5"]
    assert out.env == {"DEPTH": "5", "MODE": "x"}
    assert substitute_trial("${trial.flag}", {"flag": True}) == "true"


# -- budget ----------------------------------------------------------------------------------------
def test_the_first_parallel_trials_always_start():
    assert budget_allows(0.0, 0, 2, [])[0]
    assert budget_allows(0.0, 1, 2, [5.0])[0]
    assert not budget_allows(0.0, 2, 2, [5.0])[0]


def test_budget_uses_the_median_of_finished_trials():
    assert expected_trial_cost([]) == 0.0
    assert expected_trial_cost([1.0, 100.0, 2.0]) == 2.0
    # spent 3, expected 1.5 -> 4.5 <= 5: start; spent 4.5 + 1.5 = 6 > 5: stop
    assert budget_allows(5.0, 2, 2, [1.0, 2.0]) == (True, "")
    ok, why = budget_allows(5.0, 3, 2, [1.0, 2.0, 1.5])
    assert not ok and "budget_usd $5" in why and "would pass" in why
    assert budget_allows(None, 100, 1, [1e9])[0]  # no budget, no limit


def test_running_trials_count_as_committed_spend():
    assert budget_allows(2.5, 3, 3, [1.0])[0]  # 1 spent + 1 expected
    assert not budget_allows(3.5, 3, 3, [1.0], running=2)[0]  # 1 spent + 2 committed + 1 expected = 4
    assert budget_allows(4.0, 3, 3, [1.0], running=2)[0]  # reaching the budget exactly is allowed


# -- best trial ------------------------------------------------------------------------------------
def test_best_trial_minimize_maximize_and_ties():
    trials = [
        {"id": "a", "state": "SUCCEEDED", "objective": 2.0},
        {"id": "b", "state": "FAILED", "objective": 0.1},  # did not finish well: never wins
        {"id": "c", "state": "SUCCEEDED", "objective": 1.0},
        {"id": "d", "state": "SUCCEEDED", "objective": 1.0},
        {"id": "e", "state": "SUCCEEDED", "objective": None},
        {"id": "f", "state": "SUCCEEDED", "objective": 3.0},
    ]
    assert best_trial(trials, "minimize")["id"] == "c"  # tie: the earlier trial
    assert best_trial(trials, "maximize")["id"] == "f"
    assert best_trial([t for t in trials if t["id"] in "be"], "minimize") is None
    assert best_trial([], "maximize") is None


def test_read_objective():
    doc = {"regression": {"mse": 3, "per_fold": [1.5, 2.5]}, "label": "x", "flag": True}
    assert read_objective(doc, ["regression", "mse"]) == 3.0
    assert read_objective(doc, ["regression", "per_fold", "1"]) == 2.5
    for path, text in ((["regression", "rmse"], "no 'rmse'"), (["label"], "not a finite number"),
                       (["flag"], "not a finite number"), (["regression"], "not a finite number")):
        with pytest.raises(ValueError, match=text):
            read_objective(doc, path)
    with pytest.raises(ValueError, match="not a finite number"):
        read_objective({"m": float("nan")}, ["m"])


# -- the document ----------------------------------------------------------------------------------
def test_the_design_example_validates_and_names_its_job():
    spec = pipeline(sweep_step())
    step = spec.step("tune")
    assert step.job is None and step.job_name == "train" and step.sweep.parallel == 2
    assert spec.job_names() == {"prepare", "train"}
    assert step.upstream() == {"prepare"}
    assert spec.order() == ["prepare", "tune"]


@pytest.mark.parametrize("step,expected", [
    ({"sweep": DESIGN_SWEEP, "job": "train"}, "exactly one of 'job', 'fail' or 'sweep'"),
    ({"sweep": DESIGN_SWEEP, "fail": "no"}, "exactly one of 'job', 'fail' or 'sweep'"),
    ({"sweep": {**DESIGN_SWEEP, "parameters": {"lr": {"normal": [0, 1]}}}},
     "steps.1.sweep.parameters.lr={'normal': [0, 1]} is invalid: unknown distribution 'normal'"),
    ({"sweep": {**DESIGN_SWEEP, "parameters": {"lr": {"loguniform": [0, 0.1]}}}},
     "sweep.parameters.lr={'loguniform': [0, 0.1]} is invalid: loguniform bounds must be > 0"),
    ({"sweep": {**DESIGN_SWEEP, "parameters": {"lr": {"loguniform": [0.1, 0.01]}}}}, "loguniform needs low < high"),
    ({"sweep": {**DESIGN_SWEEP, "parameters": {"lr": {"uniform": [1]}}}}, "uniform takes [low, high]"),
    ({"sweep": {**DESIGN_SWEEP, "parameters": {"lr": {"randint": [5, 1]}}}}, "randint needs low <= high"),
    ({"sweep": {**DESIGN_SWEEP, "parameters": {"lr": {"choice": []}}}}, "choice needs at least one value"),
    ({"sweep": {**DESIGN_SWEEP, "parameters": {"lr": {"choice": [1], "grid": [2]}}}}, "exactly one distribution"),
    ({"sweep": {**DESIGN_SWEEP, "parameters": {"lr": 0.1}}}, "is a mapping like"),
    ({"sweep": {**DESIGN_SWEEP, "parameters": {"my-lr": {"choice": [1]}}}}, "'my-lr' is not an identifier"),
    ({"sweep": {**DESIGN_SWEEP, "objective": {"value": "metrics.json"}}},
     "sweep.objective.value='metrics.json' is invalid: 'metrics.json' is not 'output.json#json.path'"),
    ({"sweep": {**DESIGN_SWEEP, "objective": {"value": "x.json#a", "goal": "best"}}}, "sweep.objective.goal='best'"),
    ({"sweep": {**DESIGN_SWEEP, "objective": {"value": "other.json#a"}}}, "objective reads 'other.json'"),
    ({"sweep": {**DESIGN_SWEEP, "parallel": 0}}, "sweep.parallel=0 is invalid"),
    ({"sweep": {**DESIGN_SWEEP, "trials": 0}}, "sweep.trials=0 is invalid"),
    ({"sweep": {**DESIGN_SWEEP, "budget_usd": -1}}, "sweep.budget_usd=-1 is invalid"),
    ({"sweep": {**DESIGN_SWEEP, "tirals": 3}}, "unknown field 'steps.1.sweep.tirals'"),
    ({"args": ["${trial.momentum}"]}, "uses ${trial.momentum}, which is not a sweep parameter (declared: depth, lr, seed)"),
    ({"env": {"X": "${trial.nope}"}}, "uses ${trial.nope}, which is not a sweep parameter"),
])
def test_bad_sweep_documents_name_the_field_and_value(step, expected):
    body = sweep_step(**step)
    if "job" in step or "fail" in step:
        body = {**body, **step}
    with pytest.raises(SpecError) as err:
        pipeline(body)
    assert expected in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_trial_references_outside_a_sweep_step_are_refused():
    with pytest.raises(SpecError, match=r"uses \$\{trial.lr\}, but only sweep steps have trial parameters"):
        pipeline({"job": "train", "args": ["${trial.lr}"]})


def test_the_sweep_definition_is_in_the_cache_key_and_the_miss_says_so():
    job = JobSpec(name="train", artifact="train.py", artifact_hash="sha256:1")
    spec = SweepSpec.model_validate(DESIGN_SWEEP)
    parts = cache.key_parts(job, {}, {}, ["model.pkl"], None, sweep=sweep_key_part(spec))
    changed = spec.model_copy(update={"trials": 4})
    other = cache.key_parts(job, {}, {}, ["model.pkl"], None, sweep=sweep_key_part(changed))
    assert cache.cache_key(parts) != cache.cache_key(other)
    assert cache.explain_miss(parts, other) == "the sweep definition changed (trials)"
    plain = cache.key_parts(job, {}, {}, ["model.pkl"], None)
    assert "sweep" not in plain  # plain steps' keys are unchanged
    assert "the sweep definition changed" in cache.explain_miss(parts, plain)
    # `trials` left out means the grid size: the same trials, the same key
    implicit = SweepSpec.model_validate({**DESIGN_SWEEP, "trials": None, "parameters": {"s": {"grid": [1, 2]}}})
    explicit = implicit.model_copy(update={"trials": 2})
    assert sweep_key_part(implicit) == sweep_key_part(explicit)


def test_a_stored_sweep_reads_back_the_same():
    spec = pipeline(sweep_step())
    again = parse_spec(spec.model_dump(mode="json"), "Pipeline")  # as the catalog stores and reads it
    assert again == spec
    assert generate_trials(again.step("tune").sweep) == generate_trials(spec.step("tune").sweep)
