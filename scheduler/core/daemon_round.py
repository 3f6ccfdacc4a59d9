"""What the daemon's dispatch round does with each queued run, oldest first (daemon/loop.py
``dispatch_once``): stop once the round has no free slot, cancel a run whose cancel was requested,
skip one alike to a run that waits this round, else try to start it (core/dispatch.py decides where)."""

from __future__ import annotations

from enum import StrEnum

from .dispatch import DispatchRound
from .runs import RunRecord


class Triage(StrEnum):
    STOP = "stop"  # the round is over: no free slot left, or the daemon is stopping
    CANCEL = "cancel"  # its cancel was requested while it was queued
    SKIP = "skip"  # one alike to it waits this round: so would it
    TRY = "try"  # place it, claim its slot and launch it


def triage(round: DispatchRound, run: RunRecord, stopping: bool = False) -> Triage:
    if stopping or not round.has_room():
        return Triage.STOP
    if run.cancel_requested_at is not None:
        return Triage.CANCEL
    return Triage.SKIP if round.skips(run) else Triage.TRY
