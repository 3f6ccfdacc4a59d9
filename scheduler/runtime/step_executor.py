"""Executing a step's plan: recording a skip or failure, reusing a cache hit, or launching the step's
run (or its sweep) on a miss and publishing its outputs."""

from __future__ import annotations

import shutil
from typing import Any

from ..core.pipelines import Step
from ..core.runs import CACHED, FAILED, SKIPPED, SUCCEEDED, RunRecord, new_run_id
from ..core.specs import JobSpec
from ..core.step_plan import Fail, Hit, Miss, Skip, StepKey, StepPlan, Sweep
from .launch import run_dirs
from .pipeline_state import PipelineRunState
from .step_files import StepFiles, run_meta
from .sweep_runner import SweepRunner


class StepExecutor:
    """Carries out plans. With ``dispatched`` (inside the daemon) step runs are left queued for the
    daemon's dispatcher and awaited; otherwise this process places and supervises them."""

    def __init__(self, engine, files: StepFiles, dispatched: bool):
        self.engine = engine
        self.store = engine.store
        self.files = files
        self.dispatched = dispatched
        self.sweeps = SweepRunner(self)

    def execute(self, state: PipelineRunState, step: Step, plan: StepPlan, job: JobSpec | None = None,
                key: StepKey | None = None) -> RunRecord:
        match plan:
            case Skip(reason):
                return self.final_record(state, step, SKIPPED, reason)
            case Fail(message):
                return self.final_record(state, step, FAILED, message)
            case Hit(entry):
                return self._reuse(state, step, job, key.key, entry)
            case Sweep():
                return self.sweeps.run(state, step, key, plan.reason)
            case Miss():
                return self._launch(state, step, job, key, plan)
        raise TypeError(f"not a step plan: {plan!r}")

    def final_record(self, state: PipelineRunState, step: Step, final: str, reason: str, **fields) -> RunRecord:
        """A step run that ends as it is recorded (skipped, failed before launch, reused)."""
        now = self.engine.clock.now()
        fields["labels"] = {**state.spec.labels, **fields.get("labels", {})}
        record = RunRecord(
            id=new_run_id(), job=step.job_name, state=final, reason=reason, pipeline=state.spec.name,
            pipeline_run=state.prun_id, step=step.name, queued_at=now, started_at=now, ended_at=now,
            duration_s=0.0, **fields,
        )
        return self.store.create_run(record, message=reason)

    def await_run(self, run: RunRecord, backends: list[str] | None) -> RunRecord:
        if self.dispatched:
            return self.engine.wait_for(run.id)
        return self.engine.run_to_completion(run, backends=frozenset(backends) if backends else None)

    def _reuse(self, state: PipelineRunState, step: Step, job: JobSpec, key: str, entry: dict[str, Any]) -> RunRecord:
        origin = entry.get("run_id")
        extra = {"outputs": entry["outputs"], "cache": {"key": key, "result": "hit"}, "parameters": state.params}
        if step.sweep is not None:  # the whole sweep is reused: no trial runs, the earlier best trial stands
            extra["sweep"] = {**entry.get("sweep", {}), "best_trial": origin, "reused": True, "trials_started": 0,
                              "cost_usd": 0.0}
        return self.final_record(
            state, step, CACHED, f"reused outputs of {origin}", cache_hit=True, reused_from=origin,
            saved_usd=float(entry.get("cost_usd") or 0.0), shape=entry.get("shape"), backend=entry.get("backend"),
            artifacts_dir=entry.get("artifacts_dir"), spec=job.model_dump(mode="json"), labels=dict(job.labels),
            extra=extra,
        )

    def _launch(self, state: PipelineRunState, step: Step, job: JobSpec, key: StepKey, plan: Miss) -> RunRecord:
        backends = sorted(state.spec.backends) if state.spec.backends else None
        input_dir, problem = self.files.materialize(key.inputs)
        if problem:
            return self.final_record(state, step, FAILED, problem, spec=job.model_dump(mode="json"))
        try:
            run = self.engine.submit(
                job.name, job=job, message=f"step {step.name}: cache miss ({plan.reason})",
                pipeline=state.spec.name, pipeline_run=state.prun_id, step=step.name,
                extra={"cache": {"key": plan.key, "result": "miss", "reason": plan.reason, "parts": plan.parts},
                       "parameters": state.params, "backends": backends, "dirs": {"input": str(input_dir)}},
                labels={**state.spec.labels, **job.labels},
            )
        except BaseException:
            shutil.rmtree(input_dir, ignore_errors=True)
            raise
        return self.after_run(state, step, job, plan.key, plan.parts, self.await_run(run, backends))

    def after_run(self, state: PipelineRunState, step: Step, job: JobSpec, key: str | None,
                  parts: dict[str, Any] | None, final: RunRecord) -> RunRecord:
        """Check and publish a finished step's outputs (idempotent: a resumed run may do it again)."""
        self.files.drop_inputs(final)
        if final.state != SUCCEEDED or "outputs" in final.extra:
            return final
        out_dir = run_dirs(self.engine.settings, final, job)["output"]
        published, reason = self.files.publish(out_dir, step, state.spec.name, key, parts, run_meta(final))
        if reason:
            self.store.update_run(final.id, expect=[SUCCEEDED], state=FAILED, reason=reason, message=reason)
            return self.store.get_run(final.id)
        extra = {**final.extra, "outputs": published}
        self.store.update_run(final.id, extra=extra)
        final.extra = extra
        return final
