"""What a dispatch round reads beyond the slots in use (core/dispatch.py DispatchRound): each job's live
runs per shape, the live runs of full shapes with their starts and expected durations, and the
recent duration histories of every job (for the fleet's priors, core/fleet_priors.py)."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Sequence

from sqlalchemy import bindparam, func, select

from . import schema as db
from ..core.runs import LIVE_STATES, SUCCEEDED
from ..core.waits import LiveRun
from .run_queries import HISTORY_RUNS

if TYPE_CHECKING:
    from .store import Store

FLEET_RUNS = 2000  # the fleet's most recent successful runs its priors are learned from
EXPECTED_KEY = "expected_duration_s"  # in a run's placement: what the chosen offer was expected to take

# built once (a dispatch round reads them; building a statement costs more than its cached compile)
_LIVE_BY_JOB = (select(db.runs.c.job, db.runs.c.shape, func.count())
                .where(db.runs.c.state.in_(LIVE_STATES)).group_by(db.runs.c.job, db.runs.c.shape))
_LIVE_ON = select(db.runs.c.id, db.runs.c.job, db.runs.c.shape, db.runs.c.started_at, db.runs.c.placement).where(
    db.runs.c.state.in_(LIVE_STATES), db.runs.c.shape.in_(bindparam("shapes", expanding=True)))
_FLEET_RECENT = (select(db.runs.c.job, db.runs.c.shape, db.runs.c.duration_s)
                 .where(db.runs.c.state == SUCCEEDED, db.runs.c.duration_s.is_not(None), db.runs.c.job.is_not(None),
                        db.runs.c.shape.is_not(None))
                 .order_by(db.runs.c.ended_at.desc()).limit(bindparam("limit")))


def live_by_job(store: "Store") -> dict[str | None, dict[str, int]]:
    """Each job's runs holding a slot, per shape (summed over jobs: ``Store.in_use_by_shape``)."""
    out: dict[str | None, dict[str, int]] = {}
    with store.engine.connect() as conn:
        for job, shape, n in conn.execute(_LIVE_BY_JOB):
            if shape:
                out.setdefault(job, {})[shape] = n
    return out


def in_use(by_job: dict[str | None, dict[str, int]]) -> dict[str, int]:
    """Slots in use per shape, from ``live_by_job``."""
    total: dict[str, int] = {}
    for shapes in by_job.values():
        for shape, n in shapes.items():
            total[shape] = total.get(shape, 0) + n
    return total


def live_runs(store: "Store", shapes: Sequence[str]) -> list[LiveRun]:
    """The runs holding slots of these shapes, with their starts and their placements' expected durations."""
    if not shapes:
        return []
    with store.engine.connect() as conn:
        return [LiveRun(run_id, job, shape, started, _expected(placement))
                for run_id, job, shape, started, placement in conn.execute(_LIVE_ON, {"shapes": list(shapes)})]


def _expected(placement) -> float | None:
    value = placement.get(EXPECTED_KEY) if isinstance(placement, dict) else None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def fleet_histories(store: "Store", min_shapes: int = 2) -> dict[str, dict[str, tuple[float, int]]]:
    """Each job's duration history as ``Store.duration_history`` reads one (median, runs per shape of its
    last ``HISTORY_RUNS`` successful runs), from the fleet's last ``FLEET_RUNS`` successful runs in one
    query (a bounded read however long the catalog's history); only jobs with runs on ``min_shapes``
    shapes or more (the others cannot tell the fleet how jobs scale)."""
    runs: dict[str, dict[str, list[float]]] = {}
    counted: dict[str, int] = {}
    with store.engine.connect() as conn:
        for job, shape, seconds in conn.execute(_FLEET_RECENT, {"limit": FLEET_RUNS}):
            if counted.get(job, 0) < HISTORY_RUNS:
                counted[job] = counted.get(job, 0) + 1
                runs.setdefault(job, {}).setdefault(shape, []).append(seconds)
    return {job: {shape: (statistics.median(v), len(v)) for shape, v in shapes.items()}
            for job, shapes in runs.items() if len(shapes) >= min_shapes}
