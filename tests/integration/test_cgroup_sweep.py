"""Empty per-run cgroups a crash left behind are swept when a local executor starts, nothing else."""

import os
import subprocess
import time
import uuid

import pytest

from scheduler.executors import cgroups
from scheduler.executors.local import LocalExecutor


@pytest.fixture
def hierarchy():
    """A parent cgroup of this test's own (not prefixed, so no sweep elsewhere touches it): the
    sweep under test never sees the cgroups of runs other tests are launching at the same time."""
    found = cgroups.detect()
    if found is None:
        pytest.skip("SKIPPED LOUDLY: no writable cgroup hierarchy here (root on cgroup v2 or a v1 freezer)")
    parent = found.parent / f"sweep-test-{uuid.uuid4().hex[:8]}"
    parent.mkdir()
    yield cgroups.Hierarchy(found.kind, parent)
    for child in parent.iterdir():
        if child.is_dir():
            cgroups.kill_all(child)
            child.rmdir()
    parent.rmdir()


def aged(path, seconds=3600.0):
    os.utime(path, (time.time() - seconds, time.time() - seconds))
    return path


def sleeper_in(cgroup):
    """A process that has joined ``cgroup`` (sleeping a minute): the caller kills it."""
    sleeper = subprocess.Popen(["sh", "-c", f'echo $$ > "{cgroup}/cgroup.procs" && exec sleep 60'])
    for _ in range(200):
        if cgroups.pids(cgroup):
            break
        time.sleep(0.01)
    return sleeper


def test_a_starting_local_executor_sweeps_only_old_empty_run_cgroups(hierarchy):
    crashed = aged(hierarchy.create("r-crashed"))
    just_created = hierarchy.create("r-launching")  # its job joins it in a moment
    busy = aged(hierarchy.create("r-busy"))
    not_ours = hierarchy.parent / "someone-else"
    not_ours.mkdir()
    aged(not_ours)
    sleeper = sleeper_in(busy)
    try:
        assert cgroups.pids(busy) == [sleeper.pid]
        aged(busy)

        LocalExecutor(cgroup_hierarchy=hierarchy)

        assert not crashed.exists()
        assert just_created.exists() and busy.exists() and not_ours.exists()
        assert sleeper.poll() is None  # a run's process is never touched
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_run_named_to_keep_is_left_even_when_empty(hierarchy):
    kept, swept = aged(hierarchy.create("r-kept")), aged(hierarchy.create("r-swept"))
    assert cgroups.sweep_stale(hierarchy, keep=frozenset({"r-kept"})) == ["costwise-r-swept"]
    assert kept.exists() and not swept.exists()


def test_an_ended_runs_cgroup_is_removed_by_one_rmdir_only_when_empty(hierarchy):
    empty, busy = hierarchy.create("r-ended"), hierarchy.create("r-left-something")
    not_ours = hierarchy.parent / "someone-else"
    not_ours.mkdir()
    sleeper = sleeper_in(busy)
    try:
        assert cgroups.remove_if_empty(empty) and not empty.exists()
        assert cgroups.remove_if_empty(empty)  # gone already: nothing left in it either
        assert not cgroups.remove_if_empty(busy) and cgroups.pids(busy) == [sleeper.pid]  # the kernel refused
        assert not cgroups.remove_if_empty(not_ours) and not_ours.exists()  # never one costwise did not create
        assert cgroups.remove(busy) and not busy.exists()  # the full removal kills what is left first
        assert sleeper.wait(10) != 0
    finally:
        sleeper.kill()
        sleeper.wait()
