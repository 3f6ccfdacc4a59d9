"""The decision part of a dispatch round on a frozen clock: which queued run goes where, waits, is
skipped or refused, with max_wait spill-over and budget holds (no database: histories and spend are given)."""

from datetime import datetime, timezone

from scheduler.core.budgets import BudgetSpec
from scheduler.core.clock import FrozenClock
from scheduler.core.dispatch import DispatchRound, run_request
from scheduler.core.placement import ShapeIndex
from scheduler.core.runs import RunRecord
from scheduler.core.specs import JobSpec, ShapeSpec

T0 = datetime(2026, 11, 3, 9, 30, tzinfo=timezone.utc)
SHAPES = [
    ShapeSpec(name="small", vcpus=2, memory_gib=4, price_per_hour=0.10, capacity=1),
    ShapeSpec(name="medium", vcpus=4, memory_gib=16, price_per_hour=0.20, capacity=2),
]


def queued(job: str, clock: FrozenClock, cpus=2, memory_gib=4, labels=None, **spec) -> RunRecord:
    job_spec = JobSpec(name=job, artifact="train.py", requirements={"cpus": cpus, "memory_gib": memory_gib},
                       expected_duration=3600, max_wait=600, labels=labels or {}, **spec)
    return RunRecord(id=f"r-{job}-{clock.monotonic():g}-{id(job_spec)}", job=job, queued_at=clock.now(),
                     spec=job_spec.model_dump(mode="json"), labels=dict(job_spec.labels))


def play(round: DispatchRound, runs: list[RunRecord], clock: FrozenClock) -> list[tuple]:
    """What the daemon does with a round's decisions: place takes the slot, an alike run is skipped."""
    outcome = []
    for run in runs:
        if not round.has_room():
            outcome.append(("no room", None))
            continue
        if round.skips(run):
            outcome.append(("skip", None))
            continue
        decision = round.decide(run, run_request(run, JobSpec.model_validate(run.spec)), clock.now())
        if decision.action == "place":
            round.took(decision.shape)
        outcome.append((decision.action, decision.shape or decision.reason))
    return outcome


def new_round(in_use=None, budgets=(), spent=None, histories=None) -> DispatchRound:
    return DispatchRound(ShapeIndex(SHAPES), dict(in_use or {}), histories=histories, budgets=budgets, spent=spent)


def test_the_cheapest_free_shape_is_taken_and_an_alike_run_waits_for_it_then_the_rest_skip():
    clock = FrozenClock(T0)
    runs = [queued("train", clock), queued("train", clock), queued("train", clock)]
    outcome = play(new_round(), runs, clock)
    assert outcome[0] == ("place", "small")
    assert outcome[1][0] == "wait" and "small" in outcome[1][1]  # half the price in time beats medium now
    assert outcome[2] == ("skip", None)


def test_a_run_of_another_kind_still_goes_where_it_fits_after_one_waits():
    clock = FrozenClock(T0)
    runs = [queued("train", clock), queued("train", clock), queued("big", clock, cpus=4, memory_gib=8)]
    outcome = play(new_round(), runs, clock)
    assert [o[0] for o in outcome] == ["place", "wait", "place"]
    assert outcome[2] == ("place", "medium")


def test_a_waiting_run_spills_over_to_a_dearer_free_shape_once_max_wait_has_passed():
    clock = FrozenClock(T0)
    run = queued("train", clock)
    assert play(new_round(in_use={"small": 1}), [run], clock)[0][0] == "wait"
    clock.advance(599)
    assert play(new_round(in_use={"small": 1}), [run], clock)[0][0] == "wait"
    clock.advance(1)
    action, shape = play(new_round(in_use={"small": 1}), [run], clock)[0]
    assert (action, shape) == ("place", "medium")


def test_the_round_stops_placing_when_its_snapshot_has_no_free_slot():
    clock = FrozenClock(T0)
    big = [queued(f"big{i}", clock, cpus=4, memory_gib=8) for i in range(3)]
    outcome = play(new_round(in_use={"small": 1}), big, clock)
    assert outcome == [("place", "medium"), ("place", "medium"), ("no room", None)]


def test_the_job_history_read_once_per_job_decides_the_shape():
    clock = FrozenClock(T0)
    reads = []

    def history(job):
        reads.append(job)
        return {"small": 7200.0, "medium": 600.0}  # medium is so much faster it is cheaper

    round = DispatchRound(ShapeIndex(SHAPES), {}, load_history=history)
    outcome = play(round, [queued("train", clock), queued("train", clock)], clock)
    assert outcome == [("place", "medium"), ("place", "medium")] and reads == ["train"]


def test_a_hold_budget_makes_a_run_wait_and_a_refuse_budget_refuses_it():
    clock = FrozenClock(T0)
    asked = []

    def spent(budget, since):
        asked.append((budget.name, since))
        return 0.95

    hold = BudgetSpec(name="team-a", labels={"team": "a"}, limit_usd=1.0, action="hold")
    refuse = BudgetSpec(name="team-b", labels={"team": "b"}, period="month", limit_usd=1.0, action="refuse")
    runs = [queued("a", clock, labels={"team": "a"}), queued("b", clock, labels={"team": "b"}),
            queued("c", clock, labels={"team": "c"})]
    outcome = play(new_round(budgets=[hold, refuse], spent=spent), runs, clock)
    assert outcome[0][0] == "wait" and "held by budget 'team-a'" in outcome[0][1]
    assert outcome[1][0] == "refuse" and "refused by budget 'team-b'" in outcome[1][1]
    assert outcome[2] == ("place", "small")  # no budget covers team c: the slot the others left is free
    assert asked == [("team-a", datetime(2026, 11, 3, tzinfo=timezone.utc)),
                     ("team-b", datetime(2026, 11, 1, tzinfo=timezone.utc))]


def test_a_budget_with_room_lets_the_run_start():
    clock = FrozenClock(T0)
    budget = BudgetSpec(name="all", limit_usd=5.0, action="refuse")
    outcome = play(new_round(budgets=[budget], spent=lambda b, since: 1.0), [queued("train", clock)], clock)
    assert outcome == [("place", "small")]


def test_a_run_no_shape_fits_is_refused_and_its_backends_narrow_the_shapes():
    clock = FrozenClock(T0)
    huge = queued("huge", clock, cpus=64, memory_gib=4)
    assert play(new_round(), [huge], clock) == [("refuse", "no shape fits the requirements")]
    elsewhere = queued("train", clock)
    elsewhere.extra = {"backends": ["docker"]}
    assert play(new_round(), [elsewhere], clock)[0][0] == "refuse"
