"""Which state a run may move to from which: the table every compare-and-set update is checked against."""

from __future__ import annotations

from .runs import CANCELED, FAILED, QUEUED, RUNNING, STARTING, SUCCEEDED, TIMED_OUT, RunState

TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    QUEUED: frozenset({STARTING, FAILED, CANCELED}),  # claimed; refused by placement or a budget; canceled
    # launched; requeued after a restart (never launched); ended before or at launch
    STARTING: frozenset({RUNNING, QUEUED, SUCCEEDED, FAILED, CANCELED, TIMED_OUT}),
    # adopted by a new supervisor; retried; queued again after a preempted (spot) attempt; ended
    RUNNING: frozenset({RUNNING, STARTING, QUEUED, SUCCEEDED, FAILED, CANCELED, TIMED_OUT}),
}


def can_move(source: RunState, target: RunState) -> bool:
    return target in TRANSITIONS.get(source, frozenset())


def move(source: RunState, target: RunState) -> list[RunState]:
    """The `expect` of a compare-and-set update from one state to another (refuses a move the table lacks)."""
    if not can_move(source, target):
        raise ValueError(f"a run cannot move from {source} to {target}")
    return [source]


def sources(target: RunState) -> list[RunState]:
    """Every state a run may reach `target` from, in lifecycle order: the `expect` of a CAS that ends a run."""
    return [state for state, targets in TRANSITIONS.items() if target in targets]
