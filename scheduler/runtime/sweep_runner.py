"""A sweep step: its trials run (at most ``parallel`` at once, until the trials or the budget run
out), each checked for its objective, and the best trial's outputs published as the step's."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from ..core.pipelines import Step
from ..core.runs import FAILED, SUCCEEDED, RunRecord
from ..core.specs import JobSpec
from ..core.step_plan import StepKey
from ..core.sweeps import SweepSpec, best_trial, budget_allows, generate_trials, read_objective
from ..store import safefs
from ..store.outputs import CorruptObject, declared_output_problem
from .launch import run_dirs
from .pipeline_state import PipelineRunState
from .step_files import run_meta
from .step_jobs import step_job


class SweepRunner:
    """Runs one sweep step for a ``StepExecutor`` (whose records, waits and files it uses)."""

    def __init__(self, executor):
        self.executor = executor
        self.engine = executor.engine
        self.store = executor.store
        self.files = executor.files

    def run(self, state: PipelineRunState, step: Step, key: StepKey, miss_reason: str,
            existing: list[RunRecord] = ()) -> RunRecord:
        """``existing``: trials recorded before a restart, awaited (if live) and kept instead of
        being started again."""
        planned = generate_trials(step.sweep)
        known = {int(r.extra.get("trial_index", i)): r for i, r in enumerate(existing)}
        finished, stopped = self._run_trials(state, step, key, miss_reason, planned, known)
        return self._result(state, step, key, planned, [finished[i] for i in sorted(finished)], stopped)

    def _run_trials(self, state, step, key, miss_reason, planned, known) -> tuple[dict[int, RunRecord], str | None]:
        sweep: SweepSpec = step.sweep
        backends = sorted(state.spec.backends) if state.spec.backends else None
        queue = [i for i in range(len(planned)) if i not in known]
        finished: dict[int, RunRecord] = {}
        stopped = None
        with ThreadPoolExecutor(max_workers=sweep.parallel) as pool:
            running: dict[Future, int] = {pool.submit(self._finish_trial, step, r): i for i, r in sorted(known.items())}
            started = len(known)
            while queue or running:
                while queue and stopped is None and len(running) < sweep.parallel:
                    stopped = self._why_stop(state, sweep, started, finished, running)
                    if stopped is not None:
                        break
                    index = queue.pop(0)
                    try:
                        trial = self._submit_trial(state, step, planned, index, key, miss_reason, backends)
                    except CorruptObject as exc:
                        stopped = str(exc)
                        break
                    running[pool.submit(self._await_trial, step, trial, backends)] = index
                    started += 1
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    finished[running.pop(future)] = future.result()
        return finished, stopped

    def _why_stop(self, state, sweep: SweepSpec, started: int, finished, running) -> str | None:
        """Why no further trial may start now (a cancel, or the budget), or None."""
        if self.store.pipeline_runs.get(state.prun_id).get("cancel_requested_at") is not None:
            return "the pipeline run was canceled"
        costs = [r.cost_usd for r in finished.values()]
        ok, why = budget_allows(sweep.budget_usd, started, sweep.parallel, costs, running=len(running))
        return None if ok else why

    def _submit_trial(self, state, step, planned, index, key: StepKey, miss_reason, backends) -> RunRecord:
        """Queue one trial with its own verified input copies (CorruptObject when they cannot be made)."""
        params = planned[index]
        job = step_job(state.jobs[step.job_name], step, state.params, trial=params)
        cache_info = {"key": key.key, "reason": miss_reason, "parts": key.parts}
        if index == 0:  # one cache lookup per step: the miss is counted once, on the first trial
            cache_info["result"] = "miss"
        input_dir, problem = self.files.materialize(key.inputs)
        if problem:
            raise CorruptObject(problem)
        try:
            return self.engine.submit(
                job.name, job=job, pipeline=state.spec.name, pipeline_run=state.prun_id, step=step.name,
                message=f"step {step.name}: trial {index + 1} of {len(planned)} {json.dumps(params, sort_keys=True)} "
                        f"(cache miss: {miss_reason})",
                extra={"trial": params, "trial_index": index, "objective": None,
                       "env": {"COSTWISE_TRIAL": json.dumps(params, sort_keys=True)},
                       "cache": cache_info, "parameters": state.params, "backends": backends,
                       "dirs": {"input": str(input_dir)}},
                labels={**state.spec.labels, **job.labels},
            )
        except BaseException:
            shutil.rmtree(input_dir, ignore_errors=True)
            raise

    def _await_trial(self, step: Step, run: RunRecord, backends) -> RunRecord:
        return self._check_trial(step, self.executor.await_run(run, backends))

    def _finish_trial(self, step: Step, run: RunRecord) -> RunRecord:
        """A trial recorded before a restart: await it if it is still live, then check it."""
        return self._check_trial(step, run if run.finished else self.engine.wait_for(run.id))

    def _check_trial(self, step: Step, final: RunRecord) -> RunRecord:
        """A finished trial's declared outputs must be there and its objective must read as a number;
        else the trial is FAILED (like a step that does not write its outputs). Idempotent."""
        self.files.drop_inputs(final)
        if final.state != SUCCEEDED or final.extra.get("objective") is not None:
            return final
        out_dir = run_dirs(self.engine.settings, final, JobSpec.model_validate(final.spec))["output"]
        objective = step.sweep.objective
        reason = declared_output_problem(out_dir, step.outputs)
        if reason is None:
            try:
                value = read_objective(json.loads(safefs.read_beneath(out_dir, objective.output)), objective.path)
            except (OSError, ValueError, safefs.UnsafeFile) as exc:
                reason = f"objective {objective.value} could not be read: {exc}"
            else:
                extra = {**final.extra, "objective": value}
                self.store.update_run(final.id, extra=extra, message=f"objective {objective.value} = {value!r}")
                final.extra = extra
                return final
        self.store.update_run(final.id, expect=[SUCCEEDED], state=FAILED, reason=reason, message=reason)
        return self.store.get_run(final.id)

    def _result(self, state, step, key: StepKey, planned, trials: list[RunRecord], stopped) -> RunRecord:
        """The step's record: the best trial, with its outputs published as the step's; else FAILED."""
        sweep: SweepSpec = step.sweep
        best = best_trial([{"run": t, "state": t.state, "objective": t.extra.get("objective")} for t in trials],
                          sweep.objective.goal)
        summary = _summary(sweep, planned, trials, stopped, best)
        if best is None:
            reason = f"no trial succeeded ({summary['trials_started']} of {len(planned)} started"
            reason += f"; {stopped})" if stopped else ")"
            return self.executor.final_record(state, step, FAILED, reason,
                                              extra={"sweep": summary, "parameters": state.params})
        final: RunRecord = best["run"]
        out_dir = run_dirs(self.engine.settings, final, JobSpec.model_validate(final.spec))["output"]
        meta = {**run_meta(final, cost_usd=summary["cost_usd"]),
                "sweep": {k: summary[k] for k in ("objective", "goal", "trials_started", "best_objective", "cost_usd")}}
        published, problem = self.files.publish(out_dir, step, state.spec.name, key.key, key.parts, meta)
        if problem:
            return self.executor.final_record(state, step, FAILED, f"best trial {final.id}: {problem}",
                                              extra={"sweep": summary, "parameters": state.params})
        extra = {**final.extra, "outputs": published, "sweep": summary}
        message = f"best trial of step {step.name}: {sweep.objective.value} = {best['objective']!r}"
        if stopped:
            message += f"; {len(planned) - len(trials)} trial(s) not started ({stopped})"
        self.store.update_run(final.id, extra=extra, message=message)
        final.extra = extra
        return final


def _summary(sweep: SweepSpec, planned, trials: list[RunRecord], stopped, best) -> dict[str, Any]:
    return {
        "objective": sweep.objective.value, "goal": sweep.objective.goal,
        "trials_planned": len(planned), "trials_started": len(trials),
        "succeeded": sum(t.state == SUCCEEDED for t in trials), "stopped": stopped,
        "cost_usd": sum(t.cost_usd for t in trials), "budget_usd": sweep.budget_usd,
        "best_trial": best["run"].id if best else None, "best_objective": best["objective"] if best else None,
    }
