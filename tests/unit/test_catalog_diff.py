"""The pure diff behind `costwise apply --diff`: each change kind, the changed fields, and no values shown."""

from scheduler.core.catalog_diff import Change, changed_fields, diff_catalog, summary_line
from scheduler.core.specs import parse_spec

SHAPE = {"kind": "Shape", "name": "small", "backend": "local", "vcpus": 2, "memory_gib": 4, "price_per_hour": 0.1}
JOB = {"kind": "Job", "name": "train", "artifact": "/a/train.py", "artifact_hash": "sha256:" + "a" * 64,
       "requirements": {"cpus": 1, "memory_gib": 1}, "env": {"TOKEN": "hunter2"}}


def spec(doc, **changes):
    return parse_spec({**doc, **changes})


def one(new, old):
    [entry] = diff_catalog([new], {(old.kind, old.name): old} if old is not None else {})
    return entry


def test_a_spec_not_stored_is_created():
    entry = one(spec(SHAPE), None)
    assert (entry.change, entry.fields) == (Change.CREATED, ())


def test_the_same_document_is_unchanged():
    assert one(spec(JOB), spec(JOB)).change is Change.UNCHANGED
    assert one(spec(SHAPE, vcpus=2.0), spec(SHAPE)).change is Change.UNCHANGED  # the same after validation


def test_an_edit_is_an_update_naming_the_nested_fields_but_no_values():
    entry = one(spec(JOB, requirements={"cpus": 2, "memory_gib": 1}, env={"TOKEN": "s3cret"}), spec(JOB))
    assert entry.change is Change.UPDATED
    assert entry.fields == ("env.TOKEN", "requirements.cpus")
    assert "s3cret" not in str(entry.public()) and "hunter2" not in str(entry.public())


def test_a_shape_moved_to_another_backend_is_replaced():
    entry = one(spec(SHAPE, backend="docker", price_per_hour=0.2), spec(SHAPE))
    assert entry.change is Change.REPLACED
    assert entry.fields == ("backend", "price_per_hour") and entry.reason == "backend local -> docker"


def test_a_job_whose_artifact_changed_is_replaced_and_a_moved_file_only_updated():
    entry = one(spec(JOB, artifact_hash="sha256:" + "b" * 64), spec(JOB))
    assert entry.change is Change.REPLACED and entry.reason == "artifact changed (aaaaaaaaaaaa -> bbbbbbbbbbbb)"
    moved = one(spec(JOB, artifact="/b/train.py"), spec(JOB))
    assert (moved.change, moved.fields) == (Change.UPDATED, ("artifact",))


def test_keys_present_on_one_side_only_are_changed_fields():
    assert changed_fields({"a": {"x": 1}}, {"a": {}, "b": 2}) == ["a.x", "b"]
    assert changed_fields([1, 2], [2, 1]) == ["(document)"]


def test_the_catalog_diff_keeps_the_documents_order_and_sums_up():
    stored = {("Shape", "small"): spec(SHAPE), ("Job", "train"): spec(JOB)}
    diffs = diff_catalog([spec(JOB, retries=2), spec(SHAPE, name="big"), spec(SHAPE)], stored)
    assert [(d.name, d.change) for d in diffs] == [("train", Change.UPDATED), ("big", Change.CREATED),
                                                   ("small", Change.UNCHANGED)]
    assert summary_line(diffs) == "1 to create, 1 to update, 0 to replace, 1 unchanged; nothing was stored"
    assert diffs[0].public() == {"kind": "Job", "name": "train", "change": "updated", "fields": ["retries"],
                                 "reason": None}
