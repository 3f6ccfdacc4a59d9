"""Provider pieces in-process: dill round trips, property normalisation, diff rules, price catalogs."""

from __future__ import annotations

import base64
import csv

import dill
import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc

import provider
from provider import props as P
from provider.prices import load_shapes, read_rows
from scheduler.core.specs import parse_spec
from tests.conftest import ROOT, SHARED_DATA, write

PRICES = ROOT / "stacks" / "prices" / "public-on-demand.csv"
PROVIDERS = [provider.ComputeShapeProvider, provider.JobProvider, provider.PipelineProvider]


@pytest.mark.parametrize("cls", PROVIDERS)
def test_dill_round_trip(cls):
    text = serialize_provider(cls())
    assert serialize_provider(cls()) == text  # deterministic: no spurious `__provider` diffs
    restored = dill.loads(base64.b64decode(text))
    assert type(restored) is cls and restored.kind == cls.kind
    assert vars(restored) == {}  # nothing held: no connections, locks or clients
    assert len(text) < 200  # pickled by reference, not by value


def test_round_tripped_provider_still_checks():
    restored = dill.loads(base64.b64decode(serialize_provider(provider.ComputeShapeProvider())))
    result = restored.check({}, {"name": "s", "vcpus": 2.0, "memory_gib": 4.0, "price_per_hour": 0.1, "capacity": 3.0})
    assert result.failures == []
    assert result.inputs == {"name": "s", "vcpus": 2.0, "memory_gib": 4.0, "price_per_hour": 0.1, "capacity": 3}
    assert isinstance(result.inputs["capacity"], int)


def test_numbers_come_back_as_ints_except_declared_floats():
    body, extras, secrets = P.split({
        "name": "p", "parameters": {"epochs": 3.0, "mse_threshold": 7.0, "lr": 0.5}, "retries": 2.0,
        "parameter_types": {"mse_threshold": "float"}, "db": "sqlite:///x.db", "__provider": "x", "fits": ["a"],
    })
    assert body == {"name": "p", "parameters": {"epochs": 3, "mse_threshold": 7.0, "lr": 0.5}, "retries": 2}
    assert isinstance(body["parameters"]["mse_threshold"], float)
    assert extras.db == "sqlite:///x.db" and secrets == {}


def test_secret_values_are_split_from_references():
    body, _, secrets = P.split({
        "secret_env": {"A": "env:A", "B": "file:/run/b", "C": "value"},
        "env": rpc.wrap_rpc_secret({"D": "d"}),
    })
    assert body == {"secret_env": {"A": "env:A", "B": "file:/run/b"}}
    assert secrets == {"C": "value", "D": "d"}
    with pytest.raises(Exception, match="args: a Pulumi secret is not accepted here"):
        P.split({"args": rpc.wrap_rpc_secret(["--token", "x"])})


def test_diff_ignores_provider_bytes_and_computed_outputs(tmp_path):
    jobs = provider.JobProvider()
    olds = {"name": "t", "artifact": "/ci/run-1/jobs/train.py", "artifact_hash": "sha256:aa", "retries": 1,
            "__provider": "old-bytes", "fits": ["a", "b"], "cheapest_shape": "a", "artifact_path": "/h/aa"}
    news = {"name": "t", "artifact": "/ci/run-2/jobs/train.py", "artifact_hash": "sha256:aa", "retries": 1.0,
            "__provider": "new-bytes"}
    same = jobs.diff("t", olds, news)
    assert same.changes is False and same.replaces == []
    update = jobs.diff("t", olds, {**news, "retries": 2})
    assert update.changes is True and update.replaces == []
    replace = jobs.diff("t", olds, {**news, "artifact_hash": "sha256:bb"})
    assert replace.replaces == ["artifact_hash"] and replace.delete_before_replace is False
    renamed = provider.ComputeShapeProvider().diff("s", {"name": "s", "vcpus": 1, "memory_gib": 1, "price_per_hour": 1},
                                                   {"name": "s2", "vcpus": 1, "memory_gib": 1, "price_per_hour": 1})
    assert renamed.replaces == ["name"]


def test_check_failure_never_echoes_a_secret(home, monkeypatch):
    monkeypatch.setenv("COSTWISE_HOME", str(home))
    result = provider.JobProvider().check({}, {"name": "bad name!", "artifact": "/x.py", "secret_env": {"T": "hunter2-secret"}})
    assert result.failures and result.failures[0].property == "name"
    assert "hunter2-secret" not in str(result.inputs) + " ".join(f.reason for f in result.failures)


def test_default_price_catalog_is_valid_and_says_where_it_comes_from():
    header = PRICES.read_text().splitlines()[:6]
    assert any("pricing" in line and "us-east-1" in line for line in header)
    assert any("20" in line for line in header if line.startswith("#"))  # a date
    docs = load_shapes(PRICES, backend="docker")
    assert len(docs) == len(read_rows(PRICES)) >= 10
    for doc in docs:
        parse_spec({**doc, "kind": "Shape"})
    prices = [d["price_per_hour"] for d in docs]
    assert prices == sorted(prices)
    g5 = next(d for d in docs if d["name"] == "g5.xlarge")
    assert (g5["gpus"], g5["gpu_type"], g5["gpu_memory_gib"]) == (1, "A10G", 24)


def test_default_catalog_agrees_with_the_public_azure_snapshot():
    azure = SHARED_DATA / "prices-azure.csv"
    if not azure.exists():
        pytest.skip(f"SKIPPED LOUDLY: {azure} is not here to cross-check against")
    ours = {r["InstanceType"]: r for r in read_rows(PRICES) if r["Region"] == "eastus"}
    with open(azure, newline="") as handle:
        theirs = {r["InstanceType"]: r for r in csv.DictReader(handle) if r["Region"] == "eastus" and r["InstanceType"] in ours}
    assert set(theirs) == set(ours)
    for name, row in ours.items():
        other = theirs[name]
        assert float(row["vCPUs"]) == float(other["vCPUs"]) and float(row["MemoryGiB"]) == float(other["MemoryGiB"])
        assert (row["AcceleratorName"] or None) == (other["AcceleratorName"] or None)
        assert abs(float(row["Price"]) / float(other["Price"]) - 1) < 0.25, name


def test_skypilot_catalogs_load_with_gpu_memory_and_spot_rules():
    lambda_csv, vast_csv = SHARED_DATA / "prices-lambda.csv", SHARED_DATA / "prices-vast.csv"
    if not lambda_csv.exists():
        pytest.skip(f"SKIPPED LOUDLY: {lambda_csv} is not here")
    docs = load_shapes(lambda_csv, include=["gpu_1x_*"])
    assert docs and all(d["gpus"] == 1 for d in docs)
    h100 = [d for d in docs if d["gpu_type"] == "H100"]
    assert h100 and all(70 <= d["gpu_memory_gib"] <= 100 for d in h100)  # from GpuInfo's MiB
    for doc in docs:
        parse_spec({**doc, "kind": "Shape"})
    vast = load_shapes(vast_csv)
    assert vast and all(d["spot_price_per_hour"] is None for d in vast)  # 0.00 means no spot market
    rows = read_rows(vast_csv)
    cheapest = min(float(r["Price"]) for r in rows if r["InstanceType"] == vast[0]["name"])
    assert vast[0]["price_per_hour"] == cheapest


def test_comment_lines_and_region_choice(tmp_path):
    path = write(tmp_path / "p.csv", """
        # a comment
        InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region
        x.large,,,2,8,0.2,,west
        x.large,,,2,8,0.1,,east
        bad type/name,,,2,8,0.3,,east
    """)
    assert [d["price_per_hour"] for d in load_shapes(path, include=["x.*"])] == [0.1]
    assert [d["price_per_hour"] for d in load_shapes(path, include=["x.*"], region="west")] == [0.2]
    assert [d["name"] for d in load_shapes(path, include=["bad*"])] == ["bad-type-name"]


def test_preview_with_unknown_inputs_is_not_refused():
    from pulumi.output import Unknown

    result = provider.JobProvider().check({}, {"name": "t", "artifact": Unknown(), "retries": 1.0})
    assert result.failures == []
    assert isinstance(result.inputs["artifact"], Unknown) and result.inputs["retries"] == 1
    diff = provider.JobProvider().diff("t", {"name": "t", "artifact": "/a.py", "artifact_hash": "sha256:x"},
                                       {"name": "t", "artifact": Unknown()})
    assert diff.changes is True and "artifact" in diff.replaces


def test_a_pipelines_cost_is_an_output_never_an_input_nor_a_diff():
    from provider.resources import Pipeline

    pipelines = provider.PipelineProvider()
    doc = {"name": "p", "steps": [{"name": "a", "job": "a"}]}
    olds = {**doc, "expected_cost_usd": 1.0, "expected_cost_range_usd": [0.5, 2.0], "unpriced_steps": []}
    assert pipelines.diff("p", olds, {**doc, "expected_cost_usd": 3.0, "__provider": "x"}).changes is False
    assert pipelines.diff("p", olds, {**doc, "steps": [{"name": "a", "job": "b"}]}).changes is True
    assert P.split(olds)[0] == doc  # never applied to the catalog
    assert {"expected_cost_usd", "expected_cost_range_usd", "unpriced_steps"} <= set(Pipeline.__annotations__)
