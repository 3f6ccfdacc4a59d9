import pytest

from scheduler.core.durations import format_duration, parse_duration
from scheduler.core.errors import SpecError
from scheduler.core.specs import JobSpec, ShapeSpec, parse_spec

JOB = {"kind": "Job", "name": "train", "artifact": "train.py"}
SHAPE = {"kind": "Shape", "name": "cpu", "vcpus": 2, "memory_gib": 4, "price_per_hour": 0.1}


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("2h", 7200), ("3d", 259200), (45, 45), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5 parsecs", "", "m10", True, "-3s", -1])
def test_bad_durations_name_the_value(bad):
    with pytest.raises(ValueError, match="max_runtime"):
        parse_duration(bad, field="max_runtime")


def test_format_duration():
    assert [format_duration(s) for s in (0.42, 42, 185, 7800, 97200)] == ["0.4s", "42s", "3m05s", "2h10m", "1d3h"]


def message(doc):
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_unknown_key_is_refused_with_a_suggestion():
    text = message({**JOB, "requirements": {"gpu_typ": "A10"}})
    assert "requirements.gpu_typ" in text and "did you mean 'gpu_type'" in text


def test_negative_memory_names_field_and_value():
    text = message({**JOB, "requirements": {"memory_gib": -4}})
    assert "requirements.memory_gib=-4" in text


def test_parsecs_and_the_30_day_cap():
    assert "max_runtime='5 parsecs'" in message({**JOB, "max_runtime": "5 parsecs"})
    assert "30-day cap" in message({**JOB, "max_runtime": "31d"})
    assert parse_spec({**JOB, "max_runtime": "30d"}).max_runtime == 30 * 86400


def test_defaults_follow_the_design():
    job = parse_spec(JOB)
    assert (job.max_runtime, job.stop_grace, job.retries) == (86400, 10, 0)
    assert job.requirements.gpus == 0


def test_protobuf_floats_are_normalised():
    shape = parse_spec({**SHAPE, "capacity": 4.0, "vcpus": 2.0})
    assert isinstance(shape, ShapeSpec) and shape.capacity == 4 and isinstance(shape.capacity, int)
    job = parse_spec({**JOB, "args": ["--epochs", 3.0], "env": {"N": 2.0, "FLAG": True}, "retries": 2.0})
    assert job.args == ["--epochs", "3"] and job.env == {"N": "2", "FLAG": "true"} and job.retries == 2


def test_secrets_are_references_only():
    assert "references" in message({**JOB, "secret_env": {"TOKEN": "hunter2"}})
    job = parse_spec({**JOB, "secret_env": {"TOKEN": "env:TRAIN_TOKEN", "KEY": "file:/etc/key"}})
    assert isinstance(job, JobSpec) and job.secret_env["TOKEN"] == "env:TRAIN_TOKEN"


def test_schedules():
    assert parse_spec({**JOB, "schedule": {"cron": "0 3 * * 1"}}).schedule.cron == "0 3 * * 1"
    assert parse_spec({**JOB, "schedule": {"interval": "30s"}}).schedule.interval == 30
    assert "cron" in message({**JOB, "schedule": {"cron": "0 3 * * 9"}})
    assert "exactly one" in message({**JOB, "schedule": {}})


def test_unknown_kind_and_bad_names():
    assert "kind='Cluster'" in message({"kind": "Cluster", "name": "x"})
    assert "name=" in message({**SHAPE, "name": "bad name!"})


def test_shape_gpu_type_needs_gpus():
    assert "gpu_type 'A10' given but gpus is 0" in message({**SHAPE, "gpu_type": "A10"})


def test_unknown_keys_inside_list_items_get_a_suggestion():
    import scheduler.core.pipelines  # noqa: F401 - registers the Pipeline kind

    text = message({"kind": "Pipeline", "name": "p", "steps": [{"name": "a", "job": "j", "requirments": {}}]})
    assert "steps.0.requirments" in text and "did you mean 'requirements'" in text
