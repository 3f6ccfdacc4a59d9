"""The one small interface every backend implements.

An executor launches a run and hands back a JSON-safe *handle* that is persisted with the run, so a
restarted daemon can ``adopt`` it. Everything after launch takes that handle:

- ``wait(handle, timeout)`` returns the run's ``ExitStatus`` once it has ended, else None after at
  most ``timeout`` seconds (``poll`` is ``wait`` with timeout 0);
- ``sample(handle)`` takes one utilization sample; ``usage(handle)`` summarises them;
- ``cancel(handle, grace_s)`` stops the run: SIGTERM (or the backend's equivalent), SIGKILL after
  ``grace_s`` (at most ``MAX_STOP_GRACE_S``: an infinite grace never means "never SIGKILL"), and
  returns when nothing of it is left;
- ``adopt(handle)`` says whether the run is still alive after a restart, and resumes tracking it;
- ``describe(spec)`` is what ``--dry-run`` prints: the process, container spec or Job manifest;
- ``forget(handle)`` drops what the executor keeps in memory about a finished run.

Backends never touch the store; the engine records what they report.
"""

from __future__ import annotations

import threading
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..core.specs import Mount, Requirements, ShapeSpec

MAX_STOP_GRACE_S = 3600.0  # what any executor waits between SIGTERM and SIGKILL, whatever a spec says
DEFAULT_STOP_GRACE_S = 10.0


def capped_grace(grace_s: float | None) -> float:
    """The grace an executor really waits: finite, >= 0, at most MAX_STOP_GRACE_S."""
    if grace_s is None or math.isnan(grace_s):
        return DEFAULT_STOP_GRACE_S
    return min(max(grace_s, 0.0), MAX_STOP_GRACE_S)


@dataclass(frozen=True)
class LaunchSpec:
    run_id: str
    job: str
    argv: list[str]
    workdir: Path
    env: dict[str, str]
    secret_names: frozenset[str]
    log_path: Path
    shape: ShapeSpec
    max_runtime_s: float
    image: str | None = None
    mounts: tuple[Mount, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    dirs: dict[str, Path] = field(default_factory=dict)  # artifacts, input, output, checkpoint
    seconds_left: float | None = None  # to the run's deadline (kept across retries), by the engine's clock
    stop_grace_s: float = DEFAULT_STOP_GRACE_S
    requirements: Requirements | None = None  # the job's own; a Kubernetes Job requests these
    preemptible: bool = False  # a spot attempt: a disrupted pod ends it (Kubernetes retries others' itself)


LOST = "lost"  # the reason of an exit the executor could not observe (process, container or Job gone)


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int | None
    reason: str | None = None  # e.g. "exit code 3", "OOMKilled", LOST
    timed_out: bool = False  # stopped at its deadline by the backend itself (e.g. the run's watchdog)
    by_market: bool = False  # its capacity was taken away (container killed from outside, pod disrupted)

    @classmethod
    def lost(cls, exit_code: int | None = None) -> "ExitStatus":
        """The run ended out of sight: never retried, recorded FAILED with reason ``lost``."""
        return cls(exit_code, LOST)

    @classmethod
    def preempted(cls, reason: str, exit_code: int | None = None) -> "ExitStatus":
        """The run's capacity was taken from it, not by costwise: on spot the attempt is PREEMPTED and
        the run queued again; on on-demand it is a failure like any other."""
        return cls(exit_code, reason, by_market=True)

    @property
    def is_lost(self) -> bool:
        return self.reason == LOST

    @property
    def is_preempted(self) -> bool:
        return self.by_market


@dataclass(frozen=True)
class Usage:
    cpu_util_avg: float | None = None  # share of the shape's vCPUs used, 0..1
    mem_peak_bytes: int | None = None
    gpu_util_avg: float | None = None  # 0..1, None where there is no GPU


class Executor(Protocol):
    backend: str

    def launch(self, spec: LaunchSpec) -> dict[str, Any]: ...

    def wait(self, handle: dict[str, Any], timeout: float) -> ExitStatus | None: ...

    def sample(self, handle: dict[str, Any]) -> None: ...

    def usage(self, handle: dict[str, Any]) -> Usage: ...

    def cancel(self, handle: dict[str, Any], grace_s: float) -> ExitStatus: ...

    def adopt(self, handle: dict[str, Any]) -> bool: ...

    def describe(self, spec: LaunchSpec) -> dict[str, Any]: ...

    def forget(self, handle: dict[str, Any]) -> None: ...


class TrackedRuns:
    """What an executor keeps in memory about the runs it watches, by run id (thread-safe)."""

    def __init__(self):
        self._runs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _get(self, handle: dict[str, Any]):
        with self._lock:
            return self._runs.get(handle.get("run_id"))

    def _tracked(self, handle: dict[str, Any]):
        """The run as tracked here, adopting it first when this process has not seen it (after a
        restart); None when it is gone."""
        tracked = self._get(handle)
        if tracked is None and self.adopt(handle):
            tracked = self._get(handle)
        return tracked

    def adopt(self, handle: dict[str, Any]) -> bool:
        raise NotImplementedError


def redacted_env(spec: LaunchSpec) -> dict[str, str]:
    return {k: ("<secret>" if k in spec.secret_names else v) for k, v in sorted(spec.env.items())}
