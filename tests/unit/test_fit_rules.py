"""One table of fit rules drives the numpy mask, `fits` and the reasons; the snapshot is changed only
through take / release; decisions carry an ordered Action; a job's request is built in one place."""

import itertools
from datetime import datetime, timezone

from scheduler.core.fit import FIT_RULES, PlacementRequest, fit_problems, fits
from scheduler.core.placement import Action, ShapeIndex, fit_mask, place
from scheduler.core.specs import JobSpec, Requirements
from tests.unit.test_placement import SHAPES, shape

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
MIXED = SHAPES + [shape("k8s-gpu", 32, 128, 2.0, gpus=4, gpu_type="t4", gpu_mem=16, backend="kubernetes", capacity=2)]


def requests():
    for cpus, mem, gpus, gpu_type, gpu_mem, image, backends, pinned in itertools.product(
        (1, 8), (4, 100), (0, 1, 4), (None, "T4"), (0, 40), (False, True),
        (None, frozenset({"kubernetes"})), (None, "t4", "nowhere"),
    ):
        yield PlacementRequest(job="j", requirements=Requirements(cpus=cpus, memory_gib=mem, gpus=gpus, gpu_type=gpu_type,
                                                                  gpu_memory_gib=gpu_mem),
                               has_image=image, backends=backends, pinned_shape=pinned)


def test_mask_fits_and_reasons_agree_on_every_request_and_shape():
    index = ShapeIndex(MIXED)
    for req in requests():
        mask = fit_mask(req, index)
        for i, s in enumerate(index.shapes):
            assert bool(mask[i]) == fits(req, s) == (not fit_problems(req, s)), (req, s.name)


def test_each_rule_names_its_field_when_broken():
    req = PlacementRequest(job="j", requirements=Requirements(cpus=64, memory_gib=999, gpus=8, gpu_type="H100",
                                                              gpu_memory_gib=200),
                           backends=frozenset({"docker"}), pinned_shape="large")
    problems = fit_problems(req, MIXED[-1])
    assert len(problems) == len(FIT_RULES)
    for word in ("pinned", "backend kubernetes not allowed", "needs the job to name an image", "cpus 64",
                 "memory_gib 999", "gpus 8", "gpu_type H100", "gpu_memory_gib 200"):
        assert any(word in p for p in problems), (word, problems)


def test_take_and_release_keep_the_snapshot_consistent():
    index = ShapeIndex([shape("one", 2, 4, 0.1, capacity=2), shape("two", 2, 4, 0.2, capacity=1)])
    in_use = {}
    snapshot = index.snapshot(in_use)
    req = PlacementRequest(job="j", requirements=Requirements(cpus=1, memory_gib=1), max_wait_s=0)  # spill at once
    snapshot.take("one", 2)
    assert in_use == {"one": 2} and not snapshot.has_free[index.position["one"]]
    assert place(req, snapshot, {}, NOW).shape == "two"
    snapshot.take("two")
    assert place(req, snapshot, {}, NOW).action is Action.WAIT
    snapshot.release("one")
    assert in_use == {"one": 1, "two": 1} and place(req, snapshot, {}, NOW).shape == "one"


def test_actions_order_from_best_to_worst_and_equal_their_old_strings():
    assert Action.PLACE < Action.WAIT < Action.REFUSE and max(Action.WAIT, Action.REFUSE, Action.PLACE) is Action.REFUSE
    assert Action.PLACE == "place" and Action.REFUSE > "wait"
    assert place(PlacementRequest(job="j", requirements=Requirements(cpus=999)), ShapeIndex(SHAPES).snapshot({}),
                 {}, NOW).action == "refuse"


def test_a_job_request_carries_what_the_job_declares():
    job = JobSpec(name="train", artifact="train.py", requirements=Requirements(cpus=2, memory_gib=4), shape="medium",
                  image="img:1", expected_duration=120, max_wait=30)
    req = PlacementRequest.for_job(job, queued_at=NOW, backends=frozenset({"docker"}))
    assert (req.job, req.pinned_shape, req.has_image, req.declared_duration_s, req.max_wait_s) == \
        ("train", "medium", True, 120, 30)
    assert req.requirements == job.requirements and req.queued_at == NOW and req.backends == {"docker"}
    other = Requirements(cpus=1)
    assert PlacementRequest.for_job(job, requirements=other).requirements is other
