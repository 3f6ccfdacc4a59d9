"""The duration model learns a job's own speed-up, explores with a bound, and waits or spills by
expected cost -- all through ``placement.place`` with an injected clock."""

from datetime import datetime, timedelta, timezone

import pytest

from scheduler.core import duration_model, placement, priors
from scheduler.core.placement import PlacementRequest, ShapeIndex, expected_remaining, expected_wait, place
from scheduler.core.specs import Requirements, ShapeSpec

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def gpu(name, gpu_type, price, capacity=1):
    return ShapeSpec(name=name, vcpus=8, memory_gib=32, gpus=1, gpu_type=gpu_type, price_per_hour=price,
                     capacity=capacity, backend="local")


def cpu(name, price, capacity=1):
    return ShapeSpec(name=name, vcpus=4, memory_gib=16, price_per_hour=price, capacity=capacity, backend="local")


def run_jobs(shapes, true_seconds, runs=12):
    """Runs one after another: place, 'run' for the true duration, learn (median, runs) per shape."""
    index = ShapeIndex(shapes)
    seen: dict[str, list[float]] = {}
    chosen, now = [], T0
    for _ in range(runs):
        history = {s: (sorted(d)[len(d) // 2], len(d)) for s, d in seen.items()}
        req = PlacementRequest(job="train", requirements=Requirements(cpus=1, memory_gib=1, gpus=1), queued_at=now)
        decision = place(req, index.snapshot({}), history, now)
        assert decision.action == "place"
        chosen.append((decision.shape, decision.chosen.duration_source))
        seen.setdefault(decision.shape, []).append(true_seconds[decision.shape])
        now += timedelta(seconds=true_seconds[decision.shape])
    return chosen


SHAPES = [gpu("v100", "V100", 1.0), gpu("a100", "A100", 1.4)]


def test_a_job_three_times_faster_on_a_dearer_gpu_moves_there_after_a_few_runs():
    chosen = run_jobs(SHAPES, {"v100": 3000.0, "a100": 1000.0})
    assert chosen[0] == ("v100", "none (price order)")  # nothing known yet: price order
    # after a few runs the prior's bound says the A100 may be cheaper: it is tried, and wins on merit
    first_try = next(i for i, c in enumerate(chosen) if c[0] == "a100")
    assert first_try <= 4 and chosen[first_try][1] == "exploring"
    assert [shape for shape, _ in chosen[-6:]] == ["a100"] * 6
    assert chosen[-1][1] == "history"


def test_a_job_no_faster_on_the_dearer_gpu_stops_exploring_it():
    chosen = run_jobs(SHAPES, {"v100": 3000.0, "a100": 3000.0})
    tried = [i for i, (shape, _) in enumerate(chosen) if shape == "a100"]
    assert 1 <= len(tried) <= placement.EXPLORE_RUNS  # given its chance, then no more
    assert [shape for shape, _ in chosen[-6:]] == ["v100"] * 6


def test_without_exploration_the_faster_gpu_is_never_tried():
    # the same 3x job when the bound is switched off: proves the exploring test depends on it
    old = placement.EXPLORE_Z
    placement.EXPLORE_Z = 0.0
    try:
        chosen = run_jobs(SHAPES, {"v100": 3000.0, "a100": 1000.0})
    finally:
        placement.EXPLORE_Z = old
    assert {shape for shape, _ in chosen} == {"v100"}


def test_an_unseen_gpu_is_priced_by_the_prior_not_the_jobs_median():
    shapes = SHAPES + [gpu("h100", "H100", 2.0)]
    est = placement.Estimates(PlacementRequest(job="j", requirements=Requirements(gpus=1, cpus=1, memory_gib=1)),
                              ShapeIndex(shapes), {"v100": (3000.0, 50)})
    seconds = {c.shape: c.expected_duration_s for c in (est.candidate(i, {}) for i in range(3))}
    assert seconds["v100"] == pytest.approx(3000.0, rel=0.05)
    assert seconds["h100"] < seconds["a100"] < seconds["v100"]  # the prior's order, H100 fastest
    assert est.candidate(2, {}).duration_source == "prior"


def test_one_class_of_evidence_moves_the_slope_for_unseen_hardware():
    # a job exactly as fast on an A100 as on a V100 does not scale: an unseen H100 is not expected faster either
    index = ShapeIndex(SHAPES + [gpu("h100", "H100", 2.0)])
    req = PlacementRequest(job="j", requirements=Requirements(gpus=1, cpus=1, memory_gib=1))
    flat = placement.Estimates(req, index, {"v100": (3000.0, 40), "a100": (3000.0, 40)}).candidate(2, {})
    scales = placement.Estimates(req, index, {"v100": (3000.0, 40), "a100": (1000.0, 40)}).candidate(2, {})
    assert flat.expected_duration_s > 2000 and scales.expected_duration_s < flat.expected_duration_s / 1.5


SERVICE_SHAPES = [gpu("m60", "M60", 1.0), gpu("t4", "T4", 1.5)]  # the prior: a T4 is twice an M60
GPU_REQUEST = dict(job="j", requirements=Requirements(gpus=1, cpus=1, memory_gib=1))


def test_runs_on_two_gpus_tell_a_job_that_scales_from_one_that_does_not():
    index = ShapeIndex(SERVICE_SHAPES)

    def weight(history):
        return placement.Estimates(PlacementRequest(**GPU_REQUEST), index, history).fit.scaling

    assert weight({"m60": (3000.0, 50)}) == duration_model.SCALING_PRIOR  # one GPU alone cannot tell
    assert weight({"m60": (3000.0, 50), "t4": (3000.0, 50)}) < duration_model.SCALING_PRIOR - 0.1
    assert weight({"m60": (3000.0, 50), "t4": (1000.0, 50)}) > 0.9


def test_a_job_that_may_not_scale_hedges_between_the_hypotheses():
    # runs on the M60 only: the T4's expected seconds lie between "as slow" and "as the prior scales"
    index = ShapeIndex(SERVICE_SHAPES)
    history = {"m60": (3000.0, 50)}
    seconds = lambda **fleet: placement.Estimates(  # noqa: E731
        PlacementRequest(**GPU_REQUEST, **fleet), index, history).candidate(1, {}).expected_duration_s
    sure, hedged, doubtful = seconds(scaling_prior=0.999), seconds(), seconds(scaling_prior=0.05)
    assert sure < hedged < doubtful
    assert doubtful == pytest.approx(placement.Estimates(PlacementRequest(**GPU_REQUEST), index, history)
                                     .candidate(0, {}).expected_duration_s, rel=0.1)


def test_what_the_fleet_learned_decides_where_a_job_without_evidence_explores():
    # the same job, one M60 run behind it: a fleet whose jobs scale steeply tries the T4, one whose
    # hardware ordering says nothing (slope below 0) or whose jobs mostly do not scale does not
    index = ShapeIndex(SERVICE_SHAPES)

    def decision(**fleet):
        req = PlacementRequest(**GPU_REQUEST, queued_at=T0, **fleet)
        return place(req, index.snapshot({}), {"m60": (3000.0, 3)}, T0)

    steep = decision(scaling_prior=0.9, slope_prior=1.0)
    assert steep.shape == "t4" and steep.chosen.duration_source == "exploring"
    assert decision(scaling_prior=0.1).shape == "m60"
    assert decision(slope_prior=-0.2).shape == "m60"


def test_prior_names_are_normalised():
    assert priors.gpu_model("NVIDIA A10G") == "A10G"
    assert priors.gpu_model("Tesla V100-SXM2-32GB") == "V100"
    assert priors.gpu_model("A100-80GB") == "A100-80GB" and priors.gpu_model("A100-SXM4-40GB") == "A100"
    assert priors.gpu_model("RTX 4090") == "RTX4090" and priors.gpu_model("A6000") == "RTXA6000"
    assert priors.gpu_model("H100 NVL") == "H100-NVL" and priors.gpu_model("TPU-v4") is None
    assert priors.cpu_generation("Standard_E8as_v5") == "milan"
    assert priors.cpu_generation("m7g.large") == "graviton3" and priors.cpu_generation("n2-standard-8") == "cascadelake"
    assert duration_model.hardware_class(cpu("c", 0.1), gpu_job=False) == ("cpu", None)


# -- wait or spill ---------------------------------------------------------------------------------

WAIT_SHAPES = [cpu("cheap", 0.10), cpu("dear", 0.30)]


def wait_decision(expected_wait_s, now_after_s=0.0, max_wait_s=600.0, shapes=WAIT_SHAPES):
    index = ShapeIndex(shapes)
    snapshot = index.snapshot({"cheap": 1}, expected_wait_s=expected_wait_s)
    req = PlacementRequest(job="j", requirements=Requirements(cpus=1, memory_gib=1), max_wait_s=max_wait_s,
                           queued_at=T0)
    return place(req, snapshot, {"cheap": (600.0, 20), "dear": (600.0, 20)}, T0 + timedelta(seconds=now_after_s))


def test_a_run_spills_at_once_when_its_expected_wait_passes_max_wait():
    d = wait_decision({"cheap": 900.0})
    assert (d.action, d.shape) == ("place", "dear")
    assert "spilled over at once" in d.reason and "passes max_wait" in d.reason


def test_a_run_waits_when_the_slot_comes_in_time_and_saves_money():
    d = wait_decision({"cheap": 120.0})
    assert d.action == "wait" and d.cheapest.shape == "cheap" and "~120s" in d.reason
    # the same wait, but most of max_wait is gone already: 120 s more would pass it
    late = wait_decision({"cheap": 120.0}, now_after_s=500.0)
    assert (late.action, late.shape) == ("place", "dear")


def test_a_saving_below_the_threshold_is_not_worth_waiting_for():
    d = wait_decision({"cheap": 60.0}, shapes=[cpu("cheap", 0.100), cpu("dear", 0.102)])
    assert (d.action, d.shape) == ("place", "dear") and "save under" in d.reason


def test_without_wait_estimates_a_run_waits_until_max_wait_then_spills():
    assert wait_decision({}).action == "wait"
    later = wait_decision({}, now_after_s=601.0)
    assert (later.action, later.shape) == ("place", "dear") and "spilled over after waiting" in later.reason


def test_expected_wait_counts_the_runs_ahead_and_remaining_times():
    assert expected_wait(1, [500.0], ahead=0) == 0.0
    assert expected_wait(0, [500.0, 100.0], ahead=0) == 100.0
    assert expected_wait(0, [500.0, 100.0], ahead=1) == 500.0
    assert expected_wait(0, [500.0, 100.0], ahead=2) == 100.0 + 2 * 300.0  # a second round of releases
    assert expected_remaining(600.0, 100.0) == 500.0
    assert expected_remaining(600.0, 900.0) == 900.0 * placement.LINDY  # past its estimate
    assert expected_remaining(None, 10.0) is None


def test_one_trial_at_a_time_on_unproven_hardware():
    index = ShapeIndex(SHAPES)
    history = {"v100": (3000.0, 5)}
    req = PlacementRequest(job="j", requirements=Requirements(gpus=1, cpus=1, memory_gib=1))
    assert place(req, index.snapshot({}), history, T0).shape == "a100"  # explored
    busy = PlacementRequest(job="j", requirements=req.requirements, in_flight={"a100": 1})
    assert place(busy, index.snapshot({}), history, T0).shape == "v100"  # its trial is still running
