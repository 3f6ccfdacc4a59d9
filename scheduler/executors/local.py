"""Local processes: one session and one cgroup per run, utilization over the whole tree, no survivors.

A run is started through a small ``sh`` wrapper (``local_wrapper``) in a new session: it writes the
job's exit code to a file, so the code survives the supervisor (a restarted daemon reads it), and
its watchdog stops the run at its deadline even when no supervisor is left. Where a per-run cgroup
can be created (``cgroups``: v2 ``cgroup.kill``, else the v1 freezer) the job runs in it, and stopping
the run kills the whole cgroup, escapees included. Stopping also signals the run's process group,
session, descendants and every process carrying its ``COSTWISE_RUN_ID`` (all there is where no cgroup
can be made: then SIGSTOP before SIGKILL, re-scanned until empty, with this process a subreaper so
double-forked orphans stay findable), SIGTERM first and SIGKILL after the grace (capped).
"""

from __future__ import annotations

import os
import select
import signal
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from .gpu import GPU, GpuSamples
from . import cgroups, local_wrapper
from .base import ExitStatus, LaunchSpec, TrackedRuns, Usage, capped_grace, redacted_env

TIMED_OUT_REASON = "max runtime reached (stopped by the run's watchdog)"


@dataclass
class _Tracked:
    pid: int
    run_id: str
    vcpus: float
    gpus: float
    owned: bool  # our child: reaped with wait4 (which also gives its CPU time)
    root: psutil.Process | None
    started: float
    pidfd: int | None = None
    procs: dict[int, psutil.Process] = field(default_factory=dict)
    cpu_s: float = 0.0
    mem_peak: int = 0
    gpu_samples: GpuSamples = field(default_factory=GpuSamples)
    ended: float | None = None
    reaped_code: int | None = None
    final: ExitStatus | None = None


class LocalExecutor(TrackedRuns):
    backend = "local"

    def __init__(self, gpu=GPU, cgroup_hierarchy: cgroups.Hierarchy | None | bool = True):
        super().__init__()
        self._gpu = gpu
        self._cgroups = cgroups.detect() if cgroup_hierarchy is True else (cgroup_hierarchy or None)
        if self._cgroups is not None:
            cgroups.sweep_stale(self._cgroups)  # what a crash left; nothing is tracked yet
        # without cgroups, orphans that double-fork away re-parent to us, not to init
        self._subreaper = self._cgroups is None and cgroups.become_subreaper()

    # -- launch --------------------------------------------------------------------------------
    def launch(self, spec: LaunchSpec) -> dict[str, Any]:
        exit_file = spec.log_path.parent / "exit_code"
        exit_file.unlink(missing_ok=True)
        local_wrapper.timed_out_marker(exit_file).unlink(missing_ok=True)
        spec.log_path.touch()
        cgroup = self._make_cgroup(spec.run_id)
        left = spec.max_runtime_s if spec.seconds_left is None else spec.seconds_left
        argv = local_wrapper.argv(exit_file, spec.workdir, left, capped_grace(spec.stop_grace_s), cgroup, spec.argv)
        # posix_spawn (vfork underneath) rather than fork: quicker from a big daemon, and the
        # child's ru_maxrss then measures the job, not a copy of the daemon
        try:
            pid = os.posix_spawn(
                "/bin/sh",
                argv,
                spec.env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, str(spec.log_path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                ],
                setsid=True,
            )
        except OSError:
            if cgroup:
                cgroups.remove(cgroup)
            raise
        root = psutil.Process(pid)
        handle = {
            "pid": pid,
            "create_time": root.create_time(),
            "exit_file": str(exit_file),
            "run_id": spec.run_id,
            "vcpus": spec.shape.vcpus,
            "gpus": spec.shape.gpus,
            "cgroup": str(cgroup) if cgroup else None,
        }
        self._track(handle, True, root)
        return handle

    def _make_cgroup(self, run_id: str) -> Path | None:
        if self._cgroups is None:
            return None
        try:
            return self._cgroups.create(run_id)
        except OSError:
            return None  # e.g. a cgroup limit reached: the run goes without, stopped by scan

    def describe(self, spec: LaunchSpec) -> dict[str, Any]:
        return {
            "backend": "local",
            "argv": spec.argv,
            "cwd": str(spec.workdir),
            "env": redacted_env(spec),
            "log": str(spec.log_path),
            "process_group": "own session (setsid)",
            "cgroup": self._cgroups.kind if self._cgroups else None,
            "shape": {"name": spec.shape.name, "vcpus": spec.shape.vcpus, "memory_gib": spec.shape.memory_gib},
            "max_runtime_s": spec.max_runtime_s,
        }

    def _track(self, handle, owned: bool, root) -> _Tracked:
        tracked = _Tracked(
            pid=handle["pid"], run_id=handle["run_id"], vcpus=handle["vcpus"], gpus=handle.get("gpus", 0),
            owned=owned, root=root, started=time.monotonic(),
        )
        try:
            tracked.pidfd = os.pidfd_open(handle["pid"])
        except (OSError, AttributeError):
            tracked.pidfd = None
        tracked.procs[root.pid] = root
        with self._lock:
            self._runs[handle["run_id"]] = tracked
        return tracked

    # -- waiting -------------------------------------------------------------------------------
    def wait(self, handle: dict[str, Any], timeout: float) -> ExitStatus | None:
        tracked = self._get(handle)
        if tracked is None:
            return None if self.adopt(handle) else self._ended_unwatched(handle)
        if tracked.final is not None:
            return tracked.final
        status = self._check(tracked, handle)
        if status is None and timeout > 0:
            self._block(tracked, timeout)
            status = self._check(tracked, handle)
        return status

    def _block(self, tracked: _Tracked, timeout: float) -> None:
        if tracked.pidfd is not None:
            select.select([tracked.pidfd], [], [], timeout)
        else:
            time.sleep(min(timeout, 0.05))

    def _check(self, tracked: _Tracked, handle) -> ExitStatus | None:
        """The exit status if the run's root process has ended (reaping it when it is ours)."""
        if tracked.owned:
            try:
                pid, status, rusage = os.wait4(tracked.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status, rusage = tracked.pid, None, None
            if pid == 0:
                return None
            if rusage is not None:  # (not ru_maxrss: it counts the spawner's memory before exec)
                tracked.cpu_s = max(tracked.cpu_s, rusage.ru_utime + rusage.ru_stime)
            code = self._exit_file_code(handle)
            if code is None and status is not None:
                code = os.waitstatus_to_exitcode(status)
        else:
            if _alive(tracked.root):
                return None
            code = self._exit_file_code(handle)
            if code is None:
                code = tracked.reaped_code
        return self._finish(tracked, handle, code)

    def _finish(self, tracked: _Tracked, handle, code: int | None) -> ExitStatus:
        tracked.ended = time.monotonic()
        # background processes the run left in its group, cgroup or tree: nobody pays for them,
        # so stop them (a full scan by run id is kept for timeouts and cancels)
        cgroup = handle.get("cgroup")
        if (_group_alive(handle["pid"]) or any(_alive(p) for p in tracked.procs.values())
                or (cgroups.pids(cgroup) if cgroup else self._orphans())):
            self._terminate(handle, tracked, self._collect(handle, tracked), grace_s=1.0)
        if cgroup:
            cgroups.remove(cgroup)
        self._kill_wrapper_leftovers(handle)
        if tracked.pidfd is not None:
            os.close(tracked.pidfd)
            tracked.pidfd = None
        tracked.final = _status(handle, code)
        return tracked.final

    def _ended_unwatched(self, handle) -> ExitStatus:
        """How a run that ended while nobody here tracked it went (its files say), its cgroup removed."""
        if handle.get("cgroup"):
            cgroups.remove(handle["cgroup"])
        self._kill_wrapper_leftovers(handle)
        status = _status(handle, self._exit_file_code(handle))
        return status if status.timed_out else ExitStatus(status.exit_code, "lost")

    @staticmethod
    def _kill_wrapper_leftovers(handle) -> None:
        """A SIGKILLed wrapper leaves its watchdog asleep in its group until the deadline."""
        if int(handle.get("pid") or 0) > 0 and _group_alive(handle["pid"]):
            local_wrapper.kill_leftovers(handle["exit_file"], handle["pid"])

    @staticmethod
    def _exit_file_code(handle) -> int | None:
        return _read_exit_code(handle["exit_file"])

    # -- utilization ---------------------------------------------------------------------------
    def sample(self, handle: dict[str, Any]) -> None:
        tracked = self._get(handle)
        if tracked is None or tracked.final is not None or tracked.root is None:
            return
        tree = [tracked.root]
        if handle.get("cgroup"):  # the job and whatever it started, escapees included; not the watchdog
            pids = cgroups.pids(handle["cgroup"])
        else:
            pids = _descendant_pids(tracked.root.pid) if _HAS_CHILDREN_FILES else _psutil_descendants(tracked.root)
            pids += self._orphans()
            self._reap_orphans()
        for pid in pids:
            proc = tracked.procs.get(pid)
            if proc is None:
                try:
                    proc = psutil.Process(pid)
                except psutil.Error:
                    continue
            tree.append(proc)
        rss = cpu = 0.0
        hwm = 0
        for proc in tree:
            proc = tracked.procs.setdefault(proc.pid, proc)
            try:
                with proc.oneshot():
                    rss += proc.memory_info().rss
                    t = proc.cpu_times()
                    cpu += t.user + t.system + t.children_user + t.children_system
                hwm = max(hwm, _peak_rss(proc.pid))
            except psutil.Error:
                continue
        # the tree's RSS now, or the largest peak any one process reached since its exec
        tracked.mem_peak = max(tracked.mem_peak, int(rss), hwm)
        tracked.cpu_s = max(tracked.cpu_s, cpu)
        if tracked.gpus:
            tracked.gpu_samples.take(self._gpu)

    def usage(self, handle: dict[str, Any]) -> Usage:
        tracked = self._get(handle)
        if tracked is None:
            return Usage()
        wall = (tracked.ended or time.monotonic()) - tracked.started
        cpu = None
        if wall > 0 and tracked.vcpus:
            cpu = min(tracked.cpu_s / (wall * tracked.vcpus), 1.0)
        gpu = tracked.gpu_samples.mean()
        return Usage(cpu, tracked.mem_peak or None, gpu)

    def forget(self, handle: dict[str, Any]) -> None:
        with self._lock:
            tracked = self._runs.pop(handle["run_id"], None)
        if tracked is not None and tracked.pidfd is not None:
            os.close(tracked.pidfd)

    # -- stopping ------------------------------------------------------------------------------
    def cancel(self, handle: dict[str, Any], grace_s: float) -> ExitStatus:
        grace_s = capped_grace(grace_s)
        tracked = self._tracked(handle)
        if tracked is None:
            self._terminate(handle, None, self._collect(handle, None), grace_s)
            return self._ended_unwatched(handle)
        if tracked.final is not None:
            return tracked.final
        self._terminate(handle, tracked, self._collect(handle, tracked), grace_s)
        status = None
        for _ in range(200):
            status = self._check(tracked, handle)
            if status is not None:
                break
            self._block(tracked, 0.05)
        return status or ExitStatus(None, "did not stop")

    def _collect(self, handle, tracked: _Tracked | None) -> list[psutil.Process]:
        """Every live process of the run: its cgroup, group, session, tree, orphans re-parented here
        and whatever carries its run id. With a cgroup, not the wrapper: it outlives its job to
        record the end."""
        pgid, run_id, me, cgroup = handle["pid"], handle["run_id"], os.getpid(), handle.get("cgroup")
        found: dict[int, psutil.Process] = {}

        def add(proc: psutil.Process) -> None:
            if proc.pid != me and proc.pid not in found and _alive(proc):
                found[proc.pid] = proc

        for proc in list(tracked.procs.values()) if tracked is not None else ():
            add(proc)
        for pid in cgroups.pids(cgroup) if cgroup else self._orphans():
            try:
                add(psutil.Process(pid))
            except psutil.Error:
                continue
        for proc in psutil.process_iter():
            if proc.pid == me or proc.pid in found:
                continue
            try:
                if (os.getpgid(proc.pid) == pgid or os.getsid(proc.pid) == pgid
                        or proc.environ().get("COSTWISE_RUN_ID") == run_id):
                    add(proc)
            except (psutil.Error, OSError):
                continue
        if cgroup:
            found.pop(pgid, None)
        return list(found.values())

    def _terminate(self, handle, tracked, procs: list[psutil.Process], grace_s: float) -> None:
        """SIGTERM everything, SIGKILL what is left after the grace period, until nothing is left."""
        cgroup = handle.get("cgroup")
        group = None if cgroup else handle["pid"]  # with a cgroup the wrapper is left to record the end
        _signal_all(group, procs, signal.SIGTERM)
        deadline = time.monotonic() + capped_grace(grace_s)
        while time.monotonic() < deadline and (any(_alive(p) for p in procs) or (cgroup and cgroups.pids(cgroup))):
            if tracked is not None and tracked.owned:
                self._reap_quietly(tracked)
            time.sleep(0.02)
        for _ in range(50):
            if cgroup:
                cgroups.kill_all(cgroup, timeout_s=1.0)
            procs = [p for p in procs if _alive(p)] + [
                p for p in self._collect(handle, tracked) if p.pid not in {q.pid for q in procs}
            ]
            if not procs:
                return
            if not cgroup:  # stopped processes cannot fork: look once more for what they just started
                _signal_all(group, procs, signal.SIGSTOP)
                procs += [p for p in self._collect(handle, tracked) if p.pid not in {q.pid for q in procs}]
            _signal_all(group, procs, signal.SIGKILL)
            time.sleep(0.02)
            self._reap_orphans()

    def _orphans(self) -> list[int]:
        """Processes that double-forked away from a run and re-parented to this subreaper. Nothing
        says whose they are, so they count as a run's only while it is the one run tracked here."""
        if not self._subreaper:
            return []
        with self._lock:
            if len(self._runs) != 1:
                return []
            wrappers = {t.pid for t in self._runs.values()}
        orphans = [pid for pid in _child_pids(os.getpid()) if pid not in wrappers]
        return orphans + [d for pid in orphans for d in _descendant_pids(pid)]

    def _reap_orphans(self) -> None:
        """Collect the exit status of orphans re-parented here, so they do not stay zombies."""
        if not self._subreaper:
            return
        with self._lock:
            wrappers = {t.pid for t in self._runs.values()}
        for pid in _child_pids(os.getpid()):
            if pid not in wrappers:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    continue

    @staticmethod
    def _reap_quietly(tracked: _Tracked) -> None:
        """Reap our own child so it does not linger as a zombie; its status stays in the exit file."""
        try:
            pid, _status, rusage = os.wait4(tracked.pid, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            tracked.owned = False  # reaped: from now on we only read the exit file
            tracked.reaped_code = os.waitstatus_to_exitcode(_status)
            tracked.cpu_s = max(tracked.cpu_s, rusage.ru_utime + rusage.ru_stime)

    # -- restarts ------------------------------------------------------------------------------
    def adopt(self, handle: dict[str, Any]) -> bool:
        if self._get(handle) is not None:
            return True  # still tracked here (e.g. its supervisor thread died): keep what we know
        if int(handle.get("pid") or 0) <= 0:
            return False
        try:
            root = psutil.Process(handle["pid"])
            same = abs(root.create_time() - handle["create_time"]) < 0.01
        except psutil.Error:
            return False
        if not same or not _alive(root):
            return False
        self._track(handle, False, root)
        return True

    def find_launch(self, run_id: str, exit_file: Path) -> dict[str, Any] | None:
        """The handle of a run whose wrapper was started but whose handle was never saved (its
        launcher died in between), from the wrapper's command line; None if no wrapper runs."""
        for proc in psutil.process_iter(["cmdline"]):
            try:
                args = local_wrapper.parse(proc.info["cmdline"] or [])
                # the watchdog is a fork of the wrapper, same command line: the wrapper leads the session
                if args and args["exit_file"] == str(exit_file) and os.getsid(proc.pid) == proc.pid:
                    return {"pid": proc.pid, "create_time": proc.create_time(), "exit_file": str(exit_file),
                            "run_id": run_id, "cgroup": args["cgroup"]}
            except (psutil.Error, OSError):
                continue
        return None


_HAS_CHILDREN_FILES = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def _status(handle, code: int | None) -> ExitStatus:
    """A run's end as its wrapper recorded it: timed out if its watchdog fired, else by exit code."""
    if local_wrapper.timed_out_marker(handle["exit_file"]).exists():
        return ExitStatus(code, TIMED_OUT_REASON, timed_out=True)
    return ExitStatus(code, None if code == 0 else ("exit code unknown" if code is None else f"exit code {code}"))


def _read_exit_code(path: str) -> int | None:
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


def _child_pids(pid: int) -> list[int]:
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


def _psutil_descendants(root: psutil.Process) -> list[int]:
    try:
        return [p.pid for p in root.children(recursive=True)]
    except psutil.Error:
        return []


def _descendant_pids(pid: int) -> list[int]:
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


def _peak_rss(pid: int) -> int:
    """VmHWM: a process's peak resident memory since its exec, in bytes (0 if unreadable)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _alive(proc: psutil.Process | None) -> bool:
    if proc is None:
        return False
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _signal_all(pgid: int | None, procs: list[psutil.Process], sig: int) -> None:
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
