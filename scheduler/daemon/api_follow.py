"""What the thin client asks the daemon beyond the plain records: following a run or a pipeline run as
a stream of JSON lines (its states, its output lines, its end) woken by the daemon's own changes, not
by the client polling; a wake-up for runs queued in the catalog by another process; the catalog's
shapes; the artifacts a job or a pipeline was applied with."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

from ..core.errors import SpecError

TICK_S = 5.0  # a keep-alive line after this much silence: the client's read timeout never fires
LOG_TAIL_S = 0.1  # how often a followed run's log is read for new lines
RECHECK_S = 1.0  # re-read a followed record at least this often (a change written by another process)
LINE_MAX_CHARS = 8192


class Stream:
    """An answer written as JSON lines while it is produced (the handler sends it, then closes)."""

    def __init__(self, events: Iterator[dict[str, Any]]):
        self.events = events


class LogTail:
    """The complete lines added to a log file since the last read (a partial last line waits)."""

    def __init__(self, path: Path):
        self.path, self.offset, self._rest = path, 0, b""

    def lines(self, final: bool = False) -> list[str]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read(1 << 20)
        except OSError:
            return []
        self.offset += len(chunk)
        data = self._rest + chunk
        parts = data.split(b"\n")
        self._rest = parts.pop()
        if final and self._rest:
            parts.append(self._rest)
            self._rest = b""
        return [p.decode(errors="replace")[:LINE_MAX_CHARS] for p in parts]


def _flag(query: str, name: str) -> bool:
    from urllib.parse import parse_qs

    value = parse_qs(query).get(name, ["0"])[0]
    if value not in ("0", "1"):
        raise SpecError(f"{name}={value!r} is not 0 or 1", name, value)
    return value == "1"


def follow_run(daemon, query: str, run_id: str):
    run = daemon.store.get_run(run_id)  # NotFound before the stream starts: a 404
    lines = _flag(query, "lines")
    return 200, Stream(_run_events(daemon, run, LogTail(daemon.settings.run_dir(run_id) / "run.log") if lines else None))


def _run_events(daemon, run, tail: LogTail | None) -> Iterator[dict[str, Any]]:
    yield {"event": "state", "run": run.public()}
    seq, checked, said = daemon.changes.seq, time.monotonic(), time.monotonic()
    while True:
        for text in tail.lines(final=run.finished) if tail else ():
            said = time.monotonic()
            yield {"event": "line", "text": text}
        if run.finished:
            yield {"event": "end", "run": run.public()}
            return
        new_seq = daemon.changes.wait(seq, LOG_TAIL_S if tail else RECHECK_S)
        if new_seq != seq or time.monotonic() - checked >= RECHECK_S:
            seq, checked = new_seq, time.monotonic()
            current = daemon.store.get_run(run.id)
            if current.state != run.state:
                said = time.monotonic()
                yield {"event": "state", "run": current.public()}
            run = current
        if time.monotonic() - said >= TICK_S:
            said = time.monotonic()
            yield {"event": "tick"}


def follow_pipeline_run(daemon, _query: str, prun_id: str):
    from ..runtime.pipeline_runner import PipelineRunner

    runner = PipelineRunner(daemon.engine, dispatched=True)
    record = runner.record(prun_id)
    return 200, Stream(_pipeline_events(daemon, runner, record))


def _pipeline_events(daemon, runner, record) -> Iterator[dict[str, Any]]:
    seen: dict[str, str] = {}
    seq, said = daemon.changes.seq, time.monotonic()
    while True:
        for step in record["steps"]:
            if seen.get(step["step"]) != step["state"]:
                seen[step["step"]] = step["state"]
                said = time.monotonic()
                yield {"event": "step", "run": step}
        if record["state"] not in ("QUEUED", "RUNNING"):
            yield {"event": "end", "pipeline_run": record}
            return
        seq = daemon.changes.wait(seq, RECHECK_S)
        record = runner.record(record["id"])
        if time.monotonic() - said >= TICK_S:
            said = time.monotonic()
            yield {"event": "tick"}


def wake(daemon, _body):
    """POST /wake: something was queued in the catalog by another process; dispatch now."""
    daemon.wake.set()
    return 202, {"woken": True}


def list_shapes(daemon, _query):
    shapes = sorted(daemon.store.list("Shape"), key=lambda s: (s.price_per_hour, s.name))
    return 200, [s.model_dump(mode="json") for s in shapes]


def applied_artifacts(daemon, query: str):
    """GET /artifacts?job=J or ?pipeline=P: each job's artifact path and the hash it was applied with."""
    from urllib.parse import parse_qs

    given = {k: v[0] for k, v in parse_qs(query, max_num_fields=4).items()}
    if "pipeline" in given:
        names = pipeline_jobs(daemon.store.require("Pipeline", given["pipeline"]))
    elif "job" in given:
        names = [given["job"]]
    else:
        raise SpecError("GET /artifacts needs job= or pipeline=", "query", query)
    return 200, [job_artifact(daemon.store.require("Job", name)) for name in names]


def pipeline_jobs(pipeline) -> list[str]:
    names = [step.job or step.sweep.job for step in pipeline.steps if step.job or step.sweep]
    return list(dict.fromkeys(names))


def job_artifact(job) -> dict[str, Any]:
    return {"job": job.name, "artifact": job.artifact, "artifact_hash": job.artifact_hash}
