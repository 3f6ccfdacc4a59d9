"""The command line as a new user meets it: bad input exits 2 with one line and changes nothing."""

import json

import pytest

from tests.conftest import write

SHAPES = """
kind: Shape
name: small
vcpus: 2
memory_gib: 4
price_per_hour: 0.10
---
kind: Shape
name: large
vcpus: 16
memory_gib: 64
price_per_hour: 0.80
---
kind: Shape
name: gpu
vcpus: 8
memory_gib: 32
gpus: 1
gpu_type: A10
gpu_memory_gib: 24
price_per_hour: 1.10
"""


@pytest.fixture
def declared(cli, tmp_path):
    write(tmp_path / "shapes.yaml", SHAPES)
    write(tmp_path / "train.py", "print('ok')\n")
    write(tmp_path / "job.yaml", "kind: Job\nname: train\nartifact: train.py\nrequirements: {cpus: 2, memory_gib: 4}\n")
    proc = cli("apply", str(tmp_path / "shapes.yaml"), str(tmp_path / "job.yaml"))
    assert proc.returncode == 0, proc.stderr
    return tmp_path


def snapshot(cli):
    from scheduler.core.clock import SystemClock
    from scheduler.store.store import Store

    store = Store.open(f"sqlite:///{cli.home / 'catalog.db'}", SystemClock())
    try:
        return store.catalog_version(), [s.model_dump() for k in ("Shape", "Job") for s in store.list(k)]
    finally:
        store.close()


BAD = {
    "unknown key": ("kind: Job\nname: bad\nartifact: train.py\nmemry: 4\n", "unknown field 'memry'"),
    "negative memory": ("kind: Job\nname: bad\nartifact: train.py\nrequirements: {memory_gib: -1}\n", "requirements.memory_gib=-1"),
    "parsecs": ("kind: Job\nname: bad\nartifact: train.py\nmax_runtime: 5 parsecs\n", "max_runtime='5 parsecs'"),
    "missing artifact": ("kind: Job\nname: bad\nartifact: nowhere.py\n", "artifact='nowhere.py' does not exist"),
    "over 30 days": ("kind: Job\nname: bad\nartifact: train.py\nmax_runtime: 45d\n", "30-day cap"),
    "fits no shape": ("kind: Job\nname: bad\nartifact: train.py\nrequirements: {memory_gib: 512}\n",
                      "requirements.memory_gib=512 fits no shape; the biggest is"),
    "bad yaml": ("kind: Job\nname: [unclosed\n", "is not valid YAML/JSON"),
    "shape negative": ("kind: Shape\nname: s\nvcpus: 2\nmemory_gib: -4\nprice_per_hour: 1\n", "memory_gib=-4"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_documents_exit_2_with_one_line_and_change_nothing(cli, declared, case):
    body, expected = BAD[case]
    # a valid document first in the same apply: all or nothing means it is not stored either
    write(declared / "bad.yaml", "kind: Shape\nname: extra\nvcpus: 1\nmemory_gib: 1\nprice_per_hour: 0.01\n---\n" + body)
    before = snapshot(cli)
    proc = cli("apply", str(declared / "bad.yaml"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert proc.stdout == ""
    assert snapshot(cli) == before


def test_shapes_fit_ranks_and_explains(cli, declared):
    ranked = cli.json("shapes", "--fit", "cpus=4,memory=16")
    fits = [r for r in ranked if r["fits"]]
    assert [r["shape"] for r in fits] == ["large", "gpu"]
    assert fits[0]["reason"] == "cheapest"
    small = next(r for r in ranked if r["shape"] == "small")
    assert small["fits"] is False and "cpus 4 > vcpus 2" in small["reason"]
    text = cli("shapes", "--fit", "cpus=4,memory=16").stdout
    assert "chosen: large" in text
    gpu = [r["shape"] for r in cli.json("shapes", "--fit", "gpus=1,gpu_type=A10") if r["fits"]]
    assert gpu == ["gpu"]


def test_shapes_fit_bad_input(cli, declared):
    proc = cli("shapes", "--fit", "cpus=lots")
    assert proc.returncode == 2 and "cpus='lots'" in proc.stderr
    proc = cli("shapes", "--fit", "cpu4")
    assert proc.returncode == 2 and "'cpu4' is not key=value" in proc.stderr


def test_run_bad_overrides_exit_2(cli, declared):
    for args, expected in [
        (["--max-runtime", "5 parsecs"], "max_runtime='5 parsecs'"),
        (["--max-runtime", "40d"], "max_runtime"),
        (["--shape", "nope"], "--shape 'nope' is not a declared shape"),
        (["--env", "NOEQUALS"], "--env 'NOEQUALS' is not KEY=VALUE"),
    ]:
        proc = cli("run", "train", *args, "--wait")
        assert proc.returncode == 2 and expected in proc.stderr, (args, proc.stderr)
    assert cli.json("runs") == []
    proc = cli("run", "nope", "--wait")
    assert proc.returncode == 2 and "job 'nope' is not in the catalog; known: train" in proc.stderr
    assert cli("show", "r-missing").returncode == 2


def test_delete_rules(cli, declared):
    queued = json.loads(cli("run", "train", "--json").stdout)
    proc = cli("delete", "job", "train")
    assert proc.returncode == 2 and "queued or running" in proc.stderr
    assert cli("delete", "job", "train", "--cancel-runs").returncode == 0
    assert cli.json("show", queued["id"])["state"] == "CANCELED"
    assert cli("delete", "job", "train").returncode == 2


def test_deleting_the_only_fitting_shape_is_refused(cli, tmp_path):
    write(tmp_path / "s.yaml", "kind: Shape\nname: only\nvcpus: 2\nmemory_gib: 4\nprice_per_hour: 0.1\n")
    write(tmp_path / "t.py", "pass\n")
    write(tmp_path / "j.yaml", "kind: Job\nname: j\nartifact: t.py\n")
    assert cli("apply", str(tmp_path / "s.yaml"), str(tmp_path / "j.yaml")).returncode == 0
    proc = cli("delete", "shape", "only")
    assert proc.returncode == 2 and "leaves job 'j' with no shape that fits" in proc.stderr
    assert [s["name"] for s in cli.json("shapes")] == ["only"]


def test_dry_run_launches_nothing(cli, declared):
    plan = cli.json("run", "train", "--dry-run")
    assert plan["shape"] == "small" and plan["launch"]["backend"] == "local"
    assert plan["launch"]["argv"][-1].endswith("train.py")
    assert cli.json("runs") == []


def test_json_lists_are_arrays(cli, declared):
    assert isinstance(cli.json("shapes"), list) and isinstance(cli.json("runs"), list)
    assert cli.json("shapes")[0]["name"] == "small"
