"""Running a pipeline: steps in dependency order, independent ones in parallel, each reused from
the step cache when nothing that could change its outputs changed. What to do with a step is the
pure planner's call (core/step_plan.py); the step executor carries the plan out."""

from __future__ import annotations

import secrets
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable

from ..core.errors import SpecError
from ..core.pipelines import PipelineSpec, Step, parse_params
from ..core.runs import CANCELED, FAILED, SUCCEEDED, RunRecord
from ..core.specs import JobSpec
from ..core.step_plan import OK_STATES, ConditionDocument, RunSoFar, gate_step, needs_lookup, plan_step, step_key, sweep_key_part
from .pipeline_records import _step_cost, pipeline_run_record
from .pipeline_state import PipelineRunState
from .step_executor import StepExecutor
from .step_files import StepFiles
from .step_jobs import step_job

__all__ = ["MAX_PARALLEL_STEPS", "OK_STATES", "PipelineRunner", "new_pipeline_run_id", "step_job", "sweep_key_part"]

MAX_PARALLEL_STEPS = 16


def new_pipeline_run_id() -> str:
    return "p-" + secrets.token_hex(5)


class PipelineRunner:
    """Executes pipeline runs. With ``dispatched`` (inside the daemon) its step runs are left queued
    for the daemon's dispatcher and awaited; otherwise this process places and supervises them."""

    def __init__(self, engine, dispatched: bool = False):
        self.engine = engine
        self.dispatched = dispatched
        self.store = engine.store
        self.runs = engine.store.pipeline_runs
        self.files = StepFiles(engine.settings.home)
        self.outputs = self.files.outputs
        self.steps = StepExecutor(engine, self.files, dispatched)

    # -- starting --------------------------------------------------------------------------------
    def submit(
        self,
        name: str,
        params: dict[str, str] | None = None,
        force_steps: list[str] | None = None,
        force_all: bool = False,
        trigger: str = "cli",
        fire_key: str | None = None,
    ) -> dict[str, Any]:
        """Record a queued pipeline run, with its parameters parsed and its jobs snapshotted."""
        spec: PipelineSpec = self.store.require("Pipeline", name)
        values = parse_params(spec, params or {})
        for step in force_steps or []:
            if step not in {s.name for s in spec.steps}:
                raise SpecError(f"--force-step {step!r}: pipeline {name!r} has no such step", "force-step", step)
        jobs = {j: self.store.require("Job", j).model_dump(mode="json") for j in sorted(spec.job_names())}
        return self.runs.create(
            id=new_pipeline_run_id(), pipeline=name, state="QUEUED", queued_at=self.engine.clock.now(),
            parameters=values, spec={"pipeline": spec.model_dump(mode="json"), "jobs": jobs},
            force={"steps": sorted(force_steps or []), "all": force_all}, trigger=trigger, extra={},
            fire_key=fire_key,
        )

    # -- executing -------------------------------------------------------------------------------
    def execute(
        self, prun_id: str, progress: Callable[[str, RunRecord], None] | None = None, resume: bool = False
    ) -> dict[str, Any]:
        """Run every step to its end and record the pipeline run's outcome. With ``resume`` (after a
        restart), steps that already ended are kept and steps still running are awaited."""
        owner = {"owner": self.engine.owner}
        if resume:
            self.runs.update(prun_id, expect=["RUNNING"], extra=owner)
        elif not self.runs.update(prun_id, expect=["QUEUED"], state="RUNNING", started_at=self.engine.clock.now(), extra=owner):
            return self.record(prun_id)
        prun = self.runs.get(prun_id)
        spec = PipelineSpec.model_validate(prun["spec"]["pipeline"])
        jobs = {n: JobSpec.model_validate(d) for n, d in prun["spec"]["jobs"].items()}
        state = PipelineRunState(spec, prun, jobs)
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_STEPS, len(spec.steps))) as pool:
            running: dict[Future, str] = {}
            if resume:
                for name, future in self._resume_steps(state, pool):
                    running[future] = name
            while state.pending or running:
                for name in state.ready(running.values()):
                    step = spec.step(name)
                    so_far = state.so_far(canceled=self._canceled(prun_id))
                    condition = self.files.condition_document(step, so_far)
                    gate = gate_step(step, so_far, condition)  # decided without launching anything
                    if gate is not None:
                        state.finish(name, self.steps.execute(state, step, gate), progress)
                    else:
                        running[pool.submit(self._run_step, state, step, so_far, condition)] = name
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    state.finish(name, future.result(), progress)
        return self._close(prun_id, state)

    def _run_step(self, state: PipelineRunState, step: Step, so_far: RunSoFar,
                  condition: ConditionDocument | None) -> RunRecord:
        """A step that passed its gate: its key, the cache consulted under the key's lock, the plan run."""
        job = step_job(state.jobs[step.job_name], step, state.params)
        key = step_key(step, job, so_far)
        if not step.cache:
            return self.steps.execute(state, step, plan_step(step, so_far, key, condition=condition), job, key)
        with self.outputs.lock(key.key):
            lookup = self.files.lookup(state.spec.name, step.name, key.key) if needs_lookup(step, so_far) else None
            return self.steps.execute(state, step, plan_step(step, so_far, key, lookup, condition), job, key)

    def _canceled(self, prun_id: str) -> bool:
        return self.runs.get(prun_id).get("cancel_requested_at") is not None

    def _resume_steps(self, state: PipelineRunState, pool) -> list[tuple[str, Future]]:
        """Fold in the step runs recorded before a restart; await the ones still running."""
        resumed = []
        sweeps: dict[str, list[RunRecord]] = {}
        for run in self.store.list_runs(pipeline_run=state.prun_id, newest_first=False):
            if run.step not in state.pending and run.step not in sweeps:
                continue
            step = state.spec.step(run.step)
            state.pending.discard(run.step)
            if step.sweep is not None:  # a sweep step has many runs: its trials (and maybe its result)
                sweeps.setdefault(run.step, []).append(run)
            elif run.finished and (run.state != SUCCEEDED or "outputs" in run.extra or not step.outputs):
                state.finish(run.step, run, None)
            else:
                resumed.append((run.step, pool.submit(self._await_resumed, state, step, run)))
        for name, runs in sweeps.items():
            result = next((r for r in runs if "sweep" in r.extra), None)
            if result is not None:
                state.finish(name, result, None)
            else:
                resumed.append((name, pool.submit(self._resume_sweep, state, state.spec.step(name), runs)))
        return resumed

    def _await_resumed(self, state: PipelineRunState, step: Step, run: RunRecord) -> RunRecord:
        job = JobSpec.model_validate(run.spec) if run.spec else state.jobs[step.job_name]
        cache_info = run.extra.get("cache", {})
        final = self.engine.wait_for(run.id)
        return self.steps.after_run(state, step, job, cache_info.get("key"), cache_info.get("parts"), final)

    def _resume_sweep(self, state: PipelineRunState, step: Step, runs: list[RunRecord]) -> RunRecord:
        key = step_key(step, step_job(state.jobs[step.job_name], step, state.params), state.so_far())
        trials = [r for r in runs if "trial" in r.extra]
        reason = trials[0].extra.get("cache", {}).get("reason", "resumed") if trials else "resumed"
        return self.steps.sweeps.run(state, step, key, reason, trials)

    def _close(self, prun_id: str, state: PipelineRunState) -> dict[str, Any]:
        failed = [n for n in state.spec.order() if state.records[n].state in (FAILED, "TIMED_OUT", CANCELED)]
        canceled = self.runs.get(prun_id).get("cancel_requested_at") is not None
        final = CANCELED if canceled else FAILED if failed else SUCCEEDED
        reason = None
        if failed:
            first = state.records[failed[0]]
            reason = f"step {failed[0]} {first.state}: {first.reason}"
        records = state.records.values()
        changed = self.runs.update(
            prun_id, expect=["RUNNING"], state=final, reason=reason, ended_at=self.engine.clock.now(),
            cost_usd=sum(_step_cost(r) for r in records), saved_usd=sum(r.saved_usd for r in records),
        )
        record = self.record(prun_id)
        if changed:
            self.engine.hooks.fire(state.spec.hooks, final, record, f"pipeline run {prun_id}")
        return record

    def record(self, prun_id: str) -> dict[str, Any]:
        """The pipeline run as the contract prints it (see ``pipeline_run_record``)."""
        return pipeline_run_record(self.store, prun_id)

    def wait_for(self, prun_id: str, poll_s: float = 0.25) -> dict[str, Any]:
        """Wait for a pipeline run that the daemon executes."""
        while self.runs.get(prun_id)["state"] in ("QUEUED", "RUNNING"):
            self.engine.clock.sleep(poll_s)
        return self.record(prun_id)

    def cancel(self, prun_id: str) -> dict[str, Any]:
        now = self.engine.clock.now()
        if self.runs.update(prun_id, expect=["QUEUED"], state=CANCELED, ended_at=now, reason="canceled while queued"):
            return self.record(prun_id)
        self.runs.update(prun_id, cancel_requested_at=now)
        for run in self.store.list_runs(pipeline_run=prun_id, state=("QUEUED", "STARTING", "RUNNING")):
            self.engine.cancel(run.id, wait=True)
        return self.record(prun_id)
