"""One cgroup per local run, so a run's whole process tree can be killed however it forked.

Which mechanism is used when (chosen once per process; ``COSTWISE_CGROUPS=off`` forces the last):

1. **cgroup v2 with ``cgroup.kill``** (kernel 5.14+) where a child of this process's own v2 cgroup
   can be created: a pure v2 machine (``/sys/fs/cgroup``) or the unified mount of a hybrid one
   (``/sys/fs/cgroup/unified``). Killing is one write of ``1`` to ``cgroup.kill``: the kernel kills
   every member, including one forking at that instant.
2. **cgroup v1 freezer** where a child of this process's freezer cgroup can be created: freeze, SIGKILL
   every listed task, thaw, until the list is empty (a frozen task cannot fork while the list is read).
3. **None writable** (not root, a read-only cgroupfs in a container): the local executor falls back to
   the run's process group, session and full descendant set plus processes carrying its run id,
   stopped with SIGSTOP before SIGKILL and re-scanned until empty, with the supervisor a child
   subreaper (``PR_SET_CHILD_SUBREAPER``) so double-forked orphans re-parent to it, not to init.

The run's wrapper puts the job into the cgroup in the forked child *before* exec'ing it (``echo 0 >
cgroup.procs``), so nothing the job starts can begin outside it; the wrapper and its watchdog stay
outside, so they outlive the kill and record how the run ended. The cgroup is removed when the run
has ended (by the wrapper, and again by the executor if it is still there); the empty ones a crash
left behind are swept when a local executor starts (`sweep_stale`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

V2, V1_FREEZER = "v2", "v1-freezer"
PREFIX = "costwise-"
# A run's cgroup is empty from its creation until its job joins it (milliseconds later, in another
# process maybe): only an empty cgroup older than this is a crash's leftover.
STALE_AFTER_S = 60.0
_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Hierarchy:
    """Where this process creates its runs' cgroups, and which kind they are."""

    kind: str
    parent: Path

    def create(self, run_id: str) -> Path:
        path = self.parent / f"{PREFIX}{run_id}"
        path.mkdir(exist_ok=True)
        return path


def detect(mounts: str = "/proc/self/mounts", own: str = "/proc/self/cgroup") -> Hierarchy | None:
    """The best writable hierarchy for per-run cgroups here, or None (see the module docstring)."""
    if os.environ.get("COSTWISE_CGROUPS", "").lower() in ("off", "0", "no", "false"):
        return None
    try:
        mount_lines = Path(mounts).read_text().splitlines()
        own_lines = Path(own).read_text().splitlines()
    except OSError:
        return None
    for kind in (V2, V1_FREEZER):
        for parent in _candidates(kind, mount_lines, own_lines):
            if _usable(kind, parent):
                return Hierarchy(kind, parent)
    return None


def _candidates(kind: str, mount_lines: list[str], own_lines: list[str]):
    own_path = None
    for line in own_lines:
        _id, controllers, path = line.split(":", 2)
        if (kind == V2 and _id == "0" and controllers == "") or (
                kind == V1_FREEZER and "freezer" in controllers.split(",")):
            own_path = path
    if own_path is None:
        return
    for line in mount_lines:
        fields = line.split()
        if len(fields) < 4:
            continue
        fstype, options = fields[2], fields[3].split(",")
        if (kind == V2 and fstype == "cgroup2") or (kind == V1_FREEZER and fstype == "cgroup" and "freezer" in options):
            yield Path(fields[1]) / own_path.lstrip("/")


def _usable(kind: str, parent: Path) -> bool:
    probe = parent / f"{PREFIX}probe-{os.getpid()}"
    try:
        probe.mkdir(exist_ok=True)
    except OSError:
        return False
    try:
        return (probe / ("cgroup.kill" if kind == V2 else "freezer.state")).exists()
    finally:
        try:
            probe.rmdir()
        except OSError:
            pass


def pids(path: str | Path) -> list[int]:
    """The processes in a run's cgroup now ([] once it is gone)."""
    try:
        return [int(p) for p in Path(path, "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def signal_all(path: str | Path, sig: int) -> None:
    for pid in pids(path):
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def kill_all(path: str | Path, timeout_s: float = 5.0) -> bool:
    """SIGKILL every member, however fast it forks; True once the cgroup is empty."""
    path = Path(path)
    end = time.monotonic() + timeout_s
    while pids(path):
        if (path / "cgroup.kill").exists():
            _write(path / "cgroup.kill", "1")
        else:
            _write(path / "freezer.state", "FROZEN")
            signal_all(path, signal.SIGKILL)
            _write(path / "freezer.state", "THAWED")
        if time.monotonic() >= end:
            return False
        time.sleep(0.005)
    return True


def remove_if_empty(path: str | Path) -> bool:
    """Remove a run's cgroup if nothing is left in it: True when it is gone (or was), False while it
    has members. One rmdir, which the kernel refuses (EBUSY) while the cgroup has a process or a
    child -- no read of cgroup.procs first, which costs more than the rmdir while runs start and end."""
    path = Path(path)
    if not path.name.startswith(PREFIX):
        return False  # never remove a cgroup costwise did not create
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def remove(path: str | Path, timeout_s: float = 2.0) -> bool:
    """Remove a finished run's cgroup (killing what is left in it); True when it is gone."""
    path = Path(path)
    if not path.name.startswith(PREFIX):
        return False  # never remove a cgroup costwise did not create
    if remove_if_empty(path):
        return True
    end = time.monotonic() + timeout_s
    while path.exists():
        kill_all(path, timeout_s=max(end - time.monotonic(), 0.0))
        try:
            path.rmdir()
        except FileNotFoundError:
            return True
        except OSError:  # EBUSY: the last members are still exiting
            if time.monotonic() >= end:
                return False
            time.sleep(0.01)
    return True


def sweep_stale(hierarchy: Hierarchy, keep: frozenset[str] = frozenset(), stale_after_s: float = STALE_AFTER_S,
                now: float | None = None) -> list[str]:
    """Remove the empty ``costwise-*`` cgroups that crashed runs left (one listdir); their names.

    Kept: a cgroup with processes (or child cgroups: rmdir refuses), one younger than
    `stale_after_s`, and one of a run in `keep` (run ids). Removing the empty cgroup of a run whose
    job has just ended is harmless: its wrapper and executor both tolerate a cgroup already gone.
    """
    now = time.time() if now is None else now
    try:
        names = os.listdir(hierarchy.parent)
    except OSError:
        return []
    removed = []
    for name in names:
        if not name.startswith(PREFIX) or name[len(PREFIX):] in keep:
            continue
        path = hierarchy.parent / name
        try:
            if now - path.stat().st_mtime < stale_after_s or pids(path):
                continue
            path.rmdir()
        except OSError:  # gone meanwhile, or busy: not ours to sweep now
            continue
        removed.append(name)
    return removed


def become_subreaper() -> bool:
    """Make orphaned descendants of this process re-parent to it rather than to init (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError:
        pass
