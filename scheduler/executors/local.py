"""Local processes: one session and one cgroup per run, utilization over the whole tree, no survivors.

A run is started through a small ``sh`` wrapper (``local_wrapper``) in a new session: it writes the
job's exit code to a file, so the code survives the supervisor (a restarted daemon reads it), and
its watchdog stops the run at its deadline even when no supervisor is left. Where a per-run cgroup
can be created (``cgroups``: v2 ``cgroup.kill``, else the v1 freezer) the job runs in it, and stopping
the run kills the whole cgroup, escapees included. Stopping also signals the run's process group,
session, descendants and every process carrying its ``COSTWISE_RUN_ID`` (all there is where no cgroup
can be made: then SIGSTOP before SIGKILL, re-scanned until empty, with this process a subreaper so
double-forked orphans stay findable), SIGTERM first and SIGKILL after the grace (capped).

Here: launch, supervision (wait, sampling, usage) and recovery after a restart (adopt, find_launch);
stopping is ``local_stop``, what is read from /proc and the exit code file is ``local_procs``.
"""

from __future__ import annotations

import os
import select
import time
from pathlib import Path
from typing import Any

import psutil

from . import cgroups, local_wrapper
from .base import ExitStatus, LaunchSpec, Usage, capped_grace, redacted_env
from .gpu import GPU
from .local_procs import (HAS_CHILDREN_FILES, TIMED_OUT_REASON, LocalRun, alive, descendant_pids, group_alive,
                          peak_rss, psutil_descendants, read_exit_code, run_status)
from .local_sampler import Sampler
from .local_stop import LocalStopping

__all__ = ["LocalExecutor", "TIMED_OUT_REASON"]


class LocalExecutor(LocalStopping):
    backend = "local"
    samples_itself = True  # one thread samples every tracked run (local_sampler); supervisors only wait

    def __init__(self, gpu=GPU, cgroup_hierarchy: cgroups.Hierarchy | None | bool = True):
        super().__init__()
        self._gpu = gpu
        self._cgroups = cgroups.detect() if cgroup_hierarchy is True else (cgroup_hierarchy or None)
        if self._cgroups is not None:
            cgroups.sweep_stale(self._cgroups)  # what a crash left; nothing is tracked yet
        # without cgroups, orphans that double-fork away re-parent to us, not to init
        self._subreaper = self._cgroups is None and cgroups.become_subreaper()
        self._sampler = Sampler(self._sample_tracked)

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

    def _track(self, handle, owned: bool, root) -> LocalRun:
        tracked = LocalRun(
            pid=handle["pid"], run_id=handle["run_id"], vcpus=handle["vcpus"], gpus=handle.get("gpus", 0),
            owned=owned, root=root, started=time.monotonic(), cgroup=handle.get("cgroup"),
        )
        try:
            tracked.pidfd = os.pidfd_open(handle["pid"])
        except (OSError, AttributeError):
            tracked.pidfd = None
        tracked.procs[root.pid] = root
        with self._lock:
            self._runs[handle["run_id"]] = tracked
        self._sampler.add(tracked)
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

    def _block(self, tracked: LocalRun, timeout: float) -> None:
        if tracked.pidfd is not None:
            select.select([tracked.pidfd], [], [], timeout)
        else:
            time.sleep(min(timeout, 0.05))

    def _check(self, tracked: LocalRun, handle) -> ExitStatus | None:
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
            if alive(tracked.root):
                return None
            code = self._exit_file_code(handle)
            if code is None:
                code = tracked.reaped_code
        return self._finish(tracked, handle, code)

    def _finish(self, tracked: LocalRun, handle, code: int | None) -> ExitStatus:
        with tracked.lock:  # not while the sampler thread reads the run's processes
            return self._finish_locked(tracked, handle, code)

    def _finish_locked(self, tracked: LocalRun, handle, code: int | None) -> ExitStatus:
        tracked.ended = time.monotonic()
        # background processes the run left in its group, cgroup or tree: nobody pays for them,
        # so stop them (a full scan by run id is kept for timeouts and cancels)
        cgroup = handle.get("cgroup")
        if (group_alive(handle["pid"]) or any(alive(p) for p in tracked.procs.values())
                or (not cgroups.remove_if_empty(cgroup) if cgroup else self._orphans())):
            self._terminate(handle, tracked, self._collect(handle, tracked), grace_s=1.0)
        if cgroup:
            cgroups.remove(cgroup)  # (gone already unless something was left in it)
        self._kill_wrapper_leftovers(handle)
        if tracked.pidfd is not None:
            os.close(tracked.pidfd)
            tracked.pidfd = None
        tracked.final = run_status(handle, code)
        return tracked.final

    def _ended_unwatched(self, handle) -> ExitStatus:
        """How a run that ended while nobody here tracked it went (its files say), its cgroup removed."""
        if handle.get("cgroup"):
            cgroups.remove(handle["cgroup"])
        self._kill_wrapper_leftovers(handle)
        status = run_status(handle, self._exit_file_code(handle))
        return status if status.timed_out else ExitStatus(status.exit_code, "lost")

    @staticmethod
    def _exit_file_code(handle) -> int | None:
        return read_exit_code(handle["exit_file"])

    # -- utilization ---------------------------------------------------------------------------
    def sample(self, handle: dict[str, Any]) -> None:
        """Sample one run now (the sampler thread samples every tracked run on its own cadence)."""
        tracked = self._get(handle)
        if tracked is not None:
            self._sample_tracked(tracked)

    def _sample_tracked(self, tracked: LocalRun) -> bool:
        """Add a sample of the run's tree to its usage; False once it ended or is no longer tracked."""
        with self._lock:
            current = self._runs.get(tracked.run_id) is tracked
        if not current or tracked.final is not None or tracked.root is None:
            return False
        with tracked.lock:
            if tracked.final is None:
                self._sample_tree(tracked)
        return tracked.final is None

    def _sample_tree(self, tracked: LocalRun) -> None:
        tree = [tracked.root]
        if tracked.cgroup:  # the job and whatever it started, escapees included; not the watchdog
            pids = cgroups.pids(tracked.cgroup)
        else:
            pids = descendant_pids(tracked.root.pid) if HAS_CHILDREN_FILES else psutil_descendants(tracked.root)
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
                hwm = max(hwm, peak_rss(proc.pid))
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
        if not same or not alive(root):
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

