"""Expected waits for full shapes: what wait-or-spill (placement.py) reads from ``Snapshot.wait_s``.

A full shape's wait is the time until one of its slots is this run's: the runs queued ahead of it
for that shape take the first releases, and a release comes when a running run ends, by its own
placement's expected duration (``placement.expected_remaining``; never a simulator's truth). A
running run without an expected duration makes the shape's wait unknown (NaN), so placement falls
back to waiting up to ``max_wait`` for a real saving. No I/O: elapsed times come from the caller's
clock. The daemon's dispatch round (``WaitBook``, kept by core/dispatch.py) and the replay both call
``shape_wait``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

from .placement import expected_remaining, expected_wait
from .shape_index import Snapshot


def shape_wait(free_slots: int, running: Iterable[tuple[float, float | None]], ahead: int = 0) -> float:
    """Seconds until a slot of one shape is this run's: ``running`` is (elapsed s, expected s or
    None) of each run on it, ``ahead`` the runs queued before this one for it; NaN when a running
    run's expected duration is unknown."""
    remaining = []
    for elapsed, expected in running:
        left = expected_remaining(expected, elapsed)
        if left is None:
            return math.nan
        remaining.append(left)
    return expected_wait(free_slots, remaining, ahead)


@dataclass(frozen=True, slots=True)
class LiveRun:
    """A run holding a slot: its id, job, shape, start (None: claimed, not launched yet) and the
    duration its placement expected (None: unknown)."""

    id: str
    job: str | None
    shape: str
    started_at: datetime | None
    expected_s: float | None


@dataclass
class WaitBook:
    """One dispatch round's view of who holds and who awaits the slots of each shape: the live runs
    (by id: those the round claims included) and the runs of the round that wait for a shape."""

    running: dict[str, dict[str, tuple[datetime | None, float | None]]] = field(default_factory=dict)
    ahead: Counter = field(default_factory=Counter)

    def add(self, live: Iterable[LiveRun]) -> None:
        for run in live:
            self.running.setdefault(run.shape, {}).setdefault(run.id, (run.started_at, run.expected_s))

    def started(self, shape: str, run_id: str, at: datetime, expected_s: float | None) -> None:
        self.running.setdefault(shape, {})[run_id] = (at, expected_s)

    def waits(self, shape: str) -> None:
        """A run of the round waits for this shape: later runs queue behind it."""
        self.ahead[shape] += 1

    def fill(self, snapshot: Snapshot, now: datetime) -> None:
        """Write the expected wait of every full shape into ``snapshot.wait_s`` (as of ``now``)."""
        index = snapshot.index
        for position in (~snapshot.has_free).nonzero()[0].tolist():
            name = index.shapes[position].name
            running = self.running.get(name, {}).values()
            snapshot.wait_s[position] = shape_wait(int(snapshot.free[position]), _elapsed(running, now), self.ahead[name])


def _elapsed(running: Iterable[tuple[datetime | None, float | None]], now: datetime) -> list[tuple[float, float | None]]:
    return [(0.0 if at is None else max((now - at).total_seconds(), 0.0), expected) for at, expected in running]
