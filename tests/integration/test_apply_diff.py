"""`costwise apply --diff`: each change kind against the real catalog, nothing stored (no catalog row, no
artifact copy), and bad input refused as apply refuses it (one line, exit 2)."""

from __future__ import annotations

import json
import tarfile

import pytest

from tests.conftest import catalog_rows, costwise_in_process as costwise, write

SHAPES = """
kind: Shape
name: small
vcpus: 2
memory_gib: 4
price_per_hour: 0.10
---
kind: Shape
name: big
vcpus: 8
memory_gib: 32
price_per_hour: 0.80
"""
JOB = """
kind: Job
name: train
artifact: train.py
requirements: {{cpus: {cpus}, memory_gib: 1}}
env: {{TOKEN: "{token}"}}
"""


def stored_artifacts(home):
    root = home / "artifacts"
    return sorted(p.relative_to(root) for p in root.rglob("*")) if root.exists() else []


@pytest.fixture
def applied(home, tmp_path):
    write(tmp_path / "shapes.yaml", SHAPES)
    write(tmp_path / "train.py", "print('v1')\n")
    write(tmp_path / "job.yaml", JOB.format(cpus=1, token="first"))
    code, _, err = costwise(home, "apply", str(tmp_path / "shapes.yaml"), str(tmp_path / "job.yaml"))
    assert code == 0, err
    return tmp_path


def diff(home, *files, json_out=True):
    before, artifacts = catalog_rows(home), stored_artifacts(home)
    code, out, err = costwise(home, "apply", "--diff", *map(str, files), *(["--json"] if json_out else []))
    assert catalog_rows(home) == before and stored_artifacts(home) == artifacts  # nothing stored
    return code, (json.loads(out) if json_out and code == 0 else out), err


def test_unchanged_documents_diff_as_unchanged(home, applied):
    code, entries, err = diff(home, applied / "shapes.yaml", applied / "job.yaml")
    assert code == 0, err
    assert [(e["kind"], e["name"], e["change"]) for e in entries] == [
        ("Shape", "small", "unchanged"), ("Shape", "big", "unchanged"), ("Job", "train", "unchanged")]


def test_created_updated_and_replaced_and_then_apply_does_what_diff_said(home, applied):
    shapes = applied / "shapes.yaml"
    shapes.write_text(SHAPES.replace("price_per_hour: 0.80", "price_per_hour: 0.90\nbackend: docker")
                      + "---\nkind: Shape\nname: huge\nvcpus: 64\nmemory_gib: 256\nprice_per_hour: 4.0\n")
    write(applied / "job.yaml", JOB.format(cpus=2, token="second-secret"))
    code, entries, err = diff(home, shapes, applied / "job.yaml")
    assert code == 0, err
    by_name = {e["name"]: e for e in entries}
    assert by_name["small"]["change"] == "unchanged"
    assert by_name["big"] == {"kind": "Shape", "name": "big", "change": "replaced", "reason": "backend local -> docker",
                              "fields": ["backend", "price_per_hour"]}
    assert by_name["huge"]["change"] == "created"
    assert by_name["train"] == {"kind": "Job", "name": "train", "change": "updated", "reason": None,
                                "fields": ["env.TOKEN", "requirements.cpus"]}
    code, text, _ = diff(home, shapes, applied / "job.yaml", json_out=False)
    assert code == 0 and "second-secret" not in text
    lines = text.splitlines()
    assert lines[1].split()[:4] == ["±", "replaced", "Shape", "big"] and "backend local -> docker" in lines[1]
    assert lines[-1] == "1 to create, 1 to update, 1 to replace, 1 unchanged; nothing was stored"
    code, out, err = costwise(home, "apply", str(shapes), str(applied / "job.yaml"), "--json")
    results = {r["name"]: r["result"] for r in json.loads(out)}
    assert results == {"small": "unchanged", "big": "updated", "huge": "created", "train": "updated"}


def test_a_changed_artifact_replaces_the_job_without_copying_it(home, applied):
    (applied / "train.py").write_text("print('v2')\n")
    code, entries, err = diff(home, applied / "job.yaml")
    assert code == 0, err
    [entry] = entries
    assert entry["change"] == "replaced" and entry["fields"] == ["artifact_hash"]
    assert entry["reason"].startswith("artifact changed (") and " -> " in entry["reason"]


def test_an_archive_artifact_is_checked_without_storing_it(home, applied):
    (applied / "src").mkdir()
    write(applied / "src" / "main.py", "print('tar')\n")
    with tarfile.open(applied / "code.tar.gz", "w:gz") as archive:
        archive.add(applied / "src" / "main.py", arcname="main.py")
    write(applied / "tar.yaml", "kind: Job\nname: packed\nartifact: code.tar.gz\nentrypoint: main.py\n")
    code, entries, err = diff(home, applied / "tar.yaml")
    assert code == 0 and entries[0]["change"] == "created", err
    write(applied / "tar.yaml", "kind: Job\nname: packed\nartifact: code.tar.gz\nentrypoint: missing.py\n")
    code, out, err = diff(home, applied / "tar.yaml")
    assert code == 2 and out == ""
    assert err.strip() == ("error: Job 'packed': entrypoint='missing.py' is not a file inside the artifact "
                           "('code.tar.gz')"), err


@pytest.mark.parametrize("document,expected", [
    ("kind: Shape\nname: bad\nvcpus: -1\nmemory_gib: 1\nprice_per_hour: 0.1\n", "vcpus"),
    ("kind: Job\nname: nofile\nartifact: nowhere.py\n", "artifact='nowhere.py' does not exist"),
    ("kind: Job\nname: huge\nartifact: train.py\nrequirements: {cpus: 999, memory_gib: 1}\n", "Job 'huge'"),
])
def test_bad_input_is_refused_exactly_as_apply_refuses_it(home, applied, document, expected):
    write(applied / "bad.yaml", document)
    code, out, err = diff(home, applied / "bad.yaml")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and expected in err, err
    assert costwise(home, "apply", str(applied / "bad.yaml"))[2] == err  # the same line as apply's
