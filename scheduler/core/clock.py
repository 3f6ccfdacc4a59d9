"""The one clock everyone calls: real in production, frozen in tests."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Event(Protocol):  # what a clock waits on: threading.Event, without the core importing threads
    def wait(self, timeout: float | None = None) -> bool: ...

    def is_set(self) -> bool: ...


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def wait(self, event: Event, seconds: float) -> bool:
        """Wait for an event up to `seconds`; True when it is set."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait(self, event: Event, seconds: float) -> bool:
        return event.wait(seconds)


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def wait(self, event: Event, seconds: float) -> bool:
        """A set event answers at once; else the wait passes in frozen time."""
        if not event.is_set():
            self.advance(seconds)
        return event.is_set()

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


def utc(dt: datetime | None) -> datetime | None:
    """Treat a naive datetime as UTC; convert an aware one to UTC."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def iso(dt: datetime | None) -> str | None:
    return None if dt is None else utc(dt).isoformat().replace("+00:00", "Z")


def parse_time(text: str, now: datetime) -> datetime:
    """Parse an ISO timestamp, a date, or a duration back from now ('2h', '7d')."""
    from .durations import parse_duration

    try:
        return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        pass
    try:
        return now - timedelta(seconds=parse_duration(text, field="since"))
    except ValueError:
        raise ValueError(
            f"time {text!r} is neither an ISO timestamp nor a duration like '2h' or '7d'"
        ) from None
