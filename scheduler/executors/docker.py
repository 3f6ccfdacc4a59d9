"""Docker containers: one container per run, the shape's limits, the run's folders at the same paths.

- Limits come from the **shape** (what is paid for): ``nano_cpus`` = vCPUs × 1e9, ``mem_limit`` =
  ``memswap_limit`` = memory GiB (no swap on top), and a GPU device request (``count`` = the shape's
  GPUs, capability ``gpu``) when the shape has GPUs.
- The run's folders (work, artifacts, input, output, checkpoint) are bind-mounted at the **same path**
  inside the container, so the ``COSTWISE_*`` values stay valid (a pipeline step's inputs are
  private copies in its input folder). Job mounts bind ``source`` at ``path`` and
  their ``COSTWISE_MOUNT_*`` variable says ``path``. Host-only variables (PATH, HOME, ...) are left
  to the image. The container runs as the daemon's uid:gid (files it writes stay the daemon's) with
  ``init`` so SIGTERM reaches the job (a bare PID 1 ignores it).
- Labels ``costwise-run-id`` / ``costwise-job`` (plus the job's labels and ``costwise.managed``)
  link the container to its run; ``adopt`` finds it by id, else by that label.
- Logs are streamed with timestamps into the run's log (see ``logcopy``); utilization comes from
  one-shot container stats (cumulative CPU since the container started, working-set memory, as
  ``docker stats`` shows it); the exit code and ``OOMKilled`` come from the container's state,
  which survives a daemon restart; the container is removed once its logs are copied. A container
  killed by someone else (exit 137 / 143 while costwise did not stop it) ends ``preempted``.

Here: launch, the watcher threads (logs, exit), wait, sampling, cancel and adopt; the container spec
and its creation are ``docker_spec``, reading the engine's state and stats is ``docker_state``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..core.extras import Extra, require
from .base import ExitStatus, LaunchSpec, TrackedRuns, Usage
from .docker_spec import (GIB, HOST_ONLY_ENV, LOG_LABEL, MANAGED_LABEL, RUN_LABEL, DockerError, bind_mounts,
                          container_env, container_name, create, explain)
from .docker_spec import container_spec as _container_spec
from .docker_state import cpu_util, epoch, status_from_state, working_set
from .gpu import GPU, GpuSamples
from .logcopy import LogCopier
from .throttled_log import ThrottledWarnings

__all__ = ["DockerExecutor", "DockerError", "RUN_LABEL", "LOG_LABEL", "MANAGED_LABEL", "HOST_ONLY_ENV", "GIB",
           "container_name", "container_env", "bind_mounts"]

STOP_WAIT_EXTRA_S = 30.0

log = logging.getLogger(__name__)


@dataclass
class _Tracked:
    run_id: str
    container_id: str
    vcpus: float
    gpus: float
    log: LogCopier
    started_epoch: float | None = None
    done: threading.Event = field(default_factory=threading.Event)
    final: ExitStatus | None = None
    cpu_util: float | None = None
    mem_peak: int = 0
    gpu_samples: GpuSamples = field(default_factory=GpuSamples)
    log_thread: threading.Thread | None = None
    stopping: bool = False  # costwise stops it (cancel, deadline, preempt): its kill is no preemption


class DockerExecutor(TrackedRuns):
    backend = "docker"

    def __init__(self, client=None, gpu=GPU, remove: bool = True):
        require("docker", Extra.DOCKER, "the docker backend")
        self._client = client
        self._gpu = gpu
        self._remove = remove
        self._warnings = ThrottledWarnings(log)
        super().__init__()
        self._ncpu: int | None = None

    @property
    def client(self):
        if self._client is None:
            import docker

            try:
                self._client = docker.from_env()
                self._client.ping()
            except docker.errors.DockerException as exc:
                self._client = None
                raise DockerError(f"the Docker engine cannot be reached (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unix:///var/run/docker.sock')}): {exc}") from None
        return self._client

    # -- the container spec --------------------------------------------------------------------
    def container_spec(self, spec: LaunchSpec, redact: bool = False) -> dict[str, Any]:
        """Keyword arguments for ``client.containers.create``: what launch runs and dry-run prints."""
        return _container_spec(spec, redact)

    def describe(self, spec: LaunchSpec) -> dict[str, Any]:
        kwargs = self.container_spec(spec, redact=True)
        return {
            "backend": "docker",
            "container": {k: (list(map(dict, v)) if k in ("mounts", "device_requests") else v) for k, v in kwargs.items()},
            "log": str(spec.log_path),
            "shape": {"name": spec.shape.name, "vcpus": spec.shape.vcpus, "memory_gib": spec.shape.memory_gib,
                      "gpus": spec.shape.gpus, "gpu_type": spec.shape.gpu_type},
            "max_runtime_s": spec.max_runtime_s,
            "removed_after_run": self._remove,
        }

    # -- launch --------------------------------------------------------------------------------
    def launch(self, spec: LaunchSpec) -> dict[str, Any]:
        import docker

        kwargs = self.container_spec(spec)
        api = self.client.api
        kwargs["nano_cpus"] = min(kwargs["nano_cpus"], self._host_cpus() * 10**9)
        try:
            container = create(self.client, kwargs)
            try:
                container.start()
            except docker.errors.DockerException:
                container.remove(force=True)
                raise
        except docker.errors.ImageNotFound:
            raise DockerError(f"image {spec.image!r} is not on the Docker engine and cannot be pulled; build or load it first") from None
        except docker.errors.DockerException as exc:
            raise DockerError(f"docker could not start the run's container: {explain(exc)}") from None
        handle = {
            "container_id": container.id,
            "container_name": kwargs["name"],
            "run_id": spec.run_id,
            "log": str(spec.log_path),
            "vcpus": spec.shape.vcpus,
            "gpus": spec.shape.gpus,
        }
        self._track(handle, container.id, api.inspect_container(container.id))
        return handle

    def _host_cpus(self) -> int:
        """The engine refuses a CPU limit above its own CPUs; such a shape gets the whole host."""
        if self._ncpu is None:
            self._ncpu = int(self.client.info().get("NCPU") or os.cpu_count() or 1)
        return self._ncpu

    # -- tracking ------------------------------------------------------------------------------
    def _track(self, handle: dict[str, Any], container_id: str, info: dict) -> _Tracked:
        tracked = _Tracked(
            run_id=handle["run_id"], container_id=container_id, vcpus=handle.get("vcpus", 1.0),
            gpus=handle.get("gpus", 0), log=LogCopier(handle["log"]),
            started_epoch=epoch(info.get("State", {}).get("StartedAt")),
        )
        with self._lock:
            self._runs[tracked.run_id] = tracked
        tracked.log_thread = threading.Thread(target=self._copy_logs, args=(tracked,), daemon=True,
                                              name=f"docker-logs-{tracked.run_id}")
        tracked.log_thread.start()
        threading.Thread(target=self._await_exit, args=(tracked,), daemon=True,
                         name=f"docker-wait-{tracked.run_id}").start()
        return tracked

    def _copy_logs(self, tracked: _Tracked) -> None:
        import docker

        kwargs: dict[str, Any] = {"stream": True, "follow": True, "timestamps": True}
        since = tracked.log.since_epoch()
        if since is not None:
            kwargs["since"] = max(int(since) - 1, 1)  # whole seconds: older lines are dropped by the copier
        try:
            for chunk in self.client.api.logs(tracked.container_id, **kwargs):
                tracked.log.feed(chunk)
        except docker.errors.NotFound:
            pass  # removed meanwhile: nothing more to copy
        except Exception as exc:  # engine restarting, connection reset: the run still finishes  # noqa: BLE001
            tracked.log.note(f"log stream ended early: {type(exc).__name__}")
        finally:
            tracked.log.close()

    def _await_exit(self, tracked: _Tracked) -> None:
        """Block on the container's end, then copy the last logs, read the state and remove it."""
        import docker

        api = self.client.api
        while True:
            try:
                api.wait(tracked.container_id, timeout=None)
                break
            except docker.errors.NotFound:
                break
            except Exception as exc:  # engine restarting, connection reset: look again  # noqa: BLE001
                self._warnings.warn("wait", f"docker: waiting for container {tracked.container_id[:12]} failed "
                                            f"({explain(exc)}); looking again")
                time.sleep(0.5)
        if tracked.log_thread is not None:
            tracked.log_thread.join(timeout=15)
        status = ExitStatus.lost()
        try:
            state = api.inspect_container(tracked.container_id)["State"]
            status = status_from_state(state, stopped_here=tracked.stopping)
            if self._remove:
                api.remove_container(tracked.container_id, force=True)
        except docker.errors.NotFound:
            pass  # removed meanwhile: what was read stands (lost if its state was not)
        except docker.errors.DockerException as exc:
            status = status if not status.is_lost else ExitStatus(None, f"docker: {explain(exc)}")
        tracked.final = status
        tracked.done.set()

    # -- waiting -------------------------------------------------------------------------------
    def wait(self, handle: dict[str, Any], timeout: float) -> ExitStatus | None:
        tracked = self._tracked(handle)
        if tracked is None:
            return ExitStatus.lost()
        return tracked.final if tracked.done.wait(max(timeout, 0.0)) else None

    # -- utilization ---------------------------------------------------------------------------
    def sample(self, handle: dict[str, Any]) -> None:
        import docker

        tracked = self._get(handle)
        if tracked is None or tracked.done.is_set():
            return
        try:
            stats = self.client.api.stats(tracked.container_id, stream=False, one_shot=True)
        except docker.errors.NotFound:  # the container just ended: nothing to sample
            return
        except Exception as exc:  # noqa: BLE001 - a missed sample is not worth failing the run
            self._warnings.warn("stats", f"docker: cannot read container stats ({explain(exc)})")
            return
        self._warnings.clear("stats")
        util = cpu_util(stats, tracked.started_epoch, tracked.vcpus)
        if util is not None:
            tracked.cpu_util = util
        used = working_set(stats)
        if used is not None:
            tracked.mem_peak = max(tracked.mem_peak, used)
        if tracked.gpus:
            tracked.gpu_samples.take(self._gpu)

    def usage(self, handle: dict[str, Any]) -> Usage:
        tracked = self._get(handle)
        if tracked is None:
            return Usage()
        gpu = tracked.gpu_samples.mean()
        return Usage(tracked.cpu_util, tracked.mem_peak or None, gpu)

    def forget(self, handle: dict[str, Any]) -> None:
        with self._lock:
            self._runs.pop(handle.get("run_id"), None)

    # -- stopping ------------------------------------------------------------------------------
    def cancel(self, handle: dict[str, Any], grace_s: float) -> ExitStatus:
        """``docker stop``: SIGTERM, SIGKILL after the grace period; returns once it is removed."""
        import docker

        tracked = self._tracked(handle)
        if tracked is None:
            return ExitStatus.lost()
        if tracked.done.is_set():
            return tracked.final
        tracked.stopping = True
        try:
            self.client.api.stop(tracked.container_id, timeout=math.ceil(grace_s))
        except docker.errors.NotFound:
            pass  # already gone: its watcher records the end
        except docker.errors.DockerException:
            try:
                self.client.api.kill(tracked.container_id)
            except docker.errors.DockerException as exc:
                self._warnings.warn("kill", f"docker: cannot stop or kill container "
                                            f"{tracked.container_id[:12]} ({explain(exc)})")
        if tracked.done.wait(grace_s + STOP_WAIT_EXTRA_S):
            return tracked.final
        return ExitStatus(None, "did not stop")

    # -- restarts ------------------------------------------------------------------------------
    def adopt(self, handle: dict[str, Any]) -> bool:
        """Track the run's container again: by id, else by its run label. An exited container counts
        (its exit code is still in its state); a removed one does not. What the handle lacks (a
        launch cut short before it was saved) is filled in from the container's labels."""
        import docker

        if self._get(handle) is not None:
            return True
        api = self.client.api
        info = None
        try:
            if handle.get("container_id"):
                info = api.inspect_container(handle["container_id"])
        except docker.errors.NotFound:
            pass  # not by that id (a recreated container): look it up by its run label
        if info is None and handle.get("run_id"):
            found = api.containers(all=True, filters={"label": f"{RUN_LABEL}={handle['run_id']}"})
            if found:
                info = api.inspect_container(found[0]["Id"])
        if info is None or info.get("State", {}).get("Status") in ("removing", "dead"):
            return False
        labels = info.get("Config", {}).get("Labels") or {}
        if not (handle.get("log") or labels.get(LOG_LABEL)):
            return False
        handle.setdefault("log", labels.get(LOG_LABEL))
        handle.setdefault("vcpus", (info.get("HostConfig", {}).get("NanoCpus") or 10**9) / 1e9)
        handle["container_id"] = info["Id"]
        self._track(handle, info["Id"], info)
        return True

