"""The stack program under `pulumi.runtime.set_mocks`: the resource graph and every resource's inputs."""

from __future__ import annotations

import json
import runpy

import pulumi
import pytest
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

import provider
from scheduler.cli.examples import RETRAIN
from tests.conftest import ROOT

PROGRAM = ROOT / "stacks" / "__main__.py"


class GraphMonitor(MockMonitor):
    """The SDK's mock monitor, also keeping each registration's dependencies (the resource graph)."""

    def __init__(self, mocks: "Recorder"):
        super().__init__(mocks)
        self.recorder = mocks

    def RegisterResource(self, request):
        self.recorder.depends[request.name] = list(request.dependencies)
        return super().RegisterResource(request)


class Recorder(pulumi.runtime.Mocks):
    def __init__(self):
        self.resources: dict[str, pulumi.runtime.MockResourceArgs] = {}
        self.depends: dict[str, list[str]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources[args.name] = args
        outs = dict(args.inputs)
        if args.typ.endswith(":Job"):
            outs.update(artifact_hash="sha256:mock", cheapest_shape="mock-shape")
        return f"{args.name}-id", outs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}, None

    def of_type(self, kind: str) -> dict:
        return {n: a for n, a in self.resources.items() if a.typ == f"pulumi-python:dynamic/costwise:{kind}"}


@pytest.fixture
def run_program():
    def run(config: dict, program=None) -> Recorder:
        mocks = Recorder()
        pulumi.runtime.set_mocks(mocks, project="costwise", stack="test", preview=False, monitor=GraphMonitor(mocks))
        pulumi.runtime.set_all_config(
            {f"costwise:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()},
            [f"costwise:{k}" for k in config if k == "registryToken"],
        )

        @pulumi.runtime.test
        def body():
            if program is None:
                runpy.run_path(str(PROGRAM), run_name="__main__")
            else:
                return program()

        body()
        return mocks

    yield run
    pulumi.runtime.set_all_config({})


def plain(value):
    return rpc.unwrap_rpc_secret(value)


def test_dev_stack_declares_local_shapes_jobs_and_the_pipeline(run_program):
    mocks = run_program({"backends": ["local"]})
    shapes = mocks.of_type("ComputeShape")
    assert set(shapes) == {"local-small", "local-large"}
    assert shapes["local-small"].inputs["backend"] == "local"
    assert "__provider" in shapes["local-small"].inputs
    jobs = mocks.of_type("Job")
    assert set(jobs) == {"prepare", "train", "evaluate", "register"}
    train = jobs["train"].inputs
    assert train["artifact"] == str(RETRAIN / "train.py")  # the example shipped with costwise
    assert train["requirements"] == {"cpus": 1, "memory_gib": 2}
    assert "image" not in train
    assert jobs["prepare"].inputs["entrypoint"] == "prepare.py"
    pipeline = mocks.of_type("Pipeline")["retrain"].inputs
    assert pipeline["schedule"] == {"cron": "0 3 * * 1"}
    assert [s["name"] for s in pipeline["steps"]] == ["prepare", "train", "evaluate", "register", "reject"]
    assert pipeline["parameter_types"] == {"learning_rate": "float", "mse_threshold": "float"}
    assert pipeline["backends"] == ["local"]
    assert {s["job"] for s in pipeline["steps"] if "job" in s} <= set(jobs)
    # the graph: jobs depend on every shape (created first, deleted last), the pipeline on every job
    names = lambda urns: {u.rsplit("::", 1)[-1] for u in urns}  # noqa: E731
    assert all(names(mocks.depends[j]) == set(shapes) for j in jobs)
    assert names(mocks.depends["retrain"]) == set(jobs)
    assert mocks.depends["local-small"] == []


def test_prod_stack_takes_its_shapes_and_backend_from_config(run_program):
    mocks = run_program({
        "backends": ["kubernetes"], "shapes": ["m5.*", "g5.xlarge"], "region": "us-east-1",
        "image": "registry.example.com/ml/retrain:1", "schedule": "30 2 * * *", "db": "sqlite:////tmp/x.db",
        "registryToken": "tok-not-in-plain",
    })
    shapes = mocks.of_type("ComputeShape")
    assert set(shapes) == {"m5.large", "m5.xlarge", "m5.2xlarge", "m5.4xlarge", "g5.xlarge"}
    g5 = shapes["g5.xlarge"].inputs
    assert g5["backend"] == "kubernetes" and g5["gpu_type"] == "A10G" and g5["gpus"] == 1
    assert g5["labels"] == {"node.kubernetes.io/instance-type": "g5.xlarge"}
    assert g5["db"] == "sqlite:////tmp/x.db"
    jobs = mocks.of_type("Job")
    assert {j.inputs["image"] for j in jobs.values()} == {"registry.example.com/ml/retrain:1"}
    register = jobs["register"].inputs
    assert rpc.is_rpc_secret(register["secret_env"])  # a Pulumi secret all the way to the engine
    assert plain(register["secret_env"]) == {"REGISTRY_TOKEN": "tok-not-in-plain"}
    assert mocks.of_type("Pipeline")["retrain"].inputs["schedule"] == {"cron": "30 2 * * *"}


def test_no_cloud_shapes_without_a_cloud_backend(run_program):
    mocks = run_program({"backends": ["local"], "shapes": ["m5.*"]})
    assert set(mocks.of_type("ComputeShape")) == {"local-small", "local-large"}


def test_env_values_given_as_secrets_move_to_secret_env(run_program, tmp_path):
    script = tmp_path / "job.py"
    script.write_text("print(1)\n")

    def program():
        job = provider.Job("j", provider.JobArgs(
            artifact=str(script), env={"MODE": "fast", "TOKEN": pulumi.Output.secret("tok")},
            secret_env={"OTHER": "env:OTHER"},
        ))
        return job.urn

    mocks = run_program({}, program=program)
    inputs = mocks.resources["j"].inputs
    assert inputs["env"] == {"MODE": "fast"}
    assert rpc.is_rpc_secret(inputs["secret_env"])
    assert plain(inputs["secret_env"]) == {"OTHER": "env:OTHER", "TOKEN": "tok"}
    assert inputs["name"] == "j"


def test_plain_env_is_left_alone_and_relative_artifacts_are_made_absolute(run_program, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def program():
        return provider.Job("k", artifact="jobs/k.py", env={"A": "1"}).urn

    inputs = run_program({}, program=program).resources["k"].inputs
    assert inputs["env"] == {"A": "1"} and "secret_env" not in inputs
    assert inputs["artifact"] == str(tmp_path / "jobs" / "k.py")
