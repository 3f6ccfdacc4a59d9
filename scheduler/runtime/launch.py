"""Turning a queued run into a LaunchSpec: its folders, command line and environment."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from ..store.artifacts import ArtifactStore, entry_command
from ..store.catalog import artifact_name
from ..core.errors import UserError
from ..core.runs import RunRecord
from ..store.settings import Settings
from ..core.specs import JobSpec, RunOverrides, ShapeSpec
from ..core.spot import Market
from ..executors.base import LaunchSpec

_PASSED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SHELL", "TERM")


def effective_spec(job: JobSpec, overrides: RunOverrides) -> JobSpec:
    """The job as this run sees it: overrides replace args, shape and max runtime, and add env."""
    update = {"env": {**job.env, **overrides.env}}
    if overrides.args is not None:
        update["args"] = list(overrides.args)
    if overrides.shape is not None:
        update["shape"] = overrides.shape
    if overrides.max_runtime is not None:
        update["max_runtime"] = overrides.max_runtime
    clash = set(overrides.env) & set(job.secret_env)
    if clash:
        name = sorted(clash)[0]
        raise UserError(f"--env {name}: {name!r} is a secret of job {job.name!r} and cannot be overridden")
    return job.model_copy(update=update)


def run_dirs(settings: Settings, run: RunRecord, job: JobSpec) -> dict[str, Path]:
    root = settings.run_dir(run.id)
    checkpoint_key = "shared" if job.resume else run.id
    dirs = {
        "root": root,
        "artifacts": root / "artifacts",
        "input": root / "inputs",
        "output": root / "outputs",
        "work": root / "work",
        "checkpoint": settings.checkpoints_root / job.name / checkpoint_key,
    }
    for key in ("input", "output"):  # pipeline steps bring their own
        if key in run.extra.get("dirs", {}):
            dirs[key] = Path(run.extra["dirs"][key])
    return dirs


def resolve_secrets(job: JobSpec, environ=os.environ) -> dict[str, str]:
    values = {}
    for name, ref in job.secret_env.items():
        scheme, _, target = ref.partition(":")
        if scheme == "env":
            if target not in environ:
                raise UserError(f"secret_env.{name}: {ref!r} is not set in the launcher's environment")
            values[name] = environ[target]
        else:
            try:
                values[name] = Path(target).read_text().rstrip("\n")
            except OSError as exc:
                raise UserError(f"secret_env.{name}: {ref!r} cannot be read: {exc.strerror}") from None
    return values


def base_env(python: str, environ=os.environ) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if k in _PASSED_ENV or k.startswith("LC_")}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if os.path.isabs(python):  # `python` in a job's shell script is costwise's own interpreter
        env["PATH"] = os.path.dirname(python) + os.pathsep + env["PATH"]
    env["PYTHONUNBUFFERED"] = "1"
    return env


def build_launch(
    settings: Settings,
    run: RunRecord,
    job: JobSpec,
    shape: ShapeSpec,
    python: str,
    create: bool,
    now: datetime | None = None,
) -> LaunchSpec:
    """Everything an executor needs. With create=False (dry run) nothing is written or resolved;
    ``now`` (the caller's clock) gives the time left to the run's deadline."""
    dirs = run_dirs(settings, run, job)
    if create:
        for key in ("root", "artifacts", "input", "output", "checkpoint"):  # the root first: no failed mkdir
            dirs[key].mkdir(parents=True, exist_ok=True)
        ArtifactStore(settings.artifacts_root).checkout(job.artifact_hash, dirs["work"])
        secrets = resolve_secrets(job)
    else:
        secrets = {name: "<secret>" for name in job.secret_env}
    argv = entry_command(dirs["work"], artifact_name(job), job.entrypoint, python) + list(job.args)
    return LaunchSpec(
        run_id=run.id,
        job=job.name,
        argv=argv,
        workdir=dirs["work"],
        env=run_env(run, job, shape, dirs, {**base_env(python), **job.env, **secrets}),
        secret_names=frozenset(job.secret_env),
        log_path=dirs["root"] / "run.log",
        shape=shape,
        max_runtime_s=job.max_runtime,
        image=job.image,
        mounts=tuple(job.mounts),
        labels={**job.labels, "costwise-run-id": run.id, "costwise-job": job.name},
        retries=job.retries,
        dirs=dirs,
        seconds_left=(run.deadline_at - now).total_seconds() if run.deadline_at and now else None,
        stop_grace_s=job.stop_grace,
        requirements=job.requirements,
        preemptible=run.market is Market.SPOT,
    )


def run_env(run: RunRecord, job: JobSpec, shape: ShapeSpec, dirs: dict[str, Path],
            env: dict[str, str]) -> dict[str, str]:
    """``env`` (inherited, the job's and its secrets) plus mounts, costwise's own variables and the run's extras."""
    env = dict(env)
    for mount in job.mounts:
        env[f"COSTWISE_MOUNT_{_env_key(mount.path)}"] = mount.source
    env.update(
        COSTWISE_RUN_ID=run.id,
        COSTWISE_JOB=job.name,
        COSTWISE_SHAPE=shape.name,
        COSTWISE_ARTIFACTS_DIR=str(dirs["artifacts"]),
        COSTWISE_INPUT_DIR=str(dirs["input"]),
        COSTWISE_OUTPUT_DIR=str(dirs["output"]),
        COSTWISE_CHECKPOINT_DIR=str(dirs["checkpoint"]),
    )
    for key, value in run.extra.get("env", {}).items():  # e.g. COSTWISE_TRIAL for sweep trials
        env[key] = value
    return env


def _env_key(path: str) -> str:
    key = "".join(c if c.isalnum() else "_" for c in path.strip("/")).upper()
    return key or "ROOT"
