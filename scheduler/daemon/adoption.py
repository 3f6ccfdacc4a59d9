"""Adopting a live run whose supervisor is gone (after a crash, a `kill -9`, a killed `run --wait`,
or one of the daemon's own supervisor threads that died), or recording how it ended when nothing of
it is left: TIMED_OUT when its own watchdog stopped it, else by its exit code, else FAILED `lost`."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ..core import lifecycle
from ..core.durations import format_duration
from ..core.runs import FAILED, LIVE_STATES, QUEUED, RUNNING, STARTING, SUCCEEDED, TIMED_OUT, RunRecord
from ..core.specs import JobSpec
from ..executors import ExitStatus
from ..executors.base import LOST
from ..runtime.dispatch import run_deadline
from ..runtime.finish import record_end
from ..runtime.launch import run_dirs

if TYPE_CHECKING:
    from .loop import Daemon

log = logging.getLogger("costwise.daemon")


def adopt(daemon: "Daemon", run: RunRecord) -> None:
    handle = dict(run.handle)
    replacing = daemon._owned_here(handle)  # one of this daemon's supervisor threads died
    if run.state == STARTING and "pid" not in handle and run.backend in (None, "local"):
        handle = find_local_launch(daemon, run)
        if handle is None:
            return
    handle.setdefault("run_id", run.id)  # docker / kubernetes can find a run by its label alone
    executor = daemon.engine.executor(run.backend or "local")
    if executor.adopt(handle):
        _supervise_again(daemon, run, handle, replacing)
    else:
        _record_how_it_ended(daemon, run, handle, executor.wait(handle, 0) or ExitStatus.lost())


def _supervise_again(daemon: "Daemon", run: RunRecord, handle: dict, replacing: bool) -> None:
    handle.update(daemon.engine.owner)
    daemon.store.update_run(run.id, expect=lifecycle.sources(RUNNING), state=RUNNING, handle=handle,
                            **adopted_times(daemon, run, handle),
                            message="supervisor replaced" if replacing else "adopted after a daemon restart")
    run = daemon.store.get_run(run.id)
    if replacing:
        log.warning("run %s had no supervisor (its thread died): supervising it again", run.id)
    else:
        log.info("adopted %s", run.id)
    daemon._supervise(run)


def _record_how_it_ended(daemon: "Daemon", run: RunRecord, handle: dict, status: ExitStatus) -> None:
    ended = ended_at(handle)
    if run.started_at is None and handle.get("create_time"):  # it did start: say when
        times = adopted_times(daemon, run, handle)
        daemon.store.update_run(run.id, expect=LIVE_STATES, **times)
        run = replace(run, **times)
    if status.timed_out:
        limit = format_duration(JobSpec.model_validate(run.spec).max_runtime)
        record_end(daemon.engine, run, TIMED_OUT,
                   f"max runtime {limit} reached (stopped by its watchdog while no supervisor watched)",
                   status.exit_code, None, ended_at=ended)
    elif status.exit_code is None:
        record_end(daemon.engine, run, FAILED, LOST, None, None, ended_at=ended)
    else:
        state = SUCCEEDED if status.exit_code == 0 else FAILED
        reason = None if state == SUCCEEDED else f"exit code {status.exit_code} (ended while no daemon watched)"
        record_end(daemon.engine, run, state, reason, status.exit_code, None, ended_at=ended)
    log.info("run %s was gone at restart: recorded", run.id)


def adopted_times(daemon: "Daemon", run: RunRecord, handle: dict) -> dict:
    """started_at / deadline_at / artifacts_dir a run adopted in its STARTING window never got:
    its start is its process's start (psutil create_time), its deadline the claim's or start + max runtime."""
    job = JobSpec.model_validate(run.spec)
    created = handle.get("create_time") or 0
    started = run.started_at or (datetime.fromtimestamp(created, timezone.utc) if created > 0 else daemon.clock.now())
    times = {"started_at": started, "deadline_at": run_deadline(run, job, started)}
    if not run.artifacts_dir:
        times["artifacts_dir"] = str(run_dirs(daemon.settings, run, job)["artifacts"])
    return times


def find_local_launch(daemon: "Daemon", run: RunRecord) -> dict | None:
    """A run claimed a slot but its handle was never saved: did its process ever start?"""
    run_dir = daemon.settings.run_dir(run.id)
    if not (run_dir / "run.log").exists():  # the log is created just before the process starts
        daemon.store.update_run(run.id, expect=lifecycle.move(STARTING, QUEUED), state=QUEUED, shape=None,
                                backend=None, handle={}, message="requeued after a restart: it had not been launched")
        daemon.wake.set()
        return None
    shape = daemon.engine.shape_index().by_name.get(run.shape)
    sizes = {"vcpus": shape.vcpus if shape else 1, "gpus": shape.gpus if shape else 0}
    found = daemon.engine.executor("local").find_launch(run.id, run_dir / "exit_code")
    if found is not None:
        return {**found, **sizes}
    return {"pid": -1, "create_time": 0, "exit_file": str(run_dir / "exit_code"), "run_id": run.id, **sizes}


def ended_at(handle: dict) -> datetime | None:
    exit_file = handle.get("exit_file")
    if exit_file and Path(exit_file).exists():
        return datetime.fromtimestamp(Path(exit_file).stat().st_mtime, timezone.utc)
    return None
