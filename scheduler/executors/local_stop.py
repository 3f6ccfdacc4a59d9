"""Stopping a local run: find every process it has, SIGTERM, SIGKILL after the grace, until none is left.

The half of ``LocalExecutor`` that ends processes, as a base class: it finds a run's processes in its
cgroup, process group, session, tree, among the orphans re-parented to this process (a subreaper when
there are no cgroups) and by their ``COSTWISE_RUN_ID``; it reaps what is its own child so nothing
stays a zombie. It reads ``self._subreaper`` and the tracked runs of ``TrackedRuns``.
"""

from __future__ import annotations

import os
import signal
import time

import psutil

from . import cgroups, local_wrapper
from .base import TrackedRuns, capped_grace
from .local_procs import LocalRun, alive, child_pids, descendant_pids, group_alive, signal_all


class LocalStopping(TrackedRuns):
    _subreaper: bool = False

    def _collect(self, handle, tracked: LocalRun | None) -> list[psutil.Process]:
        """Every live process of the run: its cgroup, group, session, tree, orphans re-parented here
        and whatever carries its run id. With a cgroup, not the wrapper: it outlives its job to
        record the end."""
        pgid, run_id, me, cgroup = handle["pid"], handle["run_id"], os.getpid(), handle.get("cgroup")
        found: dict[int, psutil.Process] = {}

        def add(proc: psutil.Process) -> None:
            if proc.pid != me and proc.pid not in found and alive(proc):
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
        signal_all(group, procs, signal.SIGTERM)
        deadline = time.monotonic() + capped_grace(grace_s)
        while time.monotonic() < deadline and (any(alive(p) for p in procs) or (cgroup and cgroups.pids(cgroup))):
            if tracked is not None and tracked.owned:
                self._reap_quietly(tracked)
            time.sleep(0.02)
        for _ in range(50):
            if cgroup:
                cgroups.kill_all(cgroup, timeout_s=1.0)
            procs = [p for p in procs if alive(p)] + [
                p for p in self._collect(handle, tracked) if p.pid not in {q.pid for q in procs}
            ]
            if not procs:
                return
            if not cgroup:  # stopped processes cannot fork: look once more for what they just started
                signal_all(group, procs, signal.SIGSTOP)
                procs += [p for p in self._collect(handle, tracked) if p.pid not in {q.pid for q in procs}]
            signal_all(group, procs, signal.SIGKILL)
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
        orphans = [pid for pid in child_pids(os.getpid()) if pid not in wrappers]
        return orphans + [d for pid in orphans for d in descendant_pids(pid)]

    def _reap_orphans(self) -> None:
        """Collect the exit status of orphans re-parented here, so they do not stay zombies."""
        if not self._subreaper:
            return
        with self._lock:
            wrappers = {t.pid for t in self._runs.values()}
        for pid in child_pids(os.getpid()):
            if pid not in wrappers:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    continue

    @staticmethod
    def _reap_quietly(tracked: LocalRun) -> None:
        """Reap our own child so it does not linger as a zombie; its status stays in the exit file."""
        try:
            pid, _status, rusage = os.wait4(tracked.pid, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            tracked.owned = False  # reaped: from now on we only read the exit file
            tracked.reaped_code = os.waitstatus_to_exitcode(_status)
            tracked.cpu_s = max(tracked.cpu_s, rusage.ru_utime + rusage.ru_stime)

    @staticmethod
    def _kill_wrapper_leftovers(handle) -> None:
        """A SIGKILLed wrapper leaves its watchdog asleep in its group until the deadline."""
        if int(handle.get("pid") or 0) > 0 and group_alive(handle["pid"]):
            local_wrapper.kill_leftovers(handle["exit_file"], handle["pid"])
