"""The one clock everyone calls: real in production, frozen in tests."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

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
