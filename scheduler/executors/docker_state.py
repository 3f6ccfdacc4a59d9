"""What the Docker engine says about a run's container, read into costwise's terms (pure).

The exit status from the container's state (which survives a daemon restart: exit code,
``OOMKilled``, the engine's error; a kill costwise did not send is a preemption), and utilization from one-shot stats: CPU as cumulative CPU time
since the container started over its vCPUs, memory as the working set ``docker stats`` shows.
"""

from __future__ import annotations

from .base import ExitStatus
from .logcopy import parse_ts

# 128 + SIGKILL, 128 + SIGTERM: what the container's init exits with when the job is killed or stopped
KILLED_EXIT_CODES = (137, 143)


def status_from_state(state: dict, stopped_here: bool = False) -> ExitStatus:
    """``stopped_here``: costwise itself stopped the container (cancel, deadline, preempt); a kill
    code without it means someone else killed it (``docker kill``, the host reclaimed): preempted."""
    code = state.get("ExitCode")
    if state.get("OOMKilled"):
        return ExitStatus(code, "OOMKilled")
    if code == 0:
        return ExitStatus(0)
    if code in KILLED_EXIT_CODES and not stopped_here and not state.get("Error"):
        return ExitStatus.preempted(f"killed from outside (exit code {code})", code)
    if state.get("Error"):
        return ExitStatus(code, f"exit code {code}: {state['Error']}")
    return ExitStatus(code, f"exit code {code}")


def cpu_util(stats: dict, started_epoch: float | None, vcpus: float) -> float | None:
    """Share of the shape's vCPUs used since the container started; None when the stats cannot say."""
    cpu_ns = stats.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage")
    read = epoch(stats.get("read"))
    if cpu_ns and read and started_epoch and vcpus:
        elapsed = read - started_epoch
        if elapsed > 0:
            return min(cpu_ns / 1e9 / (elapsed * vcpus), 1.0)
    return None


def working_set(stats: dict) -> int | None:
    """Memory used less the inactive page cache, in bytes; None when the stats carry no usage."""
    mem = stats.get("memory_stats", {})
    if not mem.get("usage"):
        return None
    inner = mem.get("stats", {})
    cache = inner.get("total_inactive_file", inner.get("inactive_file", 0))
    return int(mem["usage"] - cache)


def epoch(stamp: str | None) -> float | None:
    if not stamp or stamp.startswith("0001-"):
        return None
    try:
        return parse_ts(stamp)
    except ValueError:
        return None
