"""Expected waits of full shapes (core/waits.py) and what a dispatch round tells placement with them, its
jobs' runs in flight and the fleet's priors (core/dispatch.py), on a frozen clock and no database."""

import math
from datetime import datetime, timedelta, timezone

import pytest

from scheduler.core.clock import FrozenClock
from scheduler.core.dispatch import DispatchRound, run_request
from scheduler.core.fleet_priors import FleetPriors
from scheduler.core.placement import ShapeIndex
from scheduler.core.runs import RunRecord
from scheduler.core.specs import JobSpec, ShapeSpec
from scheduler.core.waits import LiveRun, WaitBook, shape_wait

T0 = datetime(2026, 11, 3, 9, 30, tzinfo=timezone.utc)
SHAPES = [
    ShapeSpec(name="cheap", vcpus=2, memory_gib=4, price_per_hour=0.10, capacity=1),
    ShapeSpec(name="dear", vcpus=4, memory_gib=8, price_per_hour=0.40, capacity=2),
]


def test_a_shape_wait_is_the_running_runs_remaining_time_and_unknown_without_an_estimate():
    assert shape_wait(0, [(100.0, 400.0)]) == 300.0
    assert shape_wait(0, [(100.0, 400.0), (0.0, 50.0)]) == 50.0  # the first release
    assert shape_wait(0, [(100.0, 400.0), (0.0, 50.0)], ahead=1) == 300.0  # one run ahead takes the first
    assert shape_wait(0, [(500.0, 400.0)]) == 500.0  # past its estimate: as long again as its age
    assert math.isnan(shape_wait(0, [(100.0, 400.0), (10.0, None)]))
    assert shape_wait(0, []) == math.inf  # nothing runs there and nothing frees it
    assert shape_wait(1, [(100.0, 400.0)]) == 0.0  # a free slot


def test_the_book_fills_only_full_shapes_and_counts_claims_and_waiters():
    index = ShapeIndex(SHAPES)
    snapshot = index.snapshot({"cheap": 1})
    book = WaitBook()
    book.add([LiveRun("a", "long", "cheap", T0 - timedelta(seconds=100), 1000.0)])
    book.add([LiveRun("a", "long", "cheap", T0, 5.0)])  # the same run read again changes nothing
    book.fill(snapshot, T0)
    assert snapshot.wait_s[index.position["cheap"]] == 900.0
    assert math.isnan(snapshot.wait_s[index.position["dear"]])  # free: no wait to know
    book.waits("cheap")
    book.fill(snapshot, T0 + timedelta(seconds=50))
    assert snapshot.wait_s[index.position["cheap"]] == 850.0 + 2 * 850.0  # behind one: the next round of releases


def queued(job: str, clock: FrozenClock, expected=3600.0, max_wait=600.0) -> RunRecord:
    spec = JobSpec(name=job, artifact="train.py", requirements={"cpus": 1, "memory_gib": 1},
                   expected_duration=expected, max_wait=max_wait)
    return RunRecord(id=f"r-{job}-{clock.monotonic():g}", job=job, queued_at=clock.now(), spec=spec.model_dump(mode="json"))


def decide(round: DispatchRound, run: RunRecord, clock: FrozenClock):
    req = round.request(run_request(run, JobSpec.model_validate(run.spec)))
    decision = round.decide(run, req, clock.now())
    if decision.action == "place":
        round.took(decision.shape, req.job, run.id, decision.chosen.expected_duration_s, clock.now())
    return decision


def round_with(live: list[LiveRun], fleet: FleetPriors | None = None) -> tuple[DispatchRound, list]:
    reads = []

    def load(shapes):
        reads.append(list(shapes))
        return [r for r in live if r.shape in shapes]

    in_use, in_flight = {}, {}
    for r in live:
        in_use[r.shape] = in_use.get(r.shape, 0) + 1
        in_flight.setdefault(r.job, {})[r.shape] = in_flight.get(r.job, {}).get(r.shape, 0) + 1
    return DispatchRound(ShapeIndex(SHAPES), in_use, in_flight=in_flight, load_live=load, fleet=fleet), reads


def test_a_long_expected_wait_spills_at_once_and_a_short_one_waits():
    clock = FrozenClock(T0)
    long = LiveRun("a", "other", "cheap", T0 - timedelta(seconds=60), 3600.0)
    round, reads = round_with([long])
    spilled = decide(round, queued("train", clock), clock)
    assert spilled.action == "place" and spilled.shape == "dear"
    assert "spilled over at once" in spilled.reason and "passes max_wait" in spilled.reason
    assert reads == [["cheap"]]  # read once, when a decision first met it full

    short = LiveRun("a", "other", "cheap", T0 - timedelta(seconds=60), 90.0)
    round, _ = round_with([short])
    waits = decide(round, queued("train", clock), clock)
    assert waits.action == "wait" and waits.reason.startswith("waiting ~30s for cheap")


def test_runs_waiting_ahead_lengthen_the_wait_of_those_behind():
    clock = FrozenClock(T0)
    round, _ = round_with([LiveRun("a", "other", "cheap", T0 - timedelta(seconds=60), 360.0)])
    first = decide(round, queued("train", clock), clock)  # 300 s: worth waiting for a quarter of the price
    second = decide(round, queued("eval", clock), clock)  # behind it: 300 + 2 x 300 s, past max_wait
    assert first.action == "wait" and first.cheapest.expected_wait_s == 300.0
    assert second.action == "place" and second.shape == "dear" and "passes max_wait" in second.reason


def test_without_live_runs_to_read_the_round_waits_as_before():
    clock = FrozenClock(T0)
    round = DispatchRound(ShapeIndex(SHAPES), {"cheap": 1})
    decision = round.decide(queued("train", clock), run_request(queued("train", clock), JobSpec.model_validate(
        queued("train", clock).spec)), clock.now())
    assert decision.action == "wait" and "spills to dear after max_wait" in decision.reason


def test_the_request_carries_the_jobs_runs_in_flight_and_the_fleets_priors():
    clock = FrozenClock(T0)
    round, _ = round_with([LiveRun("a", "train", "dear", T0, 60.0)], FleetPriors(scaling=0.4, slope=0.9))
    run = queued("train", clock)
    req = round.request(run_request(run, JobSpec.model_validate(run.spec)))
    assert dict(req.in_flight) == {"dear": 1} and (req.scaling_prior, req.slope_prior) == (0.4, 0.9)
    decision = decide(round, run, clock)
    assert decision.shape == "cheap" and dict(round.request(req).in_flight) == {"dear": 1, "cheap": 1}
    bare = DispatchRound(ShapeIndex(SHAPES), {}).request(run_request(run, JobSpec.model_validate(run.spec)))
    assert (bare.scaling_prior, bare.slope_prior) == (None, None)  # duration_model's defaults


@pytest.mark.parametrize("age, expected", [(0, 3600.0), (3000, 600.0)])
def test_a_claim_in_the_round_counts_as_running_from_its_claim(age, expected):
    clock = FrozenClock(T0)
    round, _ = round_with([])
    placed = decide(round, queued("long", clock, expected=3600.0), clock)
    assert placed.shape == "cheap"
    clock.advance(age)
    later = decide(round, queued("train", clock), clock)
    assert later.cheapest.expected_wait_s == pytest.approx(expected)


def test_a_run_skipped_as_alike_to_a_waiting_one_counts_as_ahead_too():
    clock = FrozenClock(T0)
    round, _ = round_with([LiveRun("a", "other", "cheap", T0 - timedelta(seconds=60), 210.0)])
    assert decide(round, queued("train", clock), clock).action == "wait"  # 150 s for a quarter of the price
    assert round.skips(queued("train", clock))  # waits for cheap as well, behind the first
    spilled = decide(round, queued("eval", clock), clock)  # behind both: 150 + 2 x 2 x 150 s, past max_wait
    assert spilled.action == "place" and spilled.cheapest.expected_wait_s == 750.0
