"""Durations as people write them: "90s", "10m", "2h", "3d", or plain seconds."""

from __future__ import annotations

import math
import re

from .bounds import DEFAULT_MAX_RUNTIME_S, MAX_RUNTIME_CAP_S  # noqa: F401 - long imported from here

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(value: object, field: str = "duration") -> float:
    """Seconds from a duration; ValueError naming the field and the value otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: {value!r} is not a duration (use e.g. '90s', '10m', '2h', '3d')")
    try:
        if isinstance(value, (int, float)):
            seconds = float(value)
        elif isinstance(value, str) and (match := _PATTERN.match(value)):
            seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
        else:
            raise ValueError(f"{field}: {value!r} is not a duration (use e.g. '90s', '10m', '2h', '3d')")
    except OverflowError:  # an int too big for a float
        seconds = math.inf
    if not math.isfinite(seconds):
        raise ValueError(f"{field}: {_short(value)} is not a finite duration")
    if seconds < 0:
        raise ValueError(f"{field}: {value!r} is negative")
    return seconds


def _short(value: object) -> str:
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 256 else "a huge number"
    return text if len(text) <= 40 else text[:37] + "..."


def duration_words(seconds: float) -> str:
    """A round duration as an adjective, for caps in messages: '30-day', '1-hour', '90-second'."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}-{unit}"
    return f"{seconds:g}-second"


def format_duration(seconds: float | None) -> str:
    """Short human form: 0.4s, 12s, 3m05s, 2h10m, 3d4h."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"
