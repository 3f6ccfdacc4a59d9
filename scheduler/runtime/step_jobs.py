"""A pipeline step's job: the declared job with the step's (and a sweep trial's) values laid over it."""

from __future__ import annotations

from typing import Any

from ..core.pipelines import Step, substitute
from ..core.specs import JobSpec
from ..core.sweeps import substitute_trial
from ..store.catalog import step_requirements


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
