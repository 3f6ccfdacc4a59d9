"""A run's container as the Docker engine is asked for it: the spec, its labels and its creation.

Pure except ``create``: the keyword arguments of ``client.containers.create`` (what launch runs and
``--dry-run`` prints), the environment the container sees, the bind mounts, and the errors the
engine's refusals become.
"""

from __future__ import annotations

import math
import os
from typing import Any

from ..core.errors import CostwiseError
from .base import LaunchSpec

RUN_LABEL = "costwise-run-id"
LOG_LABEL = "costwise.log"  # where the run's log goes: lets a restart adopt from the label alone
MANAGED_LABEL = "costwise.managed"
HOST_ONLY_ENV = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR"})
GIB = 1024**3


class DockerError(CostwiseError):
    """The Docker engine refused or could not be reached."""


def container_spec(spec: LaunchSpec, redact: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create``: what launch runs and dry-run prints."""
    from docker.types import DeviceRequest, Mount

    if not spec.image:
        raise CostwiseError(f"job {spec.job!r}: a docker shape needs the job's `image`")
    mem = int(spec.shape.memory_gib * GIB)
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "command": list(spec.argv),
        "name": container_name(spec.run_id),
        "working_dir": str(spec.workdir),
        "environment": container_env(spec, redact),
        "labels": {**spec.labels, MANAGED_LABEL: "true", LOG_LABEL: str(spec.log_path)},
        "user": f"{os.getuid()}:{os.getgid()}",
        "init": True,
        "nano_cpus": int(spec.shape.vcpus * 1e9),
        "mem_limit": mem,
        "memswap_limit": mem,
        "mounts": [
            Mount(target=target, source=source, type="bind", read_only=ro)
            for target, source, ro in bind_mounts(spec)
        ],
        "detach": True,
    }
    if spec.shape.gpus > 0:
        kwargs["device_requests"] = [DeviceRequest(count=math.ceil(spec.shape.gpus), capabilities=[["gpu"]])]
    return kwargs


def create(client, kwargs):
    """Create the container; a leftover *stopped* container of an earlier attempt is removed first."""
    import docker

    try:
        return client.containers.create(**kwargs)
    except docker.errors.APIError as exc:
        if exc.status_code != 409:
            raise
        old = client.containers.get(kwargs["name"])
        if old.status == "running":
            raise DockerError(f"container {kwargs['name']!r} of this run is already running; a run is never started twice") from None
        old.remove(force=True)
        return client.containers.create(**kwargs)


def container_name(run_id: str) -> str:
    return f"costwise-{run_id}"


def container_env(spec: LaunchSpec, redact: bool = False) -> dict[str, str]:
    """The run's environment as the container sees it: host-only variables dropped, mounts at `path`."""
    at = {m.source: m.path for m in spec.mounts}
    env = {}
    for key, value in sorted(spec.env.items()):
        if key in HOST_ONLY_ENV:
            continue
        if key.startswith("COSTWISE_MOUNT_") and value in at:
            value = at[value]
        env[key] = "<secret>" if redact and key in spec.secret_names else value
    return env


def bind_mounts(spec: LaunchSpec) -> list[tuple[str, str, bool]]:
    """(target, source, read_only) for the run's folders (same path inside) and the job's mounts.
    Nothing found inside a run's folder is bound: a link there is the job's (a retry's container
    would otherwise see whatever host file the last attempt linked to)."""
    binds: dict[str, tuple[str, bool]] = {}
    folders = [spec.workdir, *(spec.dirs[k] for k in ("artifacts", "input", "output", "checkpoint") if k in spec.dirs)]
    for folder in folders:
        binds[str(folder)] = (str(folder), False)
    for mount in spec.mounts:
        binds[mount.path] = (mount.source, mount.read_only)
    return [(target, source, ro) for target, (source, ro) in binds.items()]


def explain(exc: Exception) -> str:
    return str(getattr(exc, "explanation", None) or exc)
