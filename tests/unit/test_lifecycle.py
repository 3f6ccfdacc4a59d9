"""The run lifecycle as a table: the moves a compare-and-set update may make, and no others."""

import threading

import pytest

from scheduler.core import lifecycle
from scheduler.core.clock import FrozenClock
from scheduler.core.runs import (
    ACTIVE_STATES, CANCELED, FAILED, FINAL_STATES, QUEUED, RUNNING, STARTING, SUCCEEDED, TIMED_OUT,
)


def test_a_queued_run_is_claimed_refused_or_canceled_and_nothing_else():
    assert lifecycle.TRANSITIONS[QUEUED] == {STARTING, FAILED, CANCELED}
    assert not lifecycle.can_move(QUEUED, RUNNING) and not lifecycle.can_move(QUEUED, SUCCEEDED)


def test_launch_retry_adoption_and_requeue_are_moves_of_the_table():
    assert lifecycle.move(STARTING, RUNNING) == [STARTING]  # launched
    assert lifecycle.move(RUNNING, STARTING) == [RUNNING]  # a retry
    assert lifecycle.move(STARTING, QUEUED) == [STARTING]  # requeued: it was never launched
    assert lifecycle.move(RUNNING, QUEUED) == [RUNNING]  # requeued: its spot attempt was preempted
    assert lifecycle.sources(RUNNING) == [STARTING, RUNNING]  # adopted from either live state


@pytest.mark.parametrize("final", FINAL_STATES)
def test_a_finished_run_never_moves_again(final):
    assert not any(lifecycle.can_move(final, target) for target in ACTIVE_STATES + FINAL_STATES)
    with pytest.raises(ValueError, match=f"from {final} to QUEUED"):
        lifecycle.move(final, QUEUED)


def test_only_a_live_run_can_succeed_or_time_out_but_any_active_run_can_fail_or_be_canceled():
    assert lifecycle.sources(SUCCEEDED) == [STARTING, RUNNING]
    assert lifecycle.sources(TIMED_OUT) == [STARTING, RUNNING]
    assert lifecycle.sources(FAILED) == list(ACTIVE_STATES)
    assert lifecycle.sources(CANCELED) == list(ACTIVE_STATES)


def test_a_frozen_clock_sleeps_and_waits_in_frozen_time():
    clock = FrozenClock()
    start, event = clock.now(), threading.Event()
    clock.sleep(2.5)
    assert clock.monotonic() == 2.5 and (clock.now() - start).total_seconds() == 2.5
    assert clock.wait(event, 1.0) is False and clock.monotonic() == 3.5  # nobody set it: the time passed
    event.set()
    assert clock.wait(event, 1.0) is True and clock.monotonic() == 3.5  # set: answered at once
