"""A run's attempts, as far as the market makes them more than one: what a preempted attempt leaves on
the record (billed at its price, its lost work counted) before the same run is queued again, and what
the last attempt adds when the run ends. Cost accumulates across attempts: a run's cost_usd is the sum
of its attempts' costs.

The attempts are logged in the run's ``extra["attempt_log"]`` (shown by `costwise show`); when a
preempted run is launched again, ``extra["attempt_started"]`` says when its current attempt started
(``started_at`` stays the first attempt's start). Pure: the caller gives the times (its clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .clock import iso
from .runs import PREEMPTED, QUEUED, RunRecord
from .spot import Market, lost_seconds

LOG_KEY = "attempt_log"
STARTED_KEY = "attempt_started"


@dataclass(frozen=True)
class Attempt:
    number: int  # 1-based
    state: str  # PREEMPTED, or how the run ended
    market: Market
    price_per_hour: float
    started_at: datetime
    ended_at: datetime
    lost_s: float = 0.0

    @property
    def seconds(self) -> float:
        return max((self.ended_at - self.started_at).total_seconds(), 0.0)

    @property
    def cost_usd(self) -> float:
        return self.price_per_hour * self.seconds / 3600.0

    def as_json(self) -> dict[str, Any]:
        return {"attempt": self.number, "state": str(self.state), "market": str(self.market),
                "price_per_hour": self.price_per_hour, "started_at": iso(self.started_at),
                "ended_at": iso(self.ended_at), "seconds": self.seconds, "cost_usd": self.cost_usd,
                "lost_s": self.lost_s}


def logged(run: RunRecord) -> list[dict[str, Any]]:
    return list(run.extra.get(LOG_KEY) or [])


def progress_s(run: RunRecord) -> float:
    """Work the run's preempted attempts kept (their time less what each lost): 0 for a first attempt."""
    return sum(max(a["seconds"] - a["lost_s"], 0.0) for a in logged(run) if a["state"] == PREEMPTED)


def attempt_start(run: RunRecord) -> datetime | None:
    """When the current attempt started: after a preemption, its relaunch; otherwise the run's start
    (a retry keeps billing from the first start, as it always did)."""
    mark = run.extra.get(STARTED_KEY)
    if run.preemptions and mark and mark.get("after_preemptions") == run.preemptions:
        return datetime.fromisoformat(mark["at"])
    return run.started_at


def current(run: RunRecord, state: str, now: datetime, lost_s: float = 0.0) -> Attempt:
    return Attempt(number=len(logged(run)) + 1, state=state, market=run.market,
                   price_per_hour=run.price_per_hour or 0.0, started_at=attempt_start(run) or now,
                   ended_at=now, lost_s=lost_s)


def launch_values(run: RunRecord, now: datetime) -> dict[str, Any]:
    """What launching an attempt writes besides its state: the attempt count and, for the first launch
    after a preemption, when this attempt started."""
    values: dict[str, Any] = {"attempts": run.attempt + 1}
    mark = run.extra.get(STARTED_KEY) or {}
    if run.preemptions and mark.get("after_preemptions") != run.preemptions:
        values["extra"] = {**run.extra, STARTED_KEY: {"at": iso(now), "after_preemptions": run.preemptions}}
    return values


def preempted_values(run: RunRecord, now: datetime, checkpoint_interval_s: float | None,
                     since_checkpoint_s: float | None) -> tuple[Attempt, dict[str, Any]]:
    """The preempted attempt, and the update that queues the same run again: attempt and preemption
    counts raised, the lost work added, its cost so far, its slot and handle released (its start,
    deadline and checkpoint folder are kept)."""
    elapsed = max((now - (attempt_start(run) or now)).total_seconds(), 0.0)
    lost = lost_seconds(elapsed, checkpoint_interval_s, since_checkpoint_s)
    attempt = current(run, PREEMPTED, now, lost)
    log = logged(run) + [attempt.as_json()]
    values = dict(state=QUEUED, attempt=run.attempt + 1, preemptions=run.preemptions + 1,
                  lost_s=run.lost_s + lost, cost_usd=sum(a["cost_usd"] for a in log), shape=None,
                  backend=None, handle={}, preempt_requested_at=None, extra={**run.extra, LOG_KEY: log})
    return attempt, values


def final_values(run: RunRecord, state: str, now: datetime) -> dict[str, Any]:
    """For a run that used spot or was preempted: its last attempt logged, its cost the sum of all."""
    log = logged(run) + [current(run, state, now).as_json()]
    return {"cost_usd": sum(a["cost_usd"] for a in log), "extra": {**run.extra, LOG_KEY: log}}
