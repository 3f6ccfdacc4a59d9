"""An executor's "lost" exit is a named kind of ExitStatus, and the old constructor still makes it."""

from scheduler.executors.base import LOST, ExitStatus


def test_a_lost_exit_is_told_apart_from_a_failing_one():
    assert ExitStatus.lost().is_lost and ExitStatus.lost(137) == ExitStatus(137, "lost")
    assert ExitStatus(None, LOST).is_lost  # what executors build today
    assert not ExitStatus(3, "exit code 3").is_lost and not ExitStatus(0).is_lost


def test_a_preempted_exit_keeps_its_code_and_reason_and_is_neither_lost_nor_timed_out():
    status = ExitStatus.preempted("killed from outside (exit code 137)", 137)
    assert status.is_preempted and not status.is_lost and not status.timed_out
    assert (status.exit_code, status.reason) == (137, "killed from outside (exit code 137)")
    assert not ExitStatus(137, "exit code 137").is_preempted and not ExitStatus.lost().is_preempted
