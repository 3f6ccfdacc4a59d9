"""Issue 11's checks of the duration model through ``placement.place``, with runs that vary as real
runs do (seeded log-normal spread around each shape's true median): a job 3x faster on a dearer GPU
moves there after a few runs; a job that is not faster stays on the cheap one; exploration stops
where it keeps losing. And where a job's overlapping first runs go before any comes back."""

from datetime import datetime, timedelta, timezone

import numpy as np

from scheduler.core import placement
from scheduler.core.placement import PlacementRequest, ShapeIndex, place
from scheduler.core.specs import Requirements, ShapeSpec

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
SPREAD = 0.3  # log-sd of one run around its shape's median


def gpu(name, gpu_type, price):
    return ShapeSpec(name=name, vcpus=8, memory_gib=32, gpus=1, gpu_type=gpu_type, price_per_hour=price,
                     capacity=1, backend="local")


def replay(shapes, median_s, runs, seed=0):
    """Runs one after another: place, 'run' a seeded draw around the shape's median, learn
    (median, runs) per shape as the store's history does. Returns the chosen shapes and sources."""
    index, rng = ShapeIndex(shapes), np.random.default_rng(seed)
    seen: dict[str, list[float]] = {}
    chosen, now = [], T0
    for _ in range(runs):
        history = {s: (float(np.median(d)), len(d)) for s, d in seen.items()}
        req = PlacementRequest(job="train", requirements=Requirements(cpus=1, memory_gib=1, gpus=1), queued_at=now)
        decision = place(req, index.snapshot({}), history, now)
        assert decision.action == "place"
        seconds = median_s[decision.shape] * float(np.exp(SPREAD * rng.standard_normal()))
        chosen.append((decision.shape, decision.chosen.duration_source))
        seen.setdefault(decision.shape, []).append(seconds)
        now += timedelta(seconds=seconds)
    return chosen


LADDER = [gpu("t4", "T4", 0.5), gpu("v100", "V100", 1.0), gpu("a100", "A100", 1.4), gpu("h100", "H100", 2.8)]


def test_three_times_faster_on_a_dearer_gpu_moves_there_after_a_few_runs():
    for seed in range(5):
        chosen = replay(LADDER[1:3], {"v100": 3000.0, "a100": 1000.0}, runs=20, seed=seed)
        first = next(i for i, (shape, _) in enumerate(chosen) if shape == "a100")
        assert first <= 4 and chosen[first][1] == "exploring"
        assert [shape for shape, _ in chosen[-10:]] == ["a100"] * 10, seed
        assert chosen[-1][1] == "history"


def test_a_job_no_faster_on_dearer_gpus_stays_on_the_cheap_one():
    for seed in range(5):
        chosen = replay(LADDER, dict.fromkeys(("t4", "v100", "a100", "h100"), 3000.0), runs=40, seed=seed)
        assert [shape for shape, _ in chosen[-20:]] == ["t4"] * 20, seed
        assert sum(shape != "t4" for shape, _ in chosen) <= 3 * placement.EXPLORE_RUNS


def test_exploration_stops_where_it_keeps_losing():
    # a little faster on each dearer GPU, never enough to pay for it: each is tried a bounded number of
    # times, and after the first runs nothing is explored any more, however long the job keeps running
    medians = {"t4": 3000.0, "v100": 2500.0, "a100": 2000.0, "h100": 1500.0}
    for seed in range(5):
        chosen = replay(LADDER, medians, runs=60, seed=seed)
        for shape in ("v100", "a100", "h100"):
            assert sum(s == shape for s, _ in chosen) <= placement.EXPLORE_RUNS + 1, (seed, shape)
        last_exploring = max((i for i, (_, source) in enumerate(chosen) if source == "exploring"), default=-1)
        assert last_exploring < 15, seed
        assert [shape for shape, _ in chosen[-30:]] == ["t4"] * 30, seed


# -- a job's overlapping first runs ---------------------------------------------------------------

FIRST_SHAPES = [gpu("m60", "M60", 1.0), gpu("t4", "T4", 1.1), gpu("h100", "H100", 6.0)]


def first_runs(**fleet):
    """Where the second run of a job goes while its first, on the cheapest shape, is still running."""
    req = PlacementRequest(job="new", requirements=Requirements(cpus=1, memory_gib=1, gpus=1), queued_at=T0,
                           in_flight={"m60": 1}, **fleet)
    return place(req, ShapeIndex(FIRST_SHAPES).snapshot({"m60": 0}), {}, T0)


def test_a_jobs_first_run_goes_by_price():
    req = PlacementRequest(job="new", requirements=Requirements(cpus=1, memory_gib=1, gpus=1), slope_prior=0.9)
    decision = place(req, ShapeIndex(FIRST_SHAPES).snapshot({}), {}, T0)
    assert decision.shape == "m60" and decision.chosen.duration_source == placement.PRICE_ORDER


def test_overlapping_first_runs_follow_the_prior_where_the_fleet_follows_it():
    # the prior rates an M60 at half a T4: at 10 % more an hour the T4 is the cheaper bet
    decision = first_runs(slope_prior=0.9)
    assert decision.shape == "t4" and decision.chosen.duration_source == placement.PRIOR_ORDER
    assert decision.chosen.expected_duration_s is None and "prior's speed-ups" in decision.reason


def test_overlapping_first_runs_keep_to_price_order_unless_the_fleet_learned_a_positive_slope():
    assert first_runs().shape == "m60"  # nothing learned across the fleet (the daemon today)
    assert first_runs(slope_prior=-0.1).shape == "m60"  # the prior's order says nothing for this fleet
    assert first_runs(slope_prior=0.9, scaling_prior=0.01).shape == "m60"  # its jobs do not scale
