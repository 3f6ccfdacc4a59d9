"""What the local executor knows and reads about a run's processes, and how it signals them.

``LocalRun`` is what it keeps in memory per run; the rest are plain functions: the process tree
(``/proc/PID/task/TID/children``, psutil where that file is missing), peak memory, liveness, the exit
code file the run's wrapper writes, and the run's end as that wrapper recorded it.
"""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import dataclass, field

import psutil

from . import local_wrapper
from .base import ExitStatus
from .gpu import GpuSamples

TIMED_OUT_REASON = "max runtime reached (stopped by the run's watchdog)"

HAS_CHILDREN_FILES = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


@dataclass
class LocalRun:
    pid: int
    run_id: str
    vcpus: float
    gpus: float
    owned: bool  # our child: reaped with wait4 (which also gives its CPU time)
    root: psutil.Process | None
    started: float
    cgroup: str | None = None
    pidfd: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)  # a sample and the run's end, one at a time
    procs: dict[int, psutil.Process] = field(default_factory=dict)
    cpu_s: float = 0.0
    mem_peak: int = 0
    gpu_samples: GpuSamples = field(default_factory=GpuSamples)
    ended: float | None = None
    reaped_code: int | None = None
    final: ExitStatus | None = None


def run_status(handle, code: int | None) -> ExitStatus:
    """A run's end as its wrapper recorded it: timed out if its watchdog fired, else by exit code."""
    if local_wrapper.timed_out_marker(handle["exit_file"]).exists():
        return ExitStatus(code, TIMED_OUT_REASON, timed_out=True)
    return ExitStatus(code, None if code == 0 else ("exit code unknown" if code is None else f"exit code {code}"))


def read_exit_code(path: str) -> int | None:
    """The exit code file's number; a link, FIFO or anything but a small regular file reads as None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return int(os.read(fd, 32).strip())
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def child_pids(pid: int) -> list[int]:
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                found.extend(int(k) for k in handle.read().split())
        except (OSError, ValueError):
            continue
    return found


def psutil_descendants(root: psutil.Process) -> list[int]:
    try:
        return [p.pid for p in root.children(recursive=True)]
    except psutil.Error:
        return []


def descendant_pids(pid: int) -> list[int]:
    """Children, grandchildren... from /proc/PID/task/TID/children: a few small reads instead of
    psutil's scan of every process on the machine (which each 10 ms sample would pay)."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as handle:
                    kids = [int(k) for k in handle.read().split()]
            except (OSError, ValueError):
                continue
            found.extend(kids)
            stack.extend(kids)
    return found


def peak_rss(pid: int) -> int:
    """VmHWM: a process's peak resident memory since its exec, in bytes (0 if unreadable)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def alive(proc: psutil.Process | None) -> bool:
    if proc is None:
        return False
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def signal_all(pgid: int | None, procs: list[psutil.Process], sig: int) -> None:
    if pgid is not None:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass
