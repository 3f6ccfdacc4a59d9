"""Deterministic crash points for tests: ``COSTWISE_TEST_CRASH_AT=POINT`` in a process's environment.

- ``after-claim``: SIGKILL itself right after a run's slot is claimed (STARTING, nothing launched);
- ``after-spawn``: SIGKILL itself right after a run's process started, before its handle is saved;
- ``before-requeue`` / ``after-requeue``: SIGKILL itself right before / after a preempted attempt's
  run is queued again (the compare-and-set that records the attempt);
- ``supervise``: the first supervision of a run in this process raises (a supervisor thread dying).

Nothing happens when the variable is unset, which is always outside tests.
"""

from __future__ import annotations

import os
import signal
import threading

KILL_POINTS = ("after-claim", "after-spawn", "before-requeue", "after-requeue")
RAISE_ONCE_POINTS = ("supervise",)
_raised: set[str] = set()
_lock = threading.Lock()


class InjectedFault(RuntimeError):
    """Raised at a RAISE_ONCE point: stands for any bug that kills a supervisor."""


def crash_point(point: str) -> None:
    """Die (or raise, once) here when the test environment asks for it."""
    if os.environ.get("COSTWISE_TEST_CRASH_AT") != point:
        return
    if point in KILL_POINTS:
        os.kill(os.getpid(), signal.SIGKILL)
    with _lock:
        if point in _raised:
            return
        _raised.add(point)
    raise InjectedFault(f"injected fault at {point!r} (COSTWISE_TEST_CRASH_AT)")
