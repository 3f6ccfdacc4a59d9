"""The run record (contract: DESIGN.md 'Run JSON fields') and its states."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, NewType

from .clock import iso
from .spot import Market

RunId = NewType("RunId", str)  # "r-…": one run of a job or of a pipeline step
PipelineRunId = NewType("PipelineRunId", str)  # "p-…": one run of a whole pipeline


class RunState(StrEnum):
    """A run's state; members equal their names as strings, so stored rows and JSON compare as before."""

    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    TIMED_OUT = "TIMED_OUT"
    CACHED = "CACHED"
    SKIPPED = "SKIPPED"
    # an attempt's end, never a run's state: the market took the capacity back and the run was
    # queued again (run events and the attempt log carry it)
    PREEMPTED = "PREEMPTED"

    @property
    def finished(self) -> bool:
        return self in FINAL_STATES


# the former module-level names, kept so callers need not change at once
QUEUED, STARTING, RUNNING = RunState.QUEUED, RunState.STARTING, RunState.RUNNING
SUCCEEDED, FAILED, CANCELED, TIMED_OUT = RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED, RunState.TIMED_OUT
CACHED, SKIPPED = RunState.CACHED, RunState.SKIPPED
PREEMPTED = RunState.PREEMPTED

ACTIVE_STATES = (QUEUED, STARTING, RUNNING)
LIVE_STATES = (STARTING, RUNNING)  # holding a slot on a shape
FINAL_STATES = (SUCCEEDED, FAILED, CANCELED, TIMED_OUT, CACHED, SKIPPED)
ALL_STATES = ACTIVE_STATES + FINAL_STATES

PUBLIC_FIELDS = (
    "id", "job", "pipeline", "pipeline_run", "step", "state", "reason", "shape", "backend",
    "queued_at", "started_at", "ended_at", "duration_s", "exit_code", "cost_usd", "saved_usd",
    "cache_hit", "reused_from", "cpu_util_avg", "mem_peak_bytes", "gpu_util_avg", "artifacts_dir",
    "market", "attempts", "preemptions", "lost_s",
)


def new_run_id() -> RunId:
    return RunId("r-" + secrets.token_hex(5))


@dataclass
class RunRecord:
    id: RunId
    job: str | None
    state: RunState = QUEUED
    pipeline: str | None = None
    pipeline_run: PipelineRunId | None = None
    step: str | None = None
    reason: str | None = None
    shape: str | None = None
    backend: str | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float | None = None
    exit_code: int | None = None
    cost_usd: float = 0.0
    saved_usd: float = 0.0
    cache_hit: bool = False
    reused_from: str | None = None
    cpu_util_avg: float | None = None
    mem_peak_bytes: int | None = None
    gpu_util_avg: float | None = None
    artifacts_dir: str | None = None
    market: Market = Market.ON_DEMAND  # the current (or last) attempt's market
    attempts: int = 0  # attempts launched so far (retries and preempted attempts included)
    preemptions: int = 0
    lost_s: float = 0.0  # work thrown away by preemptions (redone by later attempts)
    # Not in the public record, but kept with it:
    spec: dict[str, Any] = field(default_factory=dict)  # the job spec as launched (overrides applied)
    overrides: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    price_per_hour: float | None = None
    placement: dict[str, Any] = field(default_factory=dict)
    handle: dict[str, Any] = field(default_factory=dict)
    deadline_at: datetime | None = None
    attempt: int = 0
    cancel_requested_at: datetime | None = None
    fire_key: str | None = None  # (kind, name, scheduled time) of the fire that queued it: unique
    preempt_requested_at: datetime | None = None  # set by `costwise preempt` before it ends the attempt
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # rows written before these columns existed read back as NULL
        self.market = Market(self.market or Market.ON_DEMAND)
        if self.attempts is None:
            self.attempts = self.attempt + 1 if self.started_at else 0
        self.preemptions = self.preemptions or 0
        self.lost_s = self.lost_s or 0.0

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    def public(self) -> dict[str, Any]:
        """The contract's JSON form."""
        out = {}
        for name in PUBLIC_FIELDS:
            value = getattr(self, name)
            out[name] = iso(value) if isinstance(value, datetime) else value
        return out

    def detail(self) -> dict[str, Any]:
        """Public fields plus what `costwise show` explains (placement, labels, attempts)."""
        out = self.public()
        out.update(
            labels=self.labels, price_per_hour=self.price_per_hour, placement=self.placement,
            attempt=self.attempt, deadline_at=iso(self.deadline_at), overrides=self.overrides,
        )
        out.update(self.extra)
        return out

    def as_row(self) -> dict[str, Any]:
        # shallow: the JSON columns are serialised on insert anyway (asdict deep-copies every dict)
        return {name: getattr(self, name) for name in RUN_FIELD_NAMES}


RUN_FIELD_NAMES = tuple(f.name for f in fields(RunRecord))


def new_pipeline_run_id() -> PipelineRunId:
    return PipelineRunId("p-" + secrets.token_hex(5))
