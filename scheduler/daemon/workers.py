"""Threads the daemon reuses for supervising runs: still one thread per live run, but a run that
starts while another's thread is idle takes that thread instead of starting a new one (a thread start
waits for the new thread to get the GIL: at hundreds of launches a second it was a fifth of the
dispatch thread's time)."""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

log = logging.getLogger("costwise.daemon")
IDLE_S = 30.0  # an idle thread ends after this long without work


class Workers:
    def __init__(self, idle_s: float = IDLE_S):
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for work, less the tasks queued for them
        self._idle_s = idle_s

    def submit(self, task: Callable[[], None], name: str) -> None:
        """Run ``task`` at once on an idle thread, else on a new one (never queued behind another)."""
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                self._tasks.put((task, name))
                return
        threading.Thread(target=self._work, args=(task, name), name=name, daemon=True).start()

    def _work(self, task: Callable[[], None], name: str) -> None:
        while True:
            threading.current_thread().name = name
            try:
                task()
            except Exception:  # noqa: BLE001 - the task logs its own failures; keep the thread
                log.exception("%s failed", name)
            threading.current_thread().name = "idle"
            with self._lock:
                self._idle += 1
            try:
                task, name = self._tasks.get(timeout=self._idle_s)
            except queue.Empty:
                with self._lock:  # a task queued since the timeout was counted for a waiting thread
                    try:
                        task, name = self._tasks.get_nowait()
                    except queue.Empty:
                        self._idle -= 1
                        return
