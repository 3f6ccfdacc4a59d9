"""One thread that samples every local run this process tracks, each on its own cadence (10 ms after
its start, then backing off to every 2 s, as a supervisor sampled its one run before), instead of a
wake-up per run in each run's supervisor thread. Idle (no run tracked), it waits without a timeout."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable

from ..core.supervision import FIRST_SAMPLE_EVERY_S, FIRST_SAMPLE_S, MAX_SAMPLE_EVERY_S
from .local_procs import LocalRun

log = logging.getLogger(__name__)


class Sampler:
    def __init__(self, sample_one: Callable[[LocalRun], bool]):
        """``sample_one`` samples a run and says whether it is still to be sampled (False: it ended)."""
        self._sample_one = sample_one
        self._due: list[tuple[float, int, LocalRun, float]] = []  # (when, tie-break, run, its interval)
        self._cond = threading.Condition()
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, tracked: LocalRun) -> None:
        with self._cond:
            self._push(time.monotonic() + FIRST_SAMPLE_S, tracked, FIRST_SAMPLE_EVERY_S)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="local-sampler", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _push(self, at: float, tracked: LocalRun, every: float) -> None:
        heapq.heappush(self._due, (at, next(self._order), tracked, every))

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._due:
                    self._cond.wait()
                    continue
                at, _, tracked, every = self._due[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._due)
            try:
                keep = self._sample_one(tracked)
            except Exception:  # noqa: BLE001 - one run's odd /proc must not stop the others' samples
                log.exception("sampling run %s failed", tracked.run_id)
                keep = True
            if keep:
                every = min(every * 2, MAX_SAMPLE_EVERY_S)
                with self._cond:
                    self._push(time.monotonic() + every, tracked, every)
