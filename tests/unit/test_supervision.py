"""Supervision's decisions on a frozen clock (core/supervision.py, which runtime/supervise.py drives):
deadlines from the claim, ends before them, cancel requests, grace then kill, retries and samples.

The executor is an in-memory fake of the executor protocol whose process runs in frozen time: its wait
blocks (moves the clock) for the timeout unless the process ends first. The real executors are tested
against real processes, containers and Jobs in tests/integration."""

from datetime import datetime, timedelta, timezone

import pytest

from scheduler.core.clock import FrozenClock
from scheduler.core.supervision import (
    CANCEL_CHECK_S,
    MAX_SAMPLE_EVERY_S,
    Cadence,
    Outcome,
    Seen,
    deadline_from_claim,
    watch,
)
from scheduler.executors.base import MAX_STOP_GRACE_S, Executor, ExitStatus, capped_grace

T0 = datetime(2026, 11, 3, 9, 30, tzinfo=timezone.utc)


class FrozenProcessExecutor:
    """One fake process per handle: it ends by itself at ``ends_at`` (None: never), on SIGTERM when
    ``obeys_term``, else at the SIGKILL that follows the grace."""

    backend = "fake"

    def __init__(self, clock: FrozenClock, ends_at: datetime | None = None, exit_code: int = 0,
                 obeys_term: bool = True):
        self.clock, self.ends_at, self.exit_code, self.obeys_term = clock, ends_at, exit_code, obeys_term
        self.calls: list[tuple[str, datetime]] = []
        self.waits: list[float] = []

    def launch(self, spec):
        return {"run_id": spec.run_id}

    def wait(self, handle, timeout):
        self.waits.append(timeout)
        if self.ends_at is not None and self.clock.now() + timedelta(seconds=timeout) >= self.ends_at:
            self.clock.advance(max(0.0, (self.ends_at - self.clock.now()).total_seconds()))
            return ExitStatus(self.exit_code, None if self.exit_code == 0 else f"exit code {self.exit_code}")
        self.clock.advance(timeout)
        return None

    def sample(self, handle):
        self.calls.append(("sample", self.clock.now()))

    def usage(self, handle):
        from scheduler.executors.base import Usage

        return Usage()

    def cancel(self, handle, grace_s):
        self.calls.append(("term", self.clock.now()))
        if self.obeys_term:
            return ExitStatus(-15, "signal 15")
        self.clock.advance(grace_s)
        self.calls.append(("kill", self.clock.now()))
        return ExitStatus(-9, "signal 9")

    def adopt(self, handle):
        return False

    def describe(self, spec):
        return {}

    def forget(self, handle):
        pass

    def stops(self) -> list[tuple[str, datetime]]:
        return [call for call in self.calls if call[0] != "sample"]


def supervise(clock, executor: Executor, deadline_at, check=lambda: Seen.LIVE, grace_s=10.0, can_retry=False,
              on_sample=None):
    return watch(clock, executor, {"run_id": "r-1"}, deadline_at, grace_s=grace_s, can_retry=can_retry,
                 check=check, cadence=Cadence.starting(clock.monotonic()), on_sample=on_sample)


def test_a_run_past_its_max_runtime_is_stopped_at_exactly_the_deadline_set_at_its_claim():
    clock = FrozenClock(T0)
    deadline = deadline_from_claim(clock.now(), 60)  # claimed at T0 ...
    clock.advance(7.3)  # ... launched (and supervised from) a slow 7.3 s later
    executor = FrozenProcessExecutor(clock)
    watched = supervise(clock, executor, deadline)
    assert deadline == T0 + timedelta(seconds=60)
    assert watched.outcome is Outcome.DEADLINE
    assert executor.stops() == [("term", deadline)]
    assert all(t <= deadline for _, t in executor.calls)


def test_a_run_that_ends_just_before_its_deadline_is_not_timed_out():
    clock = FrozenClock(T0)
    deadline = deadline_from_claim(T0, 60)
    executor = FrozenProcessExecutor(clock, ends_at=deadline - timedelta(milliseconds=1))
    watched = supervise(clock, executor, deadline)
    assert watched.outcome is Outcome.EXITED
    assert watched.status.exit_code == 0
    assert watched.at == deadline - timedelta(milliseconds=1)
    assert executor.stops() == []


def test_a_run_adopted_after_its_deadline_is_stopped_without_waiting():
    clock = FrozenClock(T0 + timedelta(hours=2))
    executor = FrozenProcessExecutor(clock)
    watched = supervise(clock, executor, deadline_from_claim(T0, 3600))
    assert watched.outcome is Outcome.DEADLINE
    assert executor.waits == [0.0]
    assert executor.stops() == [("term", T0 + timedelta(hours=2))]


def test_a_cancel_request_is_seen_at_the_next_check_then_term_grace_kill_in_that_order():
    clock = FrozenClock(T0)
    requested_at = T0 + timedelta(seconds=3.2)
    check = lambda: Seen.CANCEL_REQUESTED if clock.now() >= requested_at else Seen.LIVE  # noqa: E731
    executor = FrozenProcessExecutor(clock, obeys_term=False)
    grace = capped_grace(30)
    watched = supervise(clock, executor, deadline_from_claim(T0, 3600), check=check, grace_s=grace)
    assert watched.outcome is Outcome.CANCEL
    (term, term_at), (kill, kill_at) = executor.stops()
    assert (term, kill) == ("term", "kill")
    assert requested_at <= term_at <= requested_at + timedelta(seconds=CANCEL_CHECK_S)
    assert kill_at == term_at + timedelta(seconds=30)
    assert watched.at == kill_at  # recorded after the kill, not before
    assert watched.status.exit_code == -9


def test_a_process_that_obeys_term_is_not_killed_and_an_endless_grace_still_ends_in_a_kill():
    clock = FrozenClock(T0)
    executor = FrozenProcessExecutor(clock, obeys_term=True)
    supervise(clock, executor, deadline_from_claim(T0, 5))
    assert [name for name, _ in executor.stops()] == ["term"]
    stubborn = FrozenProcessExecutor(clock, obeys_term=False)
    supervise(clock, stubborn, deadline_from_claim(clock.now(), 5), grace_s=capped_grace(float("inf")))
    (_, term_at), (_, kill_at) = stubborn.stops()
    assert kill_at - term_at == timedelta(seconds=MAX_STOP_GRACE_S)


def test_a_run_someone_else_finished_is_left_alone():
    clock = FrozenClock(T0)
    executor = FrozenProcessExecutor(clock)
    check = lambda: Seen.FINISHED  # noqa: E731
    watched = supervise(clock, executor, deadline_from_claim(T0, 3600), check=check)
    assert watched.outcome is Outcome.ENDED_ELSEWHERE and watched.status is None
    assert watched.at == T0 + timedelta(seconds=CANCEL_CHECK_S)
    assert executor.stops() == []


@pytest.mark.parametrize("exit_code, can_retry, outcome", [
    (3, True, Outcome.RETRY), (3, False, Outcome.EXITED), (0, True, Outcome.EXITED),
])
def test_a_failed_run_is_retried_only_with_attempts_left(exit_code, can_retry, outcome):
    clock = FrozenClock(T0)
    executor = FrozenProcessExecutor(clock, ends_at=T0 + timedelta(seconds=2), exit_code=exit_code)
    assert supervise(clock, executor, deadline_from_claim(T0, 60), can_retry=can_retry).outcome is outcome


def test_a_lost_run_is_never_retried_and_a_watchdog_stop_is_a_time_out():
    from scheduler.core.supervision import on_exit

    assert on_exit(ExitStatus.lost(), can_retry=True) is Outcome.EXITED
    assert on_exit(ExitStatus(137, "killed", timed_out=True), can_retry=True) is Outcome.WATCHDOG


def test_a_preemption_requeues_a_spot_attempt_and_is_a_failure_on_demand():
    from scheduler.core.supervision import on_exit

    preempted = ExitStatus.preempted("killed from outside (exit code 137)", 137)
    assert on_exit(preempted, can_retry=True, on_spot=True) is Outcome.PREEMPTED  # no retry spent
    assert on_exit(preempted, can_retry=False, on_spot=True) is Outcome.PREEMPTED
    assert on_exit(preempted, can_retry=True) is Outcome.RETRY  # on-demand: as any failed attempt
    assert on_exit(preempted, can_retry=False) is Outcome.EXITED
    assert on_exit(ExitStatus(137, "exit code 137"), can_retry=False, on_spot=True) is Outcome.EXITED


def test_samples_back_off_to_every_two_seconds_and_report_the_time_supervised():
    clock = FrozenClock(T0)
    elapsed = []
    executor = FrozenProcessExecutor(clock, ends_at=T0 + timedelta(seconds=20))
    supervise(clock, executor, deadline_from_claim(T0, 60), on_sample=elapsed.append)
    gaps = [round(b - a, 6) for a, b in zip(elapsed, elapsed[1:])]
    assert elapsed[0] == pytest.approx(0.01)
    assert gaps[:4] == [0.04, 0.08, 0.16, 0.32]
    assert max(gaps) == MAX_SAMPLE_EVERY_S and gaps[-1] == MAX_SAMPLE_EVERY_S
    assert all(wait <= CANCEL_CHECK_S + 1e-9 for wait in executor.waits)
