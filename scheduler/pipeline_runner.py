"""Running a pipeline: steps in dependency order, independent ones in parallel, each reused from
the step cache when nothing that could change its outputs changed."""

from __future__ import annotations

import secrets
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable

from . import cache
from .catalog import step_requirements
from .clock import iso
from .errors import CostwiseError, SpecError
from .launch import run_dirs
from .outputs import OutputStore
from .pipelines import PipelineSpec, Step, evaluate_condition, parse_params, referenced_params, substitute
from .runs import CACHED, CANCELED, FAILED, SKIPPED, SUCCEEDED, RunRecord, new_run_id
from .specs import JobSpec

OK_STATES = (SUCCEEDED, CACHED)
MAX_PARALLEL_STEPS = 16


def new_pipeline_run_id() -> str:
    return "p-" + secrets.token_hex(5)


def step_job(job: JobSpec, step: Step, params: dict[str, Any]) -> JobSpec:
    """The job as this step runs it: step args / env (parameters substituted), requirements, shape."""
    update: dict[str, Any] = {
        "args": [substitute(a, params) for a in (step.args if step.args is not None else job.args)],
        "env": {**job.env, **{k: substitute(v, params) for k, v in step.env.items()}},
        "requirements": step_requirements(job, step),
    }
    if step.shape is not None:
        update["shape"] = step.shape
    if step.max_runtime is not None:
        update["max_runtime"] = step.max_runtime
    return job.model_copy(update=update)


class PipelineRunner:
    """Executes pipeline runs. With ``dispatched`` (inside the daemon) its step runs are left queued
    for the daemon's dispatcher and awaited; otherwise this process places and supervises them."""

    def __init__(self, engine, dispatched: bool = False):
        self.engine = engine
        self.dispatched = dispatched
        self.store = engine.store
        self.runs = engine.store.pipeline_runs
        self.outputs = OutputStore(engine.settings.home / "store")

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
            id=new_run_id(), job=step.job, state=final, reason=reason, pipeline=state.spec.name,
            pipeline_run=state.prun_id, step=step.name, queued_at=now, started_at=now, ended_at=now,
            duration_s=0.0, **fields,
        )
        return self.store.create_run(record, message=reason)

    def _run_step(self, state: "_State", step: Step) -> RunRecord:
        job = step_job(state.jobs[step.job], step, state.params)
        inputs = {name: state.outputs[ref.split("/", 1)[0]][ref.split("/", 1)[1]] for name, ref in step.inputs.items()}
        parts = cache.key_parts(
            job, {p: state.params[p] for p in referenced_params(step)},
            {name: ref["sha256"] for name, ref in inputs.items()}, step.outputs, step.cache_version,
        )
        key = cache.cache_key(parts)
        forced = state.force_all or step.name in state.force_steps
        if not step.cache:
            return self._launch(state, step, job, inputs, key, parts, "cache: false on this step")
        with self.outputs.lock(key):
            if forced:
                return self._launch(state, step, job, inputs, key, parts, "forced rerun")
            entry, problem = self.outputs.lookup(key)
            if entry is not None:
                return self._reuse(state, step, job, key, entry)
            why = problem or cache.explain_miss(self.outputs.last_parts(state.spec.name, step.name), parts)
            return self._launch(state, step, job, inputs, key, parts, why)

    def _reuse(self, state, step, job, key, entry) -> RunRecord:
        origin = entry.get("run_id")
        return self._final_record(
            state, step, CACHED, f"reused outputs of {origin}", cache_hit=True, reused_from=origin,
            saved_usd=float(entry.get("cost_usd") or 0.0), shape=entry.get("shape"), backend=entry.get("backend"),
            artifacts_dir=entry.get("artifacts_dir"), spec=job.model_dump(mode="json"), labels=dict(job.labels),
            extra={"outputs": entry["outputs"], "cache": {"key": key, "result": "hit"}, "parameters": state.params},
        )

    def _launch(self, state, step, job, inputs, key, parts, miss_reason) -> RunRecord:
        backends = sorted(state.spec.backends) if state.spec.backends else None
        run = self.engine.submit(
            job.name, job=job, message=f"step {step.name}: cache miss ({miss_reason})",
            pipeline=state.spec.name, pipeline_run=state.prun_id, step=step.name,
            extra={"cache": {"key": key, "result": "miss", "reason": miss_reason, "parts": parts},
                   "parameters": state.params, "backends": backends},
            labels={**state.spec.labels, **job.labels},
        )
        self.outputs.materialize(inputs, run_dirs(self.engine.settings, run, job)["input"])
        if self.dispatched:
            final = self.engine.wait_for(run.id)
        else:
            final = self.engine.run_to_completion(run, backends=frozenset(backends) if backends else None)
        return self._after_run(state, step, job, key, parts, final)

    def _after_run(self, state, step, job, key, parts, final: RunRecord) -> RunRecord:
        """Check and publish a finished step's outputs (idempotent: a resumed run may do it again)."""
        if final.state != SUCCEEDED or "outputs" in final.extra:
            return final
        out_dir = run_dirs(self.engine.settings, final, job)["output"]
        missing = [name for name in step.outputs if not (out_dir / name).is_file()]
        if missing:
            reason = f"declared output {missing[0]} was not written to COSTWISE_OUTPUT_DIR"
            self.store.update_run(final.id, expect=[SUCCEEDED], state=FAILED, reason=reason, message=reason)
            return self.store.get_run(final.id)
        published = {name: self.outputs.put_file(out_dir / name) for name in step.outputs}
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

    def _resume_steps(self, state: "_State", pool) -> list[tuple[str, Future]]:
        """Fold in the step runs recorded before a restart; await the ones still running."""
        resumed = []
        for run in self.store.list_runs(pipeline_run=state.prun_id, newest_first=False):
            if run.step not in state.pending:
                continue
            step = state.spec.step(run.step)
            state.pending.discard(run.step)
            if run.finished and (run.state != SUCCEEDED or "outputs" in run.extra or not step.outputs):
                state.finish(run.step, run, None)
                continue
            job = JobSpec.model_validate(run.spec) if run.spec else state.jobs[step.job]
            cache_info = run.extra.get("cache", {})

            def wait_and_publish(run=run, step=step, job=job, key=cache_info.get("key"), parts=cache_info.get("parts")):
                return self._after_run(state, step, job, key, parts, self.engine.wait_for(run.id))

            resumed.append((run.step, pool.submit(wait_and_publish)))
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
            cost_usd=sum(r.cost_usd for r in records), saved_usd=sum(r.saved_usd for r in records),
        )
        record = self.record(prun_id)
        if changed:
            self.engine.hooks.fire(state.spec.hooks, final, record, f"pipeline run {prun_id}")
        return record

    # -- reading ---------------------------------------------------------------------------------
    def record(self, prun_id: str) -> dict[str, Any]:
        """The pipeline run as the contract prints it: one run record per declared step."""
        prun = self.runs.get(prun_id)
        spec = PipelineSpec.model_validate(prun["spec"]["pipeline"])
        by_step = {r.step: r for r in self.store.list_runs(pipeline_run=prun_id, newest_first=False)}
        steps = [by_step[s.name].public() for s in spec.steps if s.name in by_step]
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
