"""The daemon's dispatch round on a frozen clock, run by run as dispatch_once takes them (triage, then
core/dispatch.py's placement): canceled runs are canceled, alike runs skipped behind one that waits,
and the round ends once no slot is free. No database: the round's snapshot is given."""

from datetime import datetime, timezone

from scheduler.core.clock import FrozenClock
from scheduler.core.daemon_round import Triage, triage
from scheduler.core.dispatch import DispatchRound, run_request
from scheduler.core.placement import ShapeIndex
from scheduler.core.runs import RunRecord
from scheduler.core.specs import JobSpec, ShapeSpec

T0 = datetime(2026, 11, 3, 9, 30, tzinfo=timezone.utc)
SHAPES = [
    ShapeSpec(name="small", vcpus=2, memory_gib=4, price_per_hour=0.10, capacity=1),
    ShapeSpec(name="medium", vcpus=4, memory_gib=16, price_per_hour=0.20, capacity=2),
]


def queued(n: int, job: str, clock: FrozenClock, cpus=2, canceled=False) -> RunRecord:
    spec = JobSpec(name=job, artifact="train.py", requirements={"cpus": cpus, "memory_gib": 4},
                   expected_duration=3600, max_wait=600)
    return RunRecord(id=f"r-{n}", job=job, queued_at=clock.now(), spec=spec.model_dump(mode="json"),
                     cancel_requested_at=clock.now() if canceled else None)


def dispatch(round: DispatchRound, runs: list[RunRecord], clock: FrozenClock, stopping=False) -> list[tuple]:
    """dispatch_once's loop with the store's part (cancel, claim, launch) left out: what each run got."""
    seen = []
    for run in runs:
        step = triage(round, run, stopping)
        if step is Triage.STOP:
            break
        if step is not Triage.TRY:
            seen.append((run.id, step.value))
            continue
        decision = round.decide(run, run_request(run, JobSpec.model_validate(run.spec)), clock.now())
        if decision.shape:
            round.took(decision.shape)
        seen.append((run.id, decision.action.value, decision.shape))
    return seen


def test_a_round_cancels_skips_places_and_stops_when_no_slot_is_left():
    clock = FrozenClock(T0)
    runs = [queued(1, "train", clock), queued(2, "train", clock), queued(3, "train", clock),
            queued(4, "train", clock, canceled=True), queued(5, "big", clock, cpus=4),
            queued(6, "big", clock, cpus=4), queued(7, "big", clock, cpus=4)]
    seen = dispatch(DispatchRound(ShapeIndex(SHAPES), {}), runs, clock)
    assert seen == [
        ("r-1", "place", "small"),
        ("r-2", "wait", None),  # the cheap shape frees up sooner than medium is worth it
        ("r-3", "skip"),  # alike to r-2, which waits: so would it
        ("r-4", "cancel"),
        ("r-5", "place", "medium"),
        ("r-6", "place", "medium"),
    ]  # r-7: every slot is taken, the round is over


def test_a_run_past_its_max_wait_spills_over_while_a_newer_one_alike_still_waits():
    clock = FrozenClock(T0)
    old = queued(1, "train", clock)
    clock.advance(601)
    seen = dispatch(DispatchRound(ShapeIndex(SHAPES), {"small": 1}), [old, queued(2, "train", clock)], clock)
    assert seen[0] == ("r-1", "place", "medium")  # max_wait passed: spills over to the dearer free shape
    assert seen[1] == ("r-2", "wait", None)


def test_a_stopping_daemon_starts_nothing_and_a_full_round_starts_nothing():
    clock = FrozenClock(T0)
    run = queued(1, "train", clock)
    assert triage(DispatchRound(ShapeIndex(SHAPES), {}), run, stopping=True) is Triage.STOP
    assert triage(DispatchRound(ShapeIndex(SHAPES), {"small": 1, "medium": 2}), run) is Triage.STOP
    assert triage(DispatchRound(ShapeIndex(SHAPES), {}), run) is Triage.TRY
