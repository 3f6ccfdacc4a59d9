"""The engine: submit, place, launch, supervise and finish runs. Shared by the CLI and the daemon.

A facade over the seams: dispatch (place and claim), supervise (watch, retry, wait), finish (record the
end, results.json, hooks, listeners) and the budget ledger. Every state change is written to the store
before it is acted on, and state moves are compare-and-set (core/lifecycle.py), so two supervisors can
never both launch or both finish one run.
"""

from __future__ import annotations

import sys
import threading
from typing import Callable

from ..core import placement
from ..core.clock import Clock, SystemClock
from ..core.dispatch import DispatchRound
from ..core.errors import SpecError, UserError
from ..core.runs import QUEUED, RunRecord, new_run_id
from ..core.specs import JobSpec, RunOverrides
from ..executors import Executor, ExitStatus, make_executor
from ..store.settings import Settings
from ..store.store import Store
from . import dispatch, finish, supervise
from .budget_ledger import BudgetLedger
from .changes import Changes
from .dispatch import run_deadline
from .launch import build_launch, effective_spec
from .round_inputs import FleetPriorsCache
from .supervise import Progress

__all__ = ["DispatchRound", "Engine", "Progress", "run_deadline"]
INDEX_RECHECK_S = 0.5


class Engine:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock | None = None,
        python: str = sys.executable,
        executors: dict[str, Executor] | None = None,
    ):
        self.settings = settings
        self.store = store
        self.clock = clock or SystemClock()
        self.python = python
        self._executors = dict(executors or {})
        self._lock = threading.Lock()
        self._index: tuple[tuple, placement.ShapeIndex] | None = None
        self._index_checked = 0.0
        self.owner = finish.this_process()
        self.listeners: list[Callable[[RunRecord], None]] = []  # told once about each finished run
        self.ends = Changes()  # bumped after the listeners: wait_for in this process wakes at once
        self.ledger = BudgetLedger(store, self.clock)
        self.fleet = FleetPriorsCache(store, self.clock)  # the fleet's priors for dispatch rounds
        from .hooks import HookRunner

        self.hooks = HookRunner(self)

    # -- plumbing ------------------------------------------------------------------------------
    def executor(self, backend: str) -> Executor:
        with self._lock:
            if backend not in self._executors:
                self._executors[backend] = make_executor(backend)
            return self._executors[backend]

    def python_for(self, shape) -> str:
        """Local runs use costwise's own interpreter; containers use the image's python3."""
        return self.python if shape.backend == "local" else "python3"

    def shape_index(self) -> placement.ShapeIndex:
        """The catalog's shapes, re-read when the catalog changed (checked at most every 0.5 s)."""
        cached, mono = self._index, self.clock.monotonic()
        if cached is not None and mono - self._index_checked < INDEX_RECHECK_S:
            return cached[1]
        version = self.store.catalog_version()
        if cached is None or cached[0] != version:
            cached = (version, placement.ShapeIndex(self.store.list("Shape")))
            self._index = cached
        self._index_checked = mono
        return cached[1]

    # -- submit --------------------------------------------------------------------------------
    def submit(
        self,
        job_name: str,
        overrides: RunOverrides = RunOverrides(),
        *,
        job: JobSpec | None = None,
        message: str | None = None,
        **context,
    ) -> RunRecord:
        """Queue a run of a job (bad overrides are refused here, before anything is stored)."""
        job = effective_spec(job or self.store.require("Job", job_name), overrides)
        index = self.shape_index()
        if job.shape is not None and job.shape not in index.by_name:
            raise SpecError(f"--shape {job.shape!r} is not a declared shape", "shape", job.shape)
        from ..store.catalog import check_job_fits

        check_job_fits(job, index.shapes)
        context.setdefault("labels", dict(job.labels))
        run = RunRecord(
            id=new_run_id(),
            job=job.name,
            state=QUEUED,
            queued_at=self.clock.now(),
            spec=job.model_dump(mode="json"),
            overrides=overrides.model_dump(mode="json", exclude_defaults=True),
            **context,
        )
        return self.store.create_run(run, message or "queued")

    # -- dispatch, supervision, finishing: see dispatch.py, supervise.py, finish.py --------------
    def new_round(self) -> DispatchRound:
        return dispatch.new_round(self)

    def try_start(self, run: RunRecord, backends=None, round: DispatchRound | None = None,
                  launch: bool = True) -> RunRecord | None:
        return dispatch.try_start(self, run, backends, round, launch)

    def launch(self, run_id: str, run: RunRecord | None = None, job: JobSpec | None = None) -> RunRecord:
        return dispatch.launch_run(self, run_id, run, job)

    def supervise(self, run: RunRecord, progress: Progress | None = None, job: JobSpec | None = None) -> RunRecord:
        return supervise.supervise(self, run, progress, job)

    def run_to_completion(self, run: RunRecord, progress: Progress | None = None, poll_s: float = 0.25,
                          backends=None) -> RunRecord:
        return supervise.run_to_completion(self, run, progress, poll_s, backends)

    def wait_for(self, run_id: str, timeout: float | None = None, poll_s: float = 0.2,
                 progress: Progress | None = None) -> RunRecord:
        return supervise.wait_for(self, run_id, timeout, poll_s, progress)

    def cancel(self, run_id: str, wait: bool = True) -> RunRecord:
        return finish.cancel(self, run_id, wait)

    def _finish(self, run: RunRecord, executor, status: ExitStatus, state: str | None = None,
                reason: str | None = None) -> RunRecord:
        return finish.finish(self, run, executor, status, state, reason)

    def _record_end(self, run: RunRecord, state: str, reason: str | None, exit_code=None, usage=None,
                    ended_at=None) -> RunRecord:
        return finish.record_end(self, run, state, reason, exit_code, usage, ended_at)

    def spent(self, budget, since) -> float:
        return self.ledger.spent(budget, since)

    # -- dry run -------------------------------------------------------------------------------
    def dry_run(self, job_name: str, overrides: RunOverrides = RunOverrides()) -> dict:
        job = effective_spec(self.store.require("Job", job_name), overrides)
        index = self.shape_index()
        snapshot = index.snapshot(self.store.in_use_by_shape())
        decision = placement.place(placement.PlacementRequest.for_job(job), snapshot, self.store.duration_history(job.name), self.clock.now())
        shape_name = decision.shape or (decision.cheapest.shape if decision.cheapest else None)
        if shape_name is None:
            raise UserError(f"job {job.name!r}: {decision.reason}")
        shape = index.by_name[shape_name]
        run = RunRecord(id="dry-run", job=job.name, spec=job.model_dump(mode="json"))
        spec = build_launch(self.settings, run, job, shape, self.python_for(shape), create=False)
        return {"shape": shape.name, "backend": shape.backend, "placement": decision.reason,
                "launch": self.executor(shape.backend).describe(spec)}
