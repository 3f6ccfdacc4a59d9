"""What `run --estimate`, `pipeline run --estimate` and the Pulumi Pipeline resource read to price a
run before it runs: the catalog's shapes and jobs, each job's duration history, the step cache's
entries. The arithmetic is core/estimate.py and core/estimate_pipeline.py; nothing is written here:
no run is recorded and no cache entry is removed (a lookup that would find an entry broken at run
time counts as a hit here, as the object files are checked for presence, not re-hashed)."""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..core import placement
from ..core.estimate import JobEstimate, estimate_job
from ..core.estimate_pipeline import PipelineEstimate, Readers, estimate_pipeline
from ..core.errors import SpecError
from ..core.pipelines import PipelineSpec, Step, parse_params
from ..core.specs import JobSpec, RunOverrides
from ..core.step_plan import CacheLookup, RunSoFar
from ..store.outputs import OutputStore
from .launch import effective_spec
from .step_files import StepFiles
from .step_jobs import step_job


def estimate_run(engine, job_name: str, overrides: RunOverrides = RunOverrides()) -> JobEstimate:
    """A run of a catalog job with these overrides, priced as placement would place it now."""
    job = effective_spec(engine.store.require("Job", job_name), overrides)
    index = engine.shape_index()
    if job.shape is not None and job.shape not in index.by_name:
        raise SpecError(f"--shape {job.shape!r} is not a declared shape", "shape", job.shape)
    return _estimator(engine, None)(job)


def estimate_pipeline_run(engine, name: str, params: Mapping[str, str] | None = None,
                          force_steps: list[str] | None = None, force_all: bool = False) -> PipelineEstimate:
    """The next run of a catalog pipeline (``params`` as `--param` gives them)."""
    spec: PipelineSpec = engine.store.require("Pipeline", name)
    for step in force_steps or []:
        if step not in {s.name for s in spec.steps}:
            raise SpecError(f"--force-step {step!r}: pipeline {name!r} has no such step", "force-step", step)
    return estimate_spec(engine, spec, parse_params(spec, dict(params or {})), frozenset(force_steps or ()), force_all)


def estimate_spec(engine, spec: PipelineSpec, values: Mapping[str, Any] | None = None,
                  force_steps: frozenset[str] = frozenset(), force_all: bool = False) -> PipelineEstimate:
    """A pipeline document's next run, applied or not (the Pulumi resource prices a change in preview):
    its steps' jobs as the catalog has them now."""
    values = parse_params(spec, {}) if values is None else values
    files = StepFiles(engine.settings.home)
    jobs: dict[str, JobSpec | None] = {}

    def job_for(step: Step) -> JobSpec | None:
        if step.job_name not in jobs:
            jobs[step.job_name] = engine.store.get("Job", step.job_name)
        job = jobs[step.job_name]
        return None if job is None else step_job(job, step, dict(values))

    def lookup(step: Step, key: str) -> CacheLookup:
        entry = peek_entry(files.outputs, key)
        if entry is not None:
            return CacheLookup(entry=entry)
        return CacheLookup(last_parts=files.outputs.last_parts(spec.name, step.name))

    readers = Readers(job_for, lookup, files.condition_document, _estimator(engine, spec.backends))
    return estimate_pipeline(spec, values, readers, force_steps, force_all)


def peek_entry(outputs: OutputStore, key: str) -> dict[str, Any] | None:
    """The cache entry under ``key`` if it and its objects are there (read only: nothing is removed)."""
    try:
        entry = json.loads((outputs.entries / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    refs = entry.get("outputs") if isinstance(entry, dict) else None
    if not isinstance(refs, dict):
        return None
    for ref in refs.values():
        path = outputs.object_path(str(ref.get("sha256", "")))
        if not path.is_file() or ("bytes" in ref and path.stat().st_size != ref["bytes"]):
            return None
    return entry


def _estimator(engine, backends):
    """job -> its estimate, on one shape index, one clock reading and each job's history read once."""
    index, now, histories = engine.shape_index(), engine.clock.now(), {}
    allowed = frozenset(backends) if backends else None

    def estimate_for(job: JobSpec) -> JobEstimate:
        if job.name not in histories:
            histories[job.name] = engine.store.duration_history(job.name)
        req = placement.PlacementRequest.for_job(job, backends=allowed)
        return estimate_job(job, req, index, histories[job.name], now)

    return estimate_for
