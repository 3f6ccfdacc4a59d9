"""What supervising a live run decides, on the injected clock: how long to wait on the executor, when
to sample it and to look for a cancel request, when its deadline stops it, and how its end is taken
(retry, TIMED_OUT by its own watchdog, a spot attempt preempted, or by exit code). Pure: the executor
is reached through the protocol below and the store through the ``check`` callable the caller gives
(runtime/supervise.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Callable, Protocol

from .clock import Clock

CANCEL_CHECK_S = 0.5
FIRST_SAMPLE_S, FIRST_SAMPLE_EVERY_S, MAX_SAMPLE_EVERY_S = 0.01, 0.02, 2.0


class Outcome(StrEnum):
    EXITED = "exited"  # ended by itself: recorded by its exit code
    WATCHDOG = "watchdog"  # stopped at its deadline by its own watchdog: TIMED_OUT
    RETRY = "retry"  # failed with attempts left: launch it again
    PREEMPTED = "preempted"  # a spot attempt's capacity was taken: the same run is queued again
    DEADLINE = "deadline"  # still going at its deadline: stopped here, TIMED_OUT
    CANCEL = "cancel"  # a cancel was requested: stopped here, CANCELED
    ENDED_ELSEWHERE = "ended elsewhere"  # someone else recorded its end (e.g. marked lost)


class Seen(StrEnum):
    """What the store says of a live run at a check."""

    LIVE = "live"
    CANCEL_REQUESTED = "cancel requested"
    FINISHED = "finished"


class Ended(Protocol):  # executors.base.ExitStatus, as far as supervision reads it
    exit_code: int | None
    timed_out: bool

    @property
    def is_lost(self) -> bool: ...

    @property
    def is_preempted(self) -> bool: ...


class Watchable(Protocol):  # the part of executors.base.Executor that supervision calls
    def wait(self, handle: dict[str, Any], timeout: float) -> Ended | None: ...

    def sample(self, handle: dict[str, Any]) -> None: ...

    def cancel(self, handle: dict[str, Any], grace_s: float) -> Ended: ...


def deadline_from_claim(claimed_at: datetime, max_runtime_s: float) -> datetime:
    """A run's deadline, fixed when it claims its slot: slow launches and retries do not move it."""
    return claimed_at + timedelta(seconds=max_runtime_s)


def on_exit(status: Ended, can_retry: bool, on_spot: bool = False) -> Outcome:
    """How a run the executor saw end is taken (a preemption on on-demand is a failure like any other)."""
    if status.timed_out:
        return Outcome.WATCHDOG
    if on_spot and status.is_preempted:
        return Outcome.PREEMPTED
    if status.exit_code != 0 and can_retry and not status.is_lost:
        return Outcome.RETRY
    return Outcome.EXITED


@dataclass
class Cadence:
    """When the next utilization sample (backing off to every 2 s) and cancel check are due (monotonic)."""

    start: float
    next_sample: float
    sample_every: float
    next_check: float

    @classmethod
    def starting(cls, mono: float, samples: bool = True) -> "Cadence":
        """samples=False: no sample is ever due (the executor samples its runs itself, nobody shows progress)."""
        first = mono + FIRST_SAMPLE_S if samples else float("inf")
        return cls(mono, first, FIRST_SAMPLE_EVERY_S, mono + CANCEL_CHECK_S)

    def timeout(self, mono: float, remaining_s: float) -> float:
        return max(0.0, min(remaining_s, self.next_sample - mono, self.next_check - mono))

    def check_due(self, mono: float) -> bool:
        if mono < self.next_check:
            return False
        self.next_check = mono + CANCEL_CHECK_S
        return True

    def sample_due(self, mono: float) -> bool:
        if mono < self.next_sample:
            return False
        self.sample_every = min(self.sample_every * 2, MAX_SAMPLE_EVERY_S)
        self.next_sample = mono + self.sample_every
        return True


@dataclass(frozen=True)
class Watched:
    outcome: Outcome
    status: Ended | None  # None only for ENDED_ELSEWHERE
    at: datetime  # on the clock, when the outcome was reached (after the stop, for DEADLINE / CANCEL)


def watch(clock: Clock, executor: Watchable, handle: dict[str, Any], deadline_at: datetime, *, grace_s: float,
          can_retry: bool, check: Callable[[], Seen], cadence: Cadence,
          on_sample: Callable[[float], None] | None = None, on_spot: bool = False, sample: bool = True) -> Watched:
    """Wait on a live run until something must be recorded; a run stopped here (deadline, cancel) was
    stopped with ``grace_s`` between the polite signal and the kill (the executor's cancel). With
    sample=False the executor samples its runs itself: a due sample only reports progress."""
    while True:
        status = executor.wait(handle, cadence.timeout(clock.monotonic(), _remaining(clock, deadline_at)))
        if status is not None:
            return Watched(on_exit(status, can_retry, on_spot), status, clock.now())
        mono = clock.monotonic()
        if _remaining(clock, deadline_at) <= 0:
            return _stopped(clock, executor, handle, grace_s, Outcome.DEADLINE)
        if cadence.check_due(mono):
            seen = check()
            if seen is Seen.CANCEL_REQUESTED:
                return _stopped(clock, executor, handle, grace_s, Outcome.CANCEL)
            if seen is Seen.FINISHED:
                return Watched(Outcome.ENDED_ELSEWHERE, None, clock.now())
        if cadence.sample_due(mono):
            if sample:
                executor.sample(handle)
            if on_sample:
                on_sample(mono - cadence.start)


def _remaining(clock: Clock, deadline_at: datetime) -> float:
    return (deadline_at - clock.now()).total_seconds()


def _stopped(clock: Clock, executor: Watchable, handle: dict[str, Any], grace_s: float,
             outcome: Outcome) -> Watched:
    status = executor.cancel(handle, grace_s)
    return Watched(outcome, status, clock.now())
