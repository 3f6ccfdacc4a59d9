"""Every number in a document is finite and bounded; every text, list and nesting too (issue 10).

Each refusal is one SpecError line that names the field and the value."""

import itertools
import math
import time

import pytest

import scheduler.core.budgets  # noqa: F401 - registers the Budget kind
import scheduler.core.pipelines  # noqa: F401 - registers the Pipeline kind
from scheduler.core import bounds
from scheduler.core.durations import parse_duration
from scheduler.core.errors import SpecError
from scheduler.core.pipelines import parse_params
from scheduler.core.plain_values import first_problem, short_repr
from scheduler.core.specs import parse_overrides, parse_spec
from scheduler.core.sweeps import generate_trials, grid_point
from scheduler.core.yaml_documents import DocumentTextError, parse_documents

SHAPE = {"kind": "Shape", "name": "cpu", "vcpus": 2, "memory_gib": 4, "price_per_hour": 0.1}
JOB = {"kind": "Job", "name": "train", "artifact": "train.py"}
BUDGET = {"kind": "Budget", "name": "ml", "limit_usd": 50}
SWEEP = {"job": "train", "parameters": {"lr": {"uniform": [0.001, 0.1]}}, "trials": 4,
         "objective": {"value": "m.json#mse"}}
PIPELINE = {"kind": "Pipeline", "name": "p", "parameters": {"lr": 0.1},
            "steps": [{"name": "tune", "sweep": SWEEP, "outputs": ["m.json"]}]}
INF, NAN = float("inf"), float("nan")


def refused(doc) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    text = str(info.value)
    assert "\n" not in text and len(text) < 400, text
    return text


def with_path(doc, path, value):
    """A deep copy of ``doc`` with ``value`` at the dotted ``path``."""
    import copy

    out = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[int(last) if isinstance(node, list) else last] = value
    return out


NON_FINITE = [
    (SHAPE, "vcpus"), (SHAPE, "memory_gib"), (SHAPE, "gpus"), (SHAPE, "gpu_memory_gib"), (SHAPE, "price_per_hour"),
    (SHAPE, "spot_price_per_hour"), (JOB, "requirements.cpus"), (JOB, "requirements.memory_gib"),
    (JOB, "max_runtime"), (JOB, "stop_grace"), (JOB, "max_wait"), (JOB, "expected_duration"),
    (JOB, "schedule.interval"), (BUDGET, "limit_usd"), (PIPELINE, "parameters.lr"),
    (PIPELINE, "steps.0.sweep.budget_usd"), (PIPELINE, "steps.0.max_runtime"),
    (PIPELINE, "steps.0.requirements.cpus"),
]


@pytest.mark.parametrize("value", [INF, -INF, NAN], ids=["inf", "-inf", "nan"])
@pytest.mark.parametrize("doc,path", NON_FINITE, ids=[f"{d['kind']}.{p}" for d, p in NON_FINITE])
def test_no_number_is_nan_or_infinite(doc, path, value):
    text = refused(with_path(doc, path, value))
    assert f"{path}={value!r}" in text and "not a finite number" in text


CAPS = [
    (JOB, "stop_grace", "2h", "1-hour cap"),
    (JOB, "max_wait", "31d", "30-day cap"),
    (JOB, "expected_duration", "31d", "30-day cap"),
    (JOB, "schedule.interval", "400d", "366-day cap"),
    (PIPELINE, "steps.0.max_runtime", "31d", "30-day cap"),
    (SHAPE, "vcpus", 10**6, "less than or equal to 16384"),
    (SHAPE, "memory_gib", 10**8, "less than or equal to"),
    (SHAPE, "gpus", 5000, "less than or equal to 1024"),
    (SHAPE, "price_per_hour", 1e6, "less than or equal to 100000"),
    (SHAPE, "capacity", 10**12, "less than or equal to 1000000000"),
    (JOB, "retries", 1000, "less than or equal to 100"),
    (JOB, "requirements.gpus", 2000, "less than or equal to 1024"),
    (BUDGET, "limit_usd", 1e15, "less than or equal to"),
    (PIPELINE, "steps.0.sweep.trials", 10**5, "less than or equal to 10000"),
    (PIPELINE, "steps.0.sweep.parallel", 10**5, "less than or equal to 1000"),
    (PIPELINE, "steps.0.sweep.budget_usd", 1e15, "less than or equal to"),
]


@pytest.mark.parametrize("doc,path,value,expected", CAPS, ids=[f"{c[0]['kind']}.{c[1]}" for c in CAPS])
def test_sizes_durations_and_money_are_capped(doc, path, value, expected):
    text = refused(with_path(doc, path, value))
    assert path in text and expected in text


def test_the_caps_themselves_are_accepted():
    job = parse_spec({**JOB, "stop_grace": "1h", "max_wait": "30d", "expected_duration": "30d",
                      "schedule": {"interval": "366d"}})
    assert (job.stop_grace, job.max_wait, job.schedule.interval) == (3600, 30 * 86400, 366 * 86400)
    assert parse_spec({**SHAPE, "capacity": 10**9}).capacity == 10**9


@pytest.mark.parametrize("value", [10**19, -(10**30), 10**5000], ids=["2^63+", "-10^30", "10^5000"])
def test_ints_stay_in_64_bits_wherever_they_are(value):
    for doc, path in [(PIPELINE, "parameters.lr"), (PIPELINE, "steps.0.sweep.seed"), (JOB, "retries")]:
        text = refused(with_path(doc, path, value))
        assert path in text and "64-bit integer range" in text


def test_durations_are_finite_even_as_text_or_huge_ints():
    for value in ["9" * 400 + "s", 10**400]:
        with pytest.raises(ValueError, match="stop_grace: .* is not a finite duration"):
            parse_duration(value, field="stop_grace")


LABELS = [
    ({**JOB, "labels": {"team": "x" * 64}}, "labels.team", "at most 63 characters"),
    ({**SHAPE, "labels": {"k" * 318: "v"}}, "labels.", "at most 317 characters"),
    ({**JOB, "labels": {f"k{i}": "v" for i in range(65)}}, "labels=", "at most 64 items"),
    ({**BUDGET, "labels": {"team": "y" * 100}}, "labels.team", "at most 63 characters"),
]


@pytest.mark.parametrize("doc,path,expected", LABELS, ids=["job value", "shape key", "count", "budget value"])
def test_labels_keep_kubernetes_limits(doc, path, expected):
    text = refused(doc)
    assert path in text and expected in text


def test_label_limits_themselves_are_accepted():
    key = "a" * 253 + "/" + "b" * 63
    assert parse_spec({**SHAPE, "labels": {key: "v" * 63}}).labels[key] == "v" * 63


TEXTS = [
    ({**JOB, "args": ["x"] * 1025}, "args=", "at most 1024 items"),
    ({**JOB, "args": ["x" * 30000] * 10}, "args=", "add up to 300000 characters"),
    ({**JOB, "args": ["x" * 40000]}, "args.0=", "40000 characters long"),
    ({**JOB, "env": {f"V{i}": "x" * 30000 for i in range(10)}}, "env=", "add up to"),
    ({**JOB, "env": {"A": "one\x00two"}}, "env.A=", "NUL"),
    ({**JOB, "env": {"A=B": "x"}}, "env.A=B", "should match pattern"),
    ({**JOB, "env": {"": "x"}}, "env.", "at least 1 character"),
    ({**JOB, "artifact": "train\x00.py"}, "artifact=", "NUL"),
    ({**JOB, "image": "i" * 40000}, "image=", "characters long"),
    ({**PIPELINE, "steps": [{**PIPELINE["steps"][0], "outputs": [f"o{i}" for i in range(1001)] + ["m.json"]}]},
     "steps.0.outputs", "at most 1000 items"),
    ({**JOB, "hooks": {"on_success": [{"job": "j"}] * 1001}}, "hooks.on_success", "at most 1000 items"),
    ({**JOB, "name": b"train"}, "name=", "binary data"),
    ({**PIPELINE, "steps": [{**PIPELINE["steps"][0], "outputs": ["m.json", "o" * 256]}]}, "steps.0", "255 bytes"),
]


@pytest.mark.parametrize("doc,path,expected", TEXTS, ids=[
    "arg count", "args total", "one arg", "env total", "env NUL", "env name =", "env name empty", "artifact NUL",
    "image", "outputs", "hooks", "bytes", "output name"])
def test_texts_and_lists_have_lengths(doc, path, expected):
    text = refused(doc)
    assert path in text and expected in text


def test_unhashable_or_odd_kinds_are_one_line():
    assert "kind=['Job'] is not one of" in refused({"kind": ["Job"], "name": "x"})
    assert "kind={'a': 1} is not one of" in refused({"kind": {"a": 1}, "name": "x"})
    assert "kind=None is not one of" in refused({"name": "x"})


def test_deep_and_recursive_values_are_refused_without_recursing():
    deep = 1
    for _ in range(10_000):
        deep = [deep]
    text = refused({**JOB, "args": deep})
    assert "args.0.0" in text and "nested deeper than 32 levels" in text
    loop: list = []
    loop.append(loop)
    assert "nested deeper than 32 levels" in refused({**JOB, "labels": {"a": loop}})
    assert "nested deeper" in refused({**JOB, "name": deep})  # the label of the message is safe too


def test_short_repr_is_safe_on_hostile_values():
    deep: list = []
    deep.append(deep)
    assert len(short_repr(deep)) < 100 and len(short_repr(10**10000)) < 100 and len(short_repr("x" * 10**6)) < 100


def test_a_document_with_too_many_values_is_refused():
    text = refused({**JOB, "labels": {"a": [0] * (bounds.DOCUMENT_VALUES_MAX + 1)}})
    assert f"more than {bounds.DOCUMENT_VALUES_MAX} values" in text


def test_conditions_compare_with_a_scalar():
    steps = [{"name": "a", "job": "j", "outputs": ["m.json"]},
             {"name": "b", "job": "j", "when": {"value": "a/m.json#x", "op": "<", "than": [[1]]}}]
    text = refused({"kind": "Pipeline", "name": "p", "steps": steps})
    assert "steps.1.when.than=[[1]]" in text and "not a number, a string or a boolean" in text


# -- schedules --------------------------------------------------------------------------------------
@pytest.mark.parametrize("zone", ["Mars/Olympus", "America", "../../etc/passwd", "/etc/localtime", "a" * 300, "UTC\x00"])
def test_unknown_time_zones_are_refused(zone):
    text = refused({**JOB, "schedule": {"cron": "0 3 * * *", "timezone": zone}})
    assert "schedule.timezone=" in text


def test_every_accepted_schedule_builds_its_trigger():
    from datetime import datetime, timezone

    from scheduler.daemon.schedules import trigger_for

    for schedule in [{"cron": "0 3 * * 1", "timezone": "Europe/Paris"}, {"interval": "1s"}, {"interval": "366d"}]:
        trigger = trigger_for(parse_spec({**JOB, "schedule": schedule}).schedule)
        assert trigger.get_next_fire_time(None, datetime.now(timezone.utc)) is not None


# -- sweeps ------------------------------------------------------------------------------------------
def test_a_huge_grid_is_refused_by_its_size_without_enumerating_it():
    values = list(range(1000))
    sweep = {**SWEEP, "parameters": {"a": {"grid": values}, "b": {"grid": values}, "c": {"grid": values}}}
    sweep.pop("trials")
    started = time.perf_counter()
    text = refused(with_path(PIPELINE, "steps.0.sweep", sweep))
    assert time.perf_counter() - started < 2
    assert "1000000000 points (a 1000 x b 1000 x c 1000)" in text and "10000-trial cap" in text


def test_grid_and_choice_lists_are_bounded():
    sweep = {**SWEEP, "parameters": {"a": {"choice": list(range(1001))}}}
    assert "at most 1000 items" in refused(with_path(PIPELINE, "steps.0.sweep", sweep))


def test_grid_points_follow_itertools_product_without_building_it():
    grid = [[1, 2, 3], ["a", "b"], [True, False, None, 0.5]]
    product = list(itertools.product(*grid))
    assert [grid_point(grid, i) for i in range(len(product))] == product
    sweep = {**SWEEP, "parameters": {"x": {"grid": [1, 2, 3]}, "y": {"grid": ["a", "b"]}}, "trials": 8}
    spec = parse_spec(with_path(PIPELINE, "steps.0.sweep", sweep)).steps[0].sweep
    cycle = list(itertools.product([1, 2, 3], "ab"))
    assert [(t["x"], t["y"]) for t in generate_trials(spec)] == cycle + cycle[:2]


# -- run overrides and parameters ----------------------------------------------------------------------
@pytest.mark.parametrize("data,expected", [
    ({"max_runtime": INF}, "max_runtime=inf is not a finite number"),
    ({"max_runtime": "31d"}, "30-day cap"),
    ({"env": {"A": "x\x00"}}, "env.A='x\\x00' contains a NUL character"),
    ({"args": ["a"] * 2000}, "at most 1024 items"),
    ({"env": {"A=B": "c"}}, "should match pattern"),
])
def test_run_overrides_are_bounded_like_documents(data, expected):
    with pytest.raises(SpecError, match="run override") as info:
        parse_overrides(data)
    assert expected in str(info.value)


@pytest.mark.parametrize("pair,expected", [
    ({"lr": "1e400"}, "lr='1e400' is not a finite number"),
    ({"lr": "nan"}, "lr='nan' is not a finite number"),
    ({"epochs": "99999999999999999999"}, "outside the 64-bit integer range"),
    ({"name": "x" * 40000}, "characters long"),
])
def test_pipeline_parameters_from_the_command_line_are_bounded(pair, expected):
    spec = parse_spec({**PIPELINE, "parameters": {"lr": 0.1, "epochs": 3, "name": "a"}})
    with pytest.raises(SpecError) as info:
        parse_params(spec, pair)
    assert expected in str(info.value) and "\n" not in str(info.value)


# -- YAML text ------------------------------------------------------------------------------------------
LAUGHS = "\n".join(
    ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
)


def test_a_billion_laughs_is_refused_before_it_is_built():
    started = time.perf_counter()
    with pytest.raises(DocumentTextError, match=f"more than {bounds.DOCUMENT_VALUES_MAX} values"):
        parse_documents(LAUGHS)
    assert time.perf_counter() - started < 2


def test_small_aliases_still_work():
    docs = parse_documents("base: &req {cpus: 1, memory_gib: 2}\nother: *req\n---\n---\nx: 1\n")
    assert docs == [{"base": {"cpus": 1, "memory_gib": 2}, "other": {"cpus": 1, "memory_gib": 2}}, {"x": 1}]


@pytest.mark.parametrize("text", [
    "a: " + "[" * 10_000 + "]" * 10_000,
    "a: " + "{b: " * 10_000 + "1" + "}" * 10_000,
    "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "x",
    "- " * 5000 + "x",
], ids=["flow lists", "flow maps", "block maps", "block lists"])
def test_deep_yaml_is_one_error_not_a_recursion_error(text):
    with pytest.raises(DocumentTextError) as info:
        parse_documents(text)
    assert "nest" in info.value.problem and info.value.line is not None


def test_an_alias_inside_its_own_node_is_refused():
    with pytest.raises(DocumentTextError, match=r"alias \*a refers to a node that contains it"):
        parse_documents("a: &a [1, *a]\n")


def test_a_reader_error_is_one_line():
    with pytest.raises(DocumentTextError) as info:
        parse_documents("kind: Job\nname: a\x00b\n")
    assert "\n" not in info.value.problem and "#x0000" in info.value.problem


def test_plain_values_name_the_first_problem_in_document_order():
    assert first_problem({"a": [1, {"b": NAN}], "c": INF})[:1] == ("a.1.b",)
    assert first_problem({"ok": [1, "two", {"three": 3.0}, True, None]}) is None
    assert math.isinf(first_problem({"x": {"y": INF}})[1])


# -- the Pulumi provider checks with the same models ----------------------------------------------------
def test_provider_check_refuses_what_apply_refuses(home, monkeypatch):
    import provider

    monkeypatch.setenv("COSTWISE_HOME", str(home))
    shape = {"name": "s", "vcpus": 2.0, "memory_gib": 4.0, "price_per_hour": INF}
    failures = provider.ComputeShapeProvider().check({}, shape).failures
    assert [f.property for f in failures] == ["price_per_hour"] and "finite" in failures[0].reason
    job = {"name": "j", "artifact": "/x.py", "env": {"A": "x\x00"}}
    failures = provider.JobProvider().check({}, job).failures
    assert failures and "env.A='x\\x00' contains a NUL character" in failures[0].reason
