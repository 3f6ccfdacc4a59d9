"""The providers driven over gRPC exactly as the Pulumi engine drives them.

A real `python -u -m pulumi.dynamic` host is started with this test's COSTWISE_HOME; this file plays
the engine (Configure, Check, Diff, Create, Read, Update, Delete), with each provider serialised the
SDK's way into `__provider`, then looks at the catalog through the real `costwise` CLI.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

import provider
from tests.conftest import ROOT, write

SECRET = "s3cr3t-Zq8-do-not-leak"


def _struct(props: dict) -> struct_pb2.Struct:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(props, {}))
    finally:
        loop.close()


def _secret_struct(props: dict, secret_paths: dict) -> struct_pb2.Struct:
    """Like the engine talking to a provider that did not strip secrets: values wrapped in the secret sig."""
    struct = _struct(props)
    for key, inner in secret_paths.items():
        struct[key][inner] = {rpc._special_sig_key: rpc._special_secret_sig, "value": struct[key][inner]}
    return struct


class Engine:
    """Plays the Pulumi engine against one dynamic-provider host."""

    def __init__(self, port: int):
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    def configure(self):
        return self.stub.Configure(provider_pb2.ConfigureRequest(args=_struct({}), acceptSecrets=True))

    def urn(self, res: provider.CatalogProvider, name: str) -> str:
        return f"urn:pulumi:test::costwise::pulumi-python:dynamic/costwise:{res.kind}::{name}"

    def check(self, res, name, news, olds=None, secret_paths=None):
        news = {**news, "__provider": serialize_provider(res)}
        struct = _secret_struct(news, secret_paths) if secret_paths else _struct(news)
        reply = self.stub.Check(provider_pb2.CheckRequest(urn=self.urn(res, name), olds=_struct(olds or {}), news=struct))
        return rpc.deserialize_properties(reply.inputs), [(f.property, f.reason) for f in reply.failures]

    def diff(self, res, name, id_, olds, news):
        reply = self.stub.Diff(provider_pb2.DiffRequest(id=id_, urn=self.urn(res, name), olds=_struct(olds), news=_struct(news)))
        return reply

    def create(self, res, name, checked):
        reply = self.stub.Create(provider_pb2.CreateRequest(urn=self.urn(res, name), properties=_struct(checked)))
        return reply.id, rpc.deserialize_properties(reply.properties)

    def read(self, res, name, id_, outs, inputs):
        reply = self.stub.Read(provider_pb2.ReadRequest(id=id_, urn=self.urn(res, name), properties=_struct(outs), inputs=_struct(inputs)))
        return reply.id, rpc.deserialize_properties(reply.properties), rpc.deserialize_properties(reply.inputs)

    def update(self, res, name, id_, olds, checked):
        reply = self.stub.Update(provider_pb2.UpdateRequest(id=id_, urn=self.urn(res, name), olds=_struct(olds), news=_struct(checked)))
        return rpc.deserialize_properties(reply.properties)

    def delete(self, res, name, id_, outs):
        self.stub.Delete(provider_pb2.DeleteRequest(id=id_, urn=self.urn(res, name), properties=_struct(outs)))

    # what `pulumi up` does for a new resource, and for an existing one
    def up_new(self, res, name, inputs):
        checked, failures = self.check(res, name, inputs)
        assert not failures, failures
        return self.create(res, name, checked)

    def up_existing(self, res, name, id_, old_inputs, old_outs, inputs):
        checked, failures = self.check(res, name, inputs, olds=old_inputs)
        assert not failures, failures
        diff = self.diff(res, name, id_, old_outs, checked)
        return checked, diff


@pytest.fixture
def host(home, tmp_path):
    """The SDK's dynamic-provider host, writing to this test's catalog; yields (engine, stderr path)."""
    env = {**os.environ, "COSTWISE_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("COSTWISE_DB", None)
    log = open(tmp_path / "host.log", "w+")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.dynamic"], stdout=subprocess.PIPE, stderr=log, env=env, cwd=tmp_path
    )
    try:
        port = int(proc.stdout.readline())
        engine = Engine(port)
        engine.configure()
        engine.startup_s = time.perf_counter() - started
        yield engine, Path(log.name)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


SHAPES = {
    "small": {"name": "small", "vcpus": 2, "memory_gib": 4, "price_per_hour": 0.05, "capacity": 2},
    "big": {"name": "big", "vcpus": 8, "memory_gib": 32, "price_per_hour": 0.4},
}


def _job(tmp_path, text="print('hello from train')\n", **extra):
    script = write(tmp_path / "jobs" / "train.py", text)
    return {"name": "train", "artifact": str(script), "requirements": {"cpus": 1, "memory_gib": 2}, **extra}


def _declare_shapes(engine):
    shapes = provider.ComputeShapeProvider()
    return {name: engine.up_new(shapes, name, doc) for name, doc in SHAPES.items()}


def test_shape_and_job_lifecycle(host, cli, tmp_path):
    engine, _ = host
    shapes = provider.ComputeShapeProvider()
    jobs = provider.JobProvider()
    created = _declare_shapes(engine)
    assert created["small"][0] == "small"
    assert created["small"][1]["capacity"] == 2 and isinstance(created["small"][1]["capacity"], float)
    listed = {s["name"]: s for s in cli.json("shapes")}
    assert set(listed) == {"small", "big"} and listed["small"]["vcpus"] == 2

    # create a job: present, with its hash, the shapes that fit and the cheapest one
    inputs = _job(tmp_path)
    checked, failures = engine.check(jobs, "train", inputs)
    assert not failures
    assert checked["artifact_hash"].startswith("sha256:")
    job_id, outs = engine.create(jobs, "train", checked)
    assert job_id == "train"
    assert outs["artifact_hash"] == checked["artifact_hash"]
    assert outs["fits"] == ["small", "big"] and outs["cheapest_shape"] == "small"
    assert Path(outs["artifact_path"], "train.py").is_file()

    # identical inputs: no diff (also when the serialised provider's bytes differ, as after an upgrade)
    checked2, diff = engine.up_existing(jobs, "train", job_id, checked, outs, inputs)
    assert diff.changes == provider_pb2.DiffResponse.DIFF_NONE and not diff.replaces
    upgraded = {**checked2, "__provider": serialize_provider(provider.ComputeShapeProvider())}  # other bytes
    assert engine.diff(jobs, "train", job_id, outs, upgraded).changes == provider_pb2.DiffResponse.DIFF_NONE

    # runnable through the CLI
    run = cli.json("run", "train", "--wait")
    assert run["state"] == "SUCCEEDED" and run["shape"] == "small"

    # another change: an in-place update that returns every output
    checked3, diff = engine.up_existing(jobs, "train", job_id, checked, outs, {**inputs, "args": ["--epochs", 3]})
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and list(diff.replaces) == []
    outs3 = engine.update(jobs, "train", job_id, outs, checked3)
    assert outs3["args"] == ["--epochs", "3"] and outs3["fits"] == ["small", "big"]
    assert outs3["artifact_hash"] == outs["artifact_hash"]
    stored = _catalog_job(cli.home, "train")
    assert stored.args == ["--epochs", "3"]

    # artifact change: a replacement (create the new one, then delete the old one)
    changed = _job(tmp_path, text="print('hello v2')\n", args=["--epochs", "3"])
    checked4, diff = engine.up_existing(jobs, "train", job_id, checked3, outs3, changed)
    assert checked4["artifact_hash"] != checked3["artifact_hash"]
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert "artifact_hash" in diff.replaces and not diff.deleteBeforeReplace
    new_id, outs4 = engine.create(jobs, "train", checked4)
    engine.delete(jobs, "train", job_id, outs3)
    assert _catalog_job(cli.home, "train").artifact_hash == checked4["artifact_hash"]
    run = cli.json("run", "train", "--wait")
    assert run["state"] == "SUCCEEDED"
    assert "hello v2" in cli("logs", run["id"]).stdout

    # refresh sees drift made outside Pulumi
    drift = write(tmp_path / "drift.yaml", f"""
        kind: Job
        name: train
        artifact: {tmp_path / 'jobs' / 'train.py'}
        requirements: {{cpus: 1, memory_gib: 2}}
        retries: 2
    """)
    assert cli("apply", str(drift)).returncode == 0
    rid, routs, rinputs = engine.read(jobs, "train", new_id, outs4, checked4)
    assert rid == "train" and routs["retries"] == 2 and rinputs["retries"] == 2

    # rename: a replacement
    _, diff = engine.up_existing(jobs, "train", new_id, checked4, routs, {**changed, "name": "train-v2"})
    assert "name" in diff.replaces

    # delete: gone, and read says so
    engine.delete(jobs, "train", new_id, routs)
    assert "train" not in [j.name for j in _catalog_list(cli.home, "Job")]
    assert engine.read(jobs, "train", new_id, routs, checked4)[0] == ""
    engine.delete(shapes, "big", "big", created["big"][1])
    assert [s["name"] for s in cli.json("shapes")] == ["small"]


def test_check_failures_name_the_field_and_value(host):
    engine, _ = host
    _, failures = engine.check(provider.ComputeShapeProvider(), "bad", {"name": "bad", "vcpus": 2, "memory_gib": -4, "price_per_hour": 1})
    assert len(failures) == 1
    field, reason = failures[0]
    assert field == "memory_gib" and "-4" in reason
    _, failures = engine.check(provider.ComputeShapeProvider(), "bad", {"name": "bad", "vcpus": 2, "memory_gb": 4, "price_per_hour": 1})
    assert ("memory_gib", "Shape 'bad': memory_gib is required") in failures
    assert [r for f, r in failures if f == "memory_gb" and "did you mean 'memory_gib'" in r]
    _, failures = engine.check(provider.JobProvider(), "j", {"name": "j", "artifact": "/nope/train.py"})
    assert failures == [("artifact", failures[0][1])] and "/nope/train.py" in failures[0][1]
    _, failures = engine.check(provider.JobProvider(), "j", {"name": "j", "artifact": "/nope.py", "max_runtime": "45d"})
    assert failures[0][0] == "max_runtime"


def test_delete_with_live_runs_is_refused_unless_told(host, cli, tmp_path):
    engine, _ = host
    jobs = provider.JobProvider()
    _declare_shapes(engine)
    job_id, outs = engine.up_new(jobs, "train", _job(tmp_path))
    queued = cli.json("run", "train")  # no daemon, no --wait: stays queued
    assert queued["state"] == "QUEUED"
    with pytest.raises(grpc.RpcError) as refused:
        engine.delete(jobs, "train", job_id, outs)
    assert "queued or running" in refused.value.details() and "cancel_runs_on_delete" in refused.value.details()
    assert _catalog_job(cli.home, "train") is not None
    checked, _ = engine.check(jobs, "train", {**_job(tmp_path), "cancel_runs_on_delete": True})
    outs = engine.update(jobs, "train", job_id, outs, checked)
    engine.delete(jobs, "train", job_id, outs)
    assert _catalog_job(cli.home, "train") is None
    assert cli.json("runs", "--job", "train")[0]["state"] == "CANCELED"


def test_secret_env_is_sealed_and_reaches_the_run(host, cli, home, tmp_path):
    engine, log = host
    jobs = provider.JobProvider()
    _declare_shapes(engine)
    digest = hashlib.sha256(SECRET.encode()).hexdigest()  # the artifact must not hold the secret either
    script = (
        "import hashlib, os\n"
        f"print('token ok' if hashlib.sha256(os.environ['API_TOKEN'].encode()).hexdigest() == {digest!r} else 'wrong')\n"
        "print('db ok' if os.environ['DB_PASS'].startswith('pw-') else 'wrong', os.environ['MODE'])\n"
    )
    inputs = _job(tmp_path, text=script, env={"MODE": "full", "DB_PASS": "pw-" + SECRET}, secret_env={"API_TOKEN": SECRET})
    # DB_PASS arrives as a Pulumi secret inside env (from a caller that did not strip it), which makes
    # the whole env map secret on the way in; API_TOKEN as a plain secret_env value
    checked, failures = engine.check(jobs, "train", inputs, secret_paths={"env": "DB_PASS"})
    assert not failures
    assert "env" not in checked
    assert set(checked["secret_env"]) == {"API_TOKEN", "DB_PASS", "MODE"}
    assert all(v.startswith("file:") for v in checked["secret_env"].values())
    job_id, outs = engine.create(jobs, "train", checked)
    run = cli.json("run", "train", "--wait")
    assert run["state"] == "SUCCEEDED"
    assert "token ok\ndb ok full" in cli("logs", run["id"]).stdout
    sealed = Path(checked["secret_env"]["API_TOKEN"].removeprefix("file:"))
    assert sealed.stat().st_mode & 0o077 == 0

    # the same value again: no diff; another value: an in-place update
    again, _ = engine.check(jobs, "train", inputs, secret_paths={"env": "DB_PASS"})
    assert engine.diff(jobs, "train", job_id, outs, again).changes == provider_pb2.DiffResponse.DIFF_NONE
    rotated, _ = engine.check(jobs, "train", {**inputs, "secret_env": {"API_TOKEN": SECRET + "-2"}}, secret_paths={"env": "DB_PASS"})
    diff = engine.diff(jobs, "train", job_id, outs, rotated)
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and not diff.replaces
    outs = engine.update(jobs, "train", job_id, outs, rotated)

    everything = [str(outs), str(checked), str(rotated), log.read_text(), cli("runs", "--json").stdout,
                  cli("show", run["id"], "--json").stdout, cli("logs", run["id"]).stdout]
    for name in ("catalog.db", "catalog.db-wal"):
        if (home / name).exists():
            everything.append((home / name).read_bytes().decode("latin-1"))
    for results in (home / "runs").rglob("*.json"):
        everything.append(results.read_text())
    assert not [i for i, text in enumerate(everything) if SECRET in text]

    # a secret anywhere else is refused rather than stored
    _, failures = engine.check(jobs, "train", {**_job(tmp_path), "labels": {"team": "ml"}}, secret_paths={"labels": "team"})
    assert failures and failures[0][0] == "labels"
    engine.delete(jobs, "train", job_id, outs)
    assert not sealed.exists()


def test_protocol_round_trip_time(host, tmp_path):
    """Figures: host start-up, and one full create/update/read/delete round trip of a shape."""
    engine, _ = host
    shapes = provider.ComputeShapeProvider()
    started = time.perf_counter()
    id_, outs = engine.up_new(shapes, "small", SHAPES["small"])
    checked, _ = engine.up_existing(shapes, "small", id_, outs, outs, {**SHAPES["small"], "capacity": 3})
    outs = engine.update(shapes, "small", id_, outs, checked)
    engine.read(shapes, "small", id_, outs, checked)
    engine.delete(shapes, "small", id_, outs)
    elapsed = time.perf_counter() - started
    print(f"\nprovider_host_startup_s: {engine.startup_s:.3f}\nprovider_crud_round_trip_s: {elapsed:.3f}")
    assert outs["capacity"] == 3
    assert elapsed < 10


def _catalog_job(home, name):
    return _catalog_get(home, "Job", name)


def _catalog_list(home, kind):
    from scheduler.store.settings import Settings
    from scheduler.store.store import Store
    from scheduler.core.clock import SystemClock

    store = Store.open(Settings.resolve(home).db_url, SystemClock())
    try:
        return store.list(kind)
    finally:
        store.close()


def _require_pipeline_kind():
    try:
        import scheduler.core.pipelines  # noqa: F401 - registers the kind
    except ImportError:
        pass
    from scheduler.core.specs import SPEC_KINDS

    if "Pipeline" not in SPEC_KINDS:
        pytest.skip("the Pipeline kind is not registered in scheduler.core.specs.SPEC_KINDS yet (scheduler.core.pipelines, issue 3)")


def test_pipeline_lifecycle(host, cli, tmp_path):
    _require_pipeline_kind()
    engine, _ = host
    pipelines = provider.PipelineProvider()
    _declare_shapes(engine)
    for name in ("prep", "fit"):
        engine.up_new(provider.JobProvider(), name, {**_job(tmp_path), "name": name})
    inputs = {
        "name": "retrain",
        "parameters": {"epochs": 3, "mse_threshold": 7.0},
        "parameter_types": {"mse_threshold": "float"},
        "steps": [
            {"name": "prep", "job": "prep", "outputs": ["train.csv"]},
            {"name": "fit", "job": "fit", "args": ["--epochs", "${params.epochs}"],
             "inputs": {"train.csv": "prep/train.csv"}, "requirements": {"cpus": 4, "memory_gib": 8}},
        ],
        "schedule": {"cron": "0 3 * * 1"},
    }
    checked, failures = engine.check(pipelines, "retrain", inputs)
    assert not failures
    assert checked["parameters"] == {"epochs": 3, "mse_threshold": 7.0}
    id_, outs = engine.create(pipelines, "retrain", checked)
    assert outs["step_shapes"] == {"prep": "small", "fit": "big"}
    stored = _catalog_get(cli.home, "Pipeline", "retrain")
    assert stored is not None and isinstance(stored.parameters["epochs"], int)

    _, diff = engine.up_existing(pipelines, "retrain", id_, checked, outs, inputs)
    assert diff.changes == provider_pb2.DiffResponse.DIFF_NONE
    changed = {**inputs, "parameters": {"epochs": 5, "mse_threshold": 7.0}}
    checked2, diff = engine.up_existing(pipelines, "retrain", id_, checked, outs, changed)
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and not diff.replaces
    outs2 = engine.update(pipelines, "retrain", id_, outs, checked2)
    assert outs2["parameters"]["epochs"] == 5

    _, failures = engine.check(pipelines, "bad", {"name": "bad", "steps": [{"name": "a", "job": "a", "inputs": {"x": "a/x"}}]})
    assert failures, "a step that reads its own output is a cycle"

    engine.delete(pipelines, "retrain", id_, outs2)
    assert _catalog_get(cli.home, "Pipeline", "retrain") is None


def _catalog_get(home, kind, name):
    from scheduler.core.clock import SystemClock
    from scheduler.store.settings import Settings
    from scheduler.store.store import Store

    store = Store.open(Settings.resolve(home).db_url, SystemClock())
    try:
        return store.get(kind, name)
    finally:
        store.close()


def test_pipeline_preview_prices_a_change(host, tmp_path):
    """`pulumi preview` runs Check and Diff only: the Pipeline's expected_cost_usd must come from Check,
    priced for the document as changed, before anything is applied."""
    _require_pipeline_kind()
    engine, _ = host
    pipelines = provider.PipelineProvider()
    _declare_shapes(engine)
    for name, seconds in (("prep", 60), ("fit", 600)):
        engine.up_new(provider.JobProvider(), name, {**_job(tmp_path), "name": name, "expected_duration": seconds})
    steps = [
        {"name": "prep", "job": "prep", "outputs": ["train.csv"]},
        {"name": "fit", "job": "fit", "inputs": {"train.csv": "prep/train.csv"}, "requirements": {"cpus": 4, "memory_gib": 8}},
    ]
    inputs = {"name": "retrain", "steps": steps}
    checked, failures = engine.check(pipelines, "retrain", inputs)
    assert not failures
    declared = 0.05 * 60 / 3600 + 0.4 * 600 / 3600  # prep on small, fit needs big
    low, high = checked["expected_cost_range_usd"]
    assert checked["expected_cost_usd"] == pytest.approx(declared) and low < declared < high
    assert checked["unpriced_steps"] == []
    id_, outs = engine.create(pipelines, "retrain", checked)
    assert outs["expected_cost_usd"] == pytest.approx(checked["expected_cost_usd"])

    smaller = {**inputs, "steps": [steps[0], {**steps[1], "requirements": {"cpus": 1, "memory_gib": 1}}]}
    preview, diff = engine.up_existing(pipelines, "retrain", id_, checked, outs, smaller)
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert preview["expected_cost_usd"] < outs["expected_cost_usd"] / 4  # fit moves to the $0.05 shape
    _, same = engine.up_existing(pipelines, "retrain", id_, checked, outs, inputs)
    assert same.changes == provider_pb2.DiffResponse.DIFF_NONE  # the figure itself never makes an update
