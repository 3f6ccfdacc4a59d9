from datetime import datetime, timedelta, timezone

import pytest

from scheduler.core import placement
from scheduler.core.placement import PlacementRequest, ShapeIndex, explain, place, unfit_message
from scheduler.core.priors import GPU_SPEED
from scheduler.core.specs import Requirements, ShapeSpec

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def shape(name, vcpus, mem, price, gpus=0, gpu_type=None, capacity=1, backend="local", gpu_mem=0):
    return ShapeSpec(name=name, vcpus=vcpus, memory_gib=mem, price_per_hour=price, gpus=gpus,
                     gpu_type=gpu_type, capacity=capacity, backend=backend, gpu_memory_gib=gpu_mem)


SHAPES = [
    shape("small", 2, 4, 0.10),
    shape("medium", 4, 16, 0.20),
    shape("highmem", 4, 32, 0.30),
    shape("large", 16, 64, 0.80),
    shape("t4", 8, 32, 0.60, gpus=1, gpu_type="T4", gpu_mem=16),
    shape("a100", 24, 220, 3.60, gpus=1, gpu_type="A100-80GB", gpu_mem=80),
]


def req(**kw):
    extra = {k: kw.pop(k) for k in list(kw) if k in ("pinned_shape", "backends", "has_image", "declared_duration_s", "max_wait_s", "queued_at")}
    return PlacementRequest(job="train", requirements=Requirements(**kw), **extra)


def decide(r, in_use=None, history=None, now=NOW, shapes=SHAPES):
    return place(r, ShapeIndex(shapes).snapshot(in_use or {}), history or {}, now)


def test_cheapest_fitting_shape_wins():
    d = decide(req(cpus=3, memory_gib=8))
    assert (d.action, d.shape) == ("place", "medium")
    assert "medium" in d.reason


def test_faster_dearer_shape_can_be_cheapest():
    # train took 10 h on t4 but 1 h on a100: 0.6*10 = $6 > 3.6*1 = $3.6
    d = decide(req(gpus=1), history={"t4": 36000, "a100": 3600})
    assert d.shape == "a100"
    assert d.chosen.expected_cost_usd == pytest.approx(3.6)


def test_not_always_the_smallest():
    # CPU bound: 2 h on small ($0.20), 10 min on large ($0.13) -> large wins despite its size
    d = decide(req(cpus=1, memory_gib=1), history={"small": 7200, "large": 600}, shapes=[SHAPES[0], SHAPES[3]])
    assert d.shape == "large"


def test_similar_shapes_inform_unknown_ones():
    shapes = SHAPES + [shape("t4-cheap", 8, 32, 0.50, gpus=1, gpu_type="T4", gpu_mem=16)]
    model = placement.DurationModel(ShapeIndex(shapes), {"t4": 1000.0}, None)
    sibling, source = model.estimate(shapes[-1])
    assert sibling == pytest.approx(1000.0, rel=0.1) and source == "similar shapes"
    # hardware the job never ran on: the job's base scaled by the prior (an A100-80GB trains ~6x a T4 in
    # benchmarks, and a job is expected to get part of that)
    seconds, source = model.estimate(SHAPES[-1])
    assert source == "prior"
    assert sibling * GPU_SPEED["T4"] / GPU_SPEED["A100-80GB"] < seconds < sibling


def test_declared_estimate_used_without_history():
    d = decide(req(cpus=1, declared_duration_s=3600))
    assert d.chosen.expected_cost_usd == pytest.approx(0.10) and d.chosen.duration_source == "declared"


def test_full_cheapest_shape_waits_then_spills_after_max_wait():
    r = req(cpus=3, memory_gib=8, max_wait_s=600, queued_at=NOW)
    d = decide(r, in_use={"medium": 1})
    assert d.action == "wait" and "medium" in d.reason and "highmem" in d.reason
    later = decide(r, in_use={"medium": 1}, now=NOW + timedelta(seconds=601))
    assert (later.action, later.shape) == ("place", "highmem")
    assert "spilled" in later.reason


def test_every_fitting_shape_full_waits():
    d = decide(req(gpus=1, gpu_type="A100-80GB"), in_use={"a100": 1})
    assert d.action == "wait" and d.shape is None


def test_refuse_when_nothing_fits():
    assert decide(req(cpus=128)).action == "refuse"


def test_pinned_shape_and_gpu_type_and_backend():
    assert decide(req(pinned_shape="large")).shape == "large"
    assert decide(req(gpus=1, gpu_type="t4")).shape == "t4"  # case-insensitive
    assert decide(req(gpus=1, gpu_memory_gib=40)).shape == "a100"
    docker = [shape("d", 2, 4, 0.01, backend="docker"), shape("l", 2, 4, 0.02)]
    assert decide(req(cpus=1), shapes=docker).shape == "l"  # no image: docker does not fit
    assert decide(req(cpus=1, has_image=True), shapes=docker).shape == "d"
    assert decide(req(cpus=1, has_image=True, backends=frozenset({"local"})), shapes=docker).shape == "l"


def test_tie_break_is_deterministic():
    twins = [shape("b", 2, 4, 0.1), shape("a", 2, 4, 0.1), shape("c", 2, 4, 0.1)]
    assert {decide(req(cpus=1), shapes=list(p)).shape for p in (twins, twins[::-1])} == {"a"}


def test_explain_ranks_and_gives_reasons():
    e = explain(req(cpus=3, memory_gib=8), SHAPES, {}, {})
    assert [c.shape for c in e.ranked] == ["medium", "highmem", "t4", "large", "a100"]
    reasons = dict(e.rejected)
    assert reasons["small"] == ["cpus 3 > vcpus 2", "memory_gib 8 > 4"]


def test_unfit_message_names_requirement_and_biggest_shape():
    text = unfit_message(Requirements(memory_gib=512), SHAPES)
    assert "requirements.memory_gib=512" in text and "a100" in text
    text = unfit_message(Requirements(gpus=1, gpu_type="H100"), SHAPES)
    assert "gpu_type='H100'" in text and "A100-80GB" in text
    assert unfit_message(Requirements(cpus=1), []) .startswith("no shapes are declared")
    assert unfit_message(Requirements(cpus=1), SHAPES) is None


def test_one_lucky_run_does_not_outweigh_twenty():
    # 20 runs of 1 h on small, one 100 s run on large: the lone run is shrunk towards the job's median
    two = [SHAPES[0], SHAPES[3]]
    d = decide(req(cpus=1, memory_gib=1), history={"small": (3600, 20), "large": (100, 1)}, shapes=two)
    assert d.shape == "small"
    # with many runs behind it, the fast large shape does win
    d = decide(req(cpus=1, memory_gib=1), history={"small": (3600, 20), "large": (100, 180)}, shapes=two)
    assert d.shape == "large"


def test_alternatives_are_explains_top_k():
    import random

    rng = random.Random(5)
    shapes = [shape(f"s{i}", rng.choice([1, 2, 4, 8]), rng.choice([2, 8, 32]), round(rng.uniform(0.05, 2), 2))
              for i in range(60)]
    index = ShapeIndex(shapes)
    for history in ({}, {"s3": (500, 4), "s7": (50, 30)}):
        r = req(cpus=2, memory_gib=4)
        expected = [c.shape for c in explain(r, index, {}, history).ranked[:5]]
        assert [c.shape for c in placement.alternatives(r, index.snapshot({}), history, 5)] == expected
