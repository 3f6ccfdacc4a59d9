"""A counter bumped on each change a waiter cares about (a run queued, launched or ended), so waiters in
this process wake at once instead of polling the store; a change written by another process is still
seen by the waiter's own fallback re-read."""

from __future__ import annotations

import threading

from ..core.clock import Clock, SystemClock


class Changes:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.seq = 0

    def notify(self, *_args) -> None:
        with self._cond:
            self.seq += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """The counter once it differs from ``seen``, or after ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self.seq != seen, timeout)
            return self.seq

    def wait_on(self, clock: Clock, seen: int, timeout: float) -> int:
        """As ``wait``, on the system clock; an injected clock (tests' frozen time) passes ``timeout``
        in its own time instead, since a condition variable waits in real time."""
        if isinstance(clock, SystemClock):
            return self.wait(seen, timeout)
        clock.sleep(timeout)
        return self.seq
