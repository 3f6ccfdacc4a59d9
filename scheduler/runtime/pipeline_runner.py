"""Running a pipeline: steps in dependency order, independent ones in parallel, each reused from
the step cache when nothing that could change its outputs changed."""

from __future__ import annotations

import json
import secrets
import shutil
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

from ..core import cache
from ..store import safefs
from ..store.catalog import step_requirements
from ..core.clock import iso
from ..core.errors import CostwiseError, SpecError
from .launch import run_dirs
from ..store.outputs import CorruptObject, OutputStore, declared_output_problem
from ..core.pipelines import PipelineSpec, Step, evaluate_condition, parse_params, referenced_params, substitute
from ..core.runs import CACHED, CANCELED, FAILED, SKIPPED, SUCCEEDED, RunRecord, new_run_id
from ..core.specs import JobSpec
from ..core.sweeps import SweepSpec, best_trial, budget_allows, generate_trials, read_objective, substitute_trial

OK_STATES = (SUCCEEDED, CACHED)
MAX_PARALLEL_STEPS = 16


def new_pipeline_run_id() -> str:
    return "p-" + secrets.token_hex(5)


def step_job(job: JobSpec, step: Step, params: dict[str, Any], trial: dict[str, Any] | None = None) -> JobSpec:
    """The job as this step runs it: step args / env (parameters substituted, and for a sweep
    trial its ``${trial.x}`` values), requirements, shape."""
    args = [substitute(a, params) for a in (step.args if step.args is not None else job.args)]
    env = {k: substitute(v, params) for k, v in step.env.items()}
    if trial is not None:
        args = [substitute_trial(a, trial) for a in args]
        env = {k: substitute_trial(v, trial) for k, v in env.items()}
    update: dict[str, Any] = {"args": args, "env": {**job.env, **env}, "requirements": step_requirements(job, step)}
    if step.shape is not None:
        update["shape"] = step.shape
    if step.max_runtime is not None:
        update["max_runtime"] = step.max_runtime
    return job.model_copy(update=update)


def sweep_key_part(sweep: SweepSpec) -> dict[str, Any]:
    """The sweep definition as it enters the step's cache key (trials as the count actually run)."""
    return {**sweep.model_dump(mode="json", exclude_none=True), "trials": sweep.trial_count}


class PipelineRunner:
    """Executes pipeline runs. With ``dispatched`` (inside the daemon) its step runs are left queued
    for the daemon's dispatcher and awaited; otherwise this process places and supervises them."""

    def __init__(self, engine, dispatched: bool = False):
        self.engine = engine
        self.dispatched = dispatched
        self.store = engine.store
        self.runs = engine.store.pipeline_runs
        self.outputs = OutputStore(engine.settings.home / "store")
        self.inputs_root = engine.settings.home / "step-inputs"

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
        state = _State(spec, prun, jobs)
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_STEPS, len(spec.steps))) as pool:
            running: dict[Future, str] = {}
            if resume:
                for name, future in self._resume_steps(state, pool):
                    running[future] = name
            while state.pending or running:
                for name in state.ready(running.values()):
                    record = self._settle_without_running(state, spec.step(name))
                    if record is not None:
                        state.finish(name, record, progress)
                    else:
                        running[pool.submit(self._run_step, state, spec.step(name))] = name
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    state.finish(name, future.result(), progress)
        return self._close(prun_id, state)

    def _settle_without_running(self, state: "_State", step: Step) -> RunRecord | None:
        """Steps decided without launching anything: skipped, failed by a `fail` step, or broken."""
        if self.runs.get(state.prun_id).get("cancel_requested_at") is not None:
            return self._final_record(state, step, SKIPPED, "the pipeline run was canceled")
        bad = [u for u in sorted(step.upstream()) if state.records[u].state not in OK_STATES]
        if bad:
            return self._final_record(state, step, SKIPPED, f"upstream step {bad[0]} is {state.records[bad[0]].state}")
        if step.when is not None:
            try:
                source = state.outputs[step.when.step][step.when.output]
                ok, why = evaluate_condition(step.when, self.outputs.read_json(source), state.params)
            except (CostwiseError, KeyError, ValueError, OSError) as exc:
                return self._final_record(state, step, FAILED, f"condition could not be evaluated: {exc}")
            if not ok:
                return self._final_record(state, step, SKIPPED, f"condition false: {why}")
        if step.fail is not None:
            return self._final_record(state, step, FAILED, step.fail)
        return None

    def _final_record(self, state: "_State", step: Step, final: str, reason: str, **fields) -> RunRecord:
        now = self.engine.clock.now()
        fields["labels"] = {**state.spec.labels, **fields.get("labels", {})}
        record = RunRecord(
            id=new_run_id(), job=step.job_name, state=final, reason=reason, pipeline=state.spec.name,
            pipeline_run=state.prun_id, step=step.name, queued_at=now, started_at=now, ended_at=now,
            duration_s=0.0, **fields,
        )
        return self.store.create_run(record, message=reason)

    def _run_step(self, state: "_State", step: Step) -> RunRecord:
        job, inputs, key, parts = self._step_key(state, step)
        launch = self._sweep if step.sweep is not None else self._launch
        forced = state.force_all or step.name in state.force_steps
        if not step.cache:
            return launch(state, step, job, inputs, key, parts, "cache: false on this step")
        with self.outputs.lock(key):
            if forced:
                return launch(state, step, job, inputs, key, parts, "forced rerun")
            entry, problem = self.outputs.lookup(key)
            if entry is not None:
                return self._reuse(state, step, job, key, entry)
            why = problem or cache.explain_miss(self.outputs.last_parts(state.spec.name, step.name), parts)
            return launch(state, step, job, inputs, key, parts, why)

    def _step_key(self, state: "_State", step: Step):
        """The step's job (parameters substituted), its inputs, and its cache key and key parts."""
        job = step_job(state.jobs[step.job_name], step, state.params)
        inputs = {name: state.outputs[ref.split("/", 1)[0]][ref.split("/", 1)[1]] for name, ref in step.inputs.items()}
        parts = cache.key_parts(
            job, {p: state.params[p] for p in referenced_params(step)},
            {name: ref["sha256"] for name, ref in inputs.items()}, step.outputs, step.cache_version,
            sweep=sweep_key_part(step.sweep) if step.sweep is not None else None,
        )
        return job, inputs, cache.cache_key(parts), parts

    def _reuse(self, state, step, job, key, entry) -> RunRecord:
        origin = entry.get("run_id")
        extra = {"outputs": entry["outputs"], "cache": {"key": key, "result": "hit"}, "parameters": state.params}
        if step.sweep is not None:  # the whole sweep is reused: no trial runs, the earlier best trial stands
            extra["sweep"] = {**entry.get("sweep", {}), "best_trial": origin, "reused": True, "trials_started": 0,
                              "cost_usd": 0.0}
        return self._final_record(
            state, step, CACHED, f"reused outputs of {origin}", cache_hit=True, reused_from=origin,
            saved_usd=float(entry.get("cost_usd") or 0.0), shape=entry.get("shape"), backend=entry.get("backend"),
            artifacts_dir=entry.get("artifacts_dir"), spec=job.model_dump(mode="json"), labels=dict(job.labels),
            extra=extra,
        )

    def _launch(self, state, step, job, inputs, key, parts, miss_reason) -> RunRecord:
        backends = sorted(state.spec.backends) if state.spec.backends else None
        input_dir, problem = self._materialize(inputs)
        if problem:
            return self._final_record(state, step, FAILED, problem, spec=job.model_dump(mode="json"))
        try:
            run = self.engine.submit(
                job.name, job=job, message=f"step {step.name}: cache miss ({miss_reason})",
                pipeline=state.spec.name, pipeline_run=state.prun_id, step=step.name,
                extra={"cache": {"key": key, "result": "miss", "reason": miss_reason, "parts": parts},
                       "parameters": state.params, "backends": backends, "dirs": {"input": str(input_dir)}},
                labels={**state.spec.labels, **job.labels},
            )
        except BaseException:
            shutil.rmtree(input_dir, ignore_errors=True)
            raise
        if self.dispatched:
            final = self.engine.wait_for(run.id)
        else:
            final = self.engine.run_to_completion(run, backends=frozenset(backends) if backends else None)
        return self._after_run(state, step, job, key, parts, final)

    def _after_run(self, state, step, job, key, parts, final: RunRecord) -> RunRecord:
        """Check and publish a finished step's outputs (idempotent: a resumed run may do it again)."""
        self._drop_inputs(final)
        if final.state != SUCCEEDED or "outputs" in final.extra:
            return final
        out_dir = run_dirs(self.engine.settings, final, job)["output"]
        published, reason = self._take_outputs(out_dir, step.outputs)
        if reason:
            self.store.update_run(final.id, expect=[SUCCEEDED], state=FAILED, reason=reason, message=reason)
            return self.store.get_run(final.id)
        if step.cache and key:
            self.outputs.publish(key, published, {
                "run_id": final.id, "cost_usd": final.cost_usd, "shape": final.shape, "backend": final.backend,
                "artifacts_dir": final.artifacts_dir, "pipeline": state.spec.name, "step": step.name,
            })
            if parts:
                self.outputs.save_parts(state.spec.name, step.name, parts)
        extra = {**final.extra, "outputs": published}
        self.store.update_run(final.id, extra=extra)
        final.extra = extra
        return final

    # -- inputs and outputs: private verified copies in, regular files only out ----------------
    def _materialize(self, inputs: dict[str, dict[str, Any]]) -> tuple[Path | None, str | None]:
        """A fresh folder of verified copies of a step's inputs, filled before its run is queued
        (so a dispatcher cannot start it half-filled); or why not."""
        folder = self.inputs_root / secrets.token_hex(8)
        try:
            self.outputs.materialize(inputs, folder)
        except CorruptObject as exc:
            shutil.rmtree(folder, ignore_errors=True)
            return None, str(exc)
        return folder, None

    def _drop_inputs(self, run: RunRecord) -> None:
        """A finished step's input copies go (the store keeps the bytes, results.json their hashes)."""
        folder = run.extra.get("dirs", {}).get("input")
        if folder and Path(folder).parent == self.inputs_root:
            shutil.rmtree(folder, ignore_errors=True)  # rmtree does not follow links the job planted

    def _take_outputs(self, out_dir: Path, names: list[str]) -> tuple[dict[str, Any], str | None]:
        """The declared outputs copied into the store, or why they cannot be (nothing is taken
        that is not a regular file right inside COSTWISE_OUTPUT_DIR)."""
        problem = declared_output_problem(out_dir, names)
        if problem:
            return {}, problem
        try:
            return {name: self.outputs.put_file(out_dir / name) for name in names}, None
        except (safefs.UnsafeFile, FileNotFoundError) as exc:  # swapped after the check
            return {}, f"declared output {exc}, not a regular file: not followed, not stored"

    # -- sweep steps -----------------------------------------------------------------------------
    def _sweep(self, state, step, job, inputs, key, parts, miss_reason, existing: list[RunRecord] = ()) -> RunRecord:
        """Run a sweep step's trials (at most ``parallel`` at once, until the trials or the budget run
        out), then publish the best trial's outputs as the step's. ``existing``: trials recorded
        before a restart, awaited (if live) and kept instead of being started again."""
        sweep: SweepSpec = step.sweep
        planned = generate_trials(sweep)
        backends = sorted(state.spec.backends) if state.spec.backends else None
        finished: dict[int, RunRecord] = {}
        known = {int(r.extra.get("trial_index", i)): r for i, r in enumerate(existing)}
        queue = [i for i in range(len(planned)) if i not in known]
        stopped = None
        with ThreadPoolExecutor(max_workers=sweep.parallel) as pool:
            running: dict[Future, int] = {pool.submit(self._finish_trial, step, r): i for i, r in sorted(known.items())}
            started = len(known)
            while queue or running:
                while queue and stopped is None and len(running) < sweep.parallel:
                    if self.runs.get(state.prun_id).get("cancel_requested_at") is not None:
                        stopped = "the pipeline run was canceled"
                        break
                    costs = [r.cost_usd for r in finished.values()]
                    ok, why = budget_allows(sweep.budget_usd, started, sweep.parallel, costs, running=len(running))
                    if not ok:
                        stopped = why
                        break
                    index = queue.pop(0)
                    try:
                        trial = self._submit_trial(state, step, planned, index, inputs, key, parts, miss_reason, backends)
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
        return self._sweep_result(state, step, key, parts, planned, [finished[i] for i in sorted(finished)], stopped)

    def _submit_trial(self, state, step, planned, index, inputs, key, parts, miss_reason, backends) -> RunRecord:
        """Queue one trial with its own verified input copies (CorruptObject when they cannot be made)."""
        params = planned[index]
        job = step_job(state.jobs[step.job_name], step, state.params, trial=params)
        cache_info = {"key": key, "reason": miss_reason, "parts": parts}
        if index == 0:  # one cache lookup per step: the miss is counted once, on the first trial
            cache_info["result"] = "miss"
        input_dir, problem = self._materialize(inputs)
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
        if self.dispatched:
            final = self.engine.wait_for(run.id)
        else:
            final = self.engine.run_to_completion(run, backends=frozenset(backends) if backends else None)
        return self._check_trial(step, final)

    def _finish_trial(self, step: Step, run: RunRecord) -> RunRecord:
        """A trial recorded before a restart: await it if it is still live, then check it."""
        return self._check_trial(step, run if run.finished else self.engine.wait_for(run.id))

    def _check_trial(self, step: Step, final: RunRecord) -> RunRecord:
        """A finished trial's declared outputs must be there and its objective must read as a number;
        else the trial is FAILED (like a step that does not write its outputs). Idempotent."""
        self._drop_inputs(final)
        if final.state != SUCCEEDED or final.extra.get("objective") is not None:
            return final
        out_dir = run_dirs(self.engine.settings, final, JobSpec.model_validate(final.spec))["output"]
        problem = declared_output_problem(out_dir, step.outputs)
        objective = step.sweep.objective
        if problem:
            reason = problem
        else:
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

    def _sweep_result(self, state, step, key, parts, planned, trials: list[RunRecord], stopped) -> RunRecord:
        """The step's record: the best trial, with its outputs published as the step's; else FAILED."""
        sweep: SweepSpec = step.sweep
        best = best_trial([{"run": t, "state": t.state, "objective": t.extra.get("objective")} for t in trials],
                          sweep.objective.goal)
        summary = {
            "objective": sweep.objective.value, "goal": sweep.objective.goal,
            "trials_planned": len(planned), "trials_started": len(trials),
            "succeeded": sum(t.state == SUCCEEDED for t in trials), "stopped": stopped,
            "cost_usd": sum(t.cost_usd for t in trials), "budget_usd": sweep.budget_usd,
            "best_trial": best["run"].id if best else None, "best_objective": best["objective"] if best else None,
        }
        if best is None:
            reason = f"no trial succeeded ({summary['trials_started']} of {len(planned)} started"
            reason += f"; {stopped})" if stopped else ")"
            return self._final_record(state, step, FAILED, reason, extra={"sweep": summary, "parameters": state.params})
        final: RunRecord = best["run"]
        out_dir = run_dirs(self.engine.settings, final, JobSpec.model_validate(final.spec))["output"]
        published, problem = self._take_outputs(out_dir, step.outputs)
        if problem:
            return self._final_record(state, step, FAILED, f"best trial {final.id}: {problem}",
                                      extra={"sweep": summary, "parameters": state.params})
        if step.cache and key:
            self.outputs.publish(key, published, {
                "run_id": final.id, "cost_usd": summary["cost_usd"], "shape": final.shape, "backend": final.backend,
                "artifacts_dir": final.artifacts_dir, "pipeline": state.spec.name, "step": step.name,
                "sweep": {k: summary[k] for k in ("objective", "goal", "trials_started", "best_objective", "cost_usd")},
            })
            if parts:
                self.outputs.save_parts(state.spec.name, step.name, parts)
        extra = {**final.extra, "outputs": published, "sweep": summary}
        message = f"best trial of step {step.name}: {sweep.objective.value} = {best['objective']!r}"
        if stopped:
            message += f"; {len(planned) - len(trials)} trial(s) not started ({stopped})"
        self.store.update_run(final.id, extra=extra, message=message)
        final.extra = extra
        return final

    def _resume_steps(self, state: "_State", pool) -> list[tuple[str, Future]]:
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
                continue
            if run.finished and (run.state != SUCCEEDED or "outputs" in run.extra or not step.outputs):
                state.finish(run.step, run, None)
                continue
            job = JobSpec.model_validate(run.spec) if run.spec else state.jobs[step.job_name]
            cache_info = run.extra.get("cache", {})

            def wait_and_publish(run=run, step=step, job=job, key=cache_info.get("key"), parts=cache_info.get("parts")):
                return self._after_run(state, step, job, key, parts, self.engine.wait_for(run.id))

            resumed.append((run.step, pool.submit(wait_and_publish)))
        for name, runs in sweeps.items():
            result = next((r for r in runs if "sweep" in r.extra), None)
            if result is not None:
                state.finish(name, result, None)
                continue
            step = state.spec.step(name)
            job, inputs, key, parts = self._step_key(state, step)
            trials = [r for r in runs if "trial" in r.extra]
            reason = trials[0].extra.get("cache", {}).get("reason", "resumed") if trials else "resumed"
            resumed.append((name, pool.submit(self._sweep, state, step, job, inputs, key, parts, reason, trials)))
        return resumed

    def _close(self, prun_id: str, state: "_State") -> dict[str, Any]:
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

    # -- reading ---------------------------------------------------------------------------------
    def record(self, prun_id: str) -> dict[str, Any]:
        """The pipeline run as the contract prints it: one run record per declared step. A sweep
        step's record is its best trial's (or, when none succeeded, its FAILED result), with
        ``trials`` (every trial's record, with its ``trial`` parameters and ``objective``) and
        ``best_trial``; while the sweep runs, its latest trial stands for it."""
        prun = self.runs.get(prun_id)
        spec = PipelineSpec.model_validate(prun["spec"]["pipeline"])
        by_step: dict[str, RunRecord] = {}
        trials: dict[str, list[RunRecord]] = defaultdict(list)
        for run in self.store.list_runs(pipeline_run=prun_id, newest_first=False):
            if "trial" in run.extra:
                trials[run.step].append(run)
            if "trial" not in run.extra or "sweep" in run.extra:
                by_step[run.step] = run
        steps = []
        for step in spec.steps:
            run = by_step.get(step.name) or (trials[step.name][-1] if trials.get(step.name) else None)
            if run is None:
                continue
            out = run.public()
            if step.sweep is not None:
                out.update(_sweep_fields(run, trials.get(step.name, [])))
            steps.append(out)
        return {
            "id": prun["id"], "pipeline": prun["pipeline"], "state": prun["state"], "reason": prun["reason"],
            "started_at": iso(prun["started_at"]), "ended_at": iso(prun["ended_at"]),
            "cost_usd": prun["cost_usd"], "saved_usd": prun["saved_usd"], "parameters": prun["parameters"],
            "steps": steps,
        }

    def wait_for(self, prun_id: str, poll_s: float = 0.25) -> dict[str, Any]:
        """Wait for a pipeline run that the daemon executes."""
        import time

        while self.runs.get(prun_id)["state"] in ("QUEUED", "RUNNING"):
            time.sleep(poll_s)
        return self.record(prun_id)

    def cancel(self, prun_id: str) -> dict[str, Any]:
        now = self.engine.clock.now()
        if self.runs.update(prun_id, expect=["QUEUED"], state=CANCELED, ended_at=now, reason="canceled while queued"):
            return self.record(prun_id)
        self.runs.update(prun_id, cancel_requested_at=now)
        for run in self.store.list_runs(pipeline_run=prun_id, state=("QUEUED", "STARTING", "RUNNING")):
            self.engine.cancel(run.id, wait=True)
        return self.record(prun_id)


def _trial_public(run: RunRecord) -> dict[str, Any]:
    return {**run.public(), "trial": run.extra.get("trial"), "objective": run.extra.get("objective")}


def _sweep_fields(run: RunRecord, trials: list[RunRecord]) -> dict[str, Any]:
    """What a sweep step's entry adds to its run record in the pipeline run record."""
    summary = run.extra.get("sweep") or {}
    out: dict[str, Any] = {}
    if "trial" in run.extra:
        out.update(trial=run.extra["trial"], objective=run.extra.get("objective"))
    ordered = sorted(trials, key=lambda t: t.extra.get("trial_index", 0))
    out.update(trials=[_trial_public(t) for t in ordered], best_trial=summary.get("best_trial"), sweep=summary)
    return out


def _step_cost(record: RunRecord) -> float:
    """What a step cost: a sweep step's is all its trials' (its record is only the best one)."""
    summary = record.extra.get("sweep")
    return float(summary.get("cost_usd") or 0.0) if summary is not None else record.cost_usd


class _State:
    """What one pipeline run knows while it executes."""

    def __init__(self, spec: PipelineSpec, prun: dict[str, Any], jobs: dict[str, JobSpec]):
        self.spec = spec
        self.prun_id = prun["id"]
        self.params = prun["parameters"]
        self.jobs = jobs
        self.force_all = bool(prun["force"]["all"])
        self.force_steps = set(prun["force"]["steps"])
        self.order = spec.order()
        self.pending = set(self.order)
        self.records: dict[str, RunRecord] = {}
        self.outputs: dict[str, dict[str, Any]] = {}

    def ready(self, running_names) -> list[str]:
        busy = set(running_names)
        ready = [n for n in self.order if n in self.pending and not (self.spec.step(n).upstream() & (self.pending | busy))]
        self.pending -= set(ready)
        return ready

    def finish(self, name: str, record: RunRecord, progress) -> None:
        self.records[name] = record
        self.outputs[name] = record.extra.get("outputs", {}) if record.state in OK_STATES else {}
        if progress:
            progress(name, record)
