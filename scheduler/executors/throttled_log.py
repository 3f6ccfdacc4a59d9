"""Warnings for failures that repeat (a poll loop against an unreachable engine or API server).

An executor that swallowed such a failure silently hid an outage; one that logs it on every call
floods the log. `ThrottledWarnings` logs the first occurrence of each kind of failure at once, then
stays quiet for an interval that doubles after each warning (up to a ceiling) and says how many it
held back; a success (`clear`) starts that kind afresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

FIRST_INTERVAL_S = 30.0
MAX_INTERVAL_S = 600.0


@dataclass
class _Backoff:
    next_at: float
    interval_s: float
    held_back: int = 0


class ThrottledWarnings:
    """Rate-limited `logger.warning` per key, with exponential backoff between warnings."""

    def __init__(self, logger: logging.Logger, first_interval_s: float = FIRST_INTERVAL_S,
                 max_interval_s: float = MAX_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.first_interval_s = first_interval_s
        self.max_interval_s = max_interval_s
        self.clock = clock
        self._keys: dict[str, _Backoff] = {}
        self._lock = threading.Lock()  # executors call from their watcher threads

    def warn(self, key: str, message: str) -> bool:
        """Log `message` unless `key` warned less than its interval ago; True when it was logged."""
        now = self.clock()
        with self._lock:
            backoff = self._keys.get(key)
            if backoff is not None and now < backoff.next_at:
                backoff.held_back += 1
                return False
            held_back = backoff.held_back if backoff else 0
            interval = self.first_interval_s if backoff is None else min(backoff.interval_s * 2, self.max_interval_s)
            self._keys[key] = _Backoff(next_at=now + interval, interval_s=interval)
        suffix = f" ({held_back} more like it since the last warning)" if held_back else ""
        self.logger.warning("%s%s; next warning of this kind in %.0fs at the earliest", message, suffix, interval)
        return True

    def clear(self, key: str) -> None:
        """The failure stopped: the next one warns at once."""
        with self._lock:
            self._keys.pop(key, None)
