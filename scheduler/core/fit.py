"""What a placement asks for and whether a shape can take it: one table of fit rules drives both the
numpy mask over every shape (the fast path) and the human reasons a shape is rejected (``explain``,
``check``'s refusals), so the two can never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

import numpy as np

from .specs import JobSpec, Requirements, ShapeSpec
from .spot import SpotPolicy


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    job: str
    requirements: Requirements
    pinned_shape: str | None = None
    backends: frozenset[str] | None = None  # None: any backend
    has_image: bool = False
    declared_duration_s: float | None = None
    max_wait_s: float = 600.0
    queued_at: datetime | None = None
    in_flight: Mapping[str, int] | None = None  # this job's runs started and not finished, per shape
    # what the caller learned across its jobs (None: duration_model's defaults): the share of jobs that
    # scale with the hardware, and their mean slope on the prior's log speed-up
    scaling_prior: float | None = None
    slope_prior: float | None = None
    # the markets (core/spot.py): what the job allows, how much work a preemption can lose, when it
    # must be done, the work its preempted attempts kept, and whether its deadline took spot away
    spot: SpotPolicy = SpotPolicy.NEVER
    checkpoint_interval_s: float | None = None
    deadline_at: datetime | None = None
    progress_s: float = 0.0
    gave_up_spot: bool = False

    @classmethod
    def for_job(cls, job: JobSpec, queued_at: datetime | None = None, backends: frozenset[str] | None = None,
                requirements: Requirements | None = None, progress_s: float = 0.0,
                gave_up_spot: bool = False) -> "PlacementRequest":
        """The request a run of ``job`` makes (``requirements``: another set than the job's, e.g. a
        `--fit` question or a pipeline step's overrides; ``progress_s`` / ``gave_up_spot``: what the
        run's earlier attempts left, core/attempts.py and the sticky deadline rule)."""
        deadline_at = queued_at + timedelta(seconds=job.deadline) if job.deadline and queued_at else None
        return cls(
            job=job.name, requirements=requirements or job.requirements, pinned_shape=job.shape, backends=backends,
            has_image=bool(job.image), declared_duration_s=job.expected_duration, max_wait_s=job.max_wait,
            queued_at=queued_at, spot=job.spot, checkpoint_interval_s=job.checkpoint_interval,
            deadline_at=deadline_at, progress_s=progress_s, gave_up_spot=gave_up_spot,
        )


@dataclass(frozen=True, slots=True)
class ShapeColumns:
    """One shape seen as the fit rules see ``ShapeIndex``'s columns (gpu_type lower-cased)."""

    name: str
    backend: str
    vcpus: float
    memory_gib: float
    gpus: float
    gpu_memory_gib: float
    gpu_type: str

    @classmethod
    def of(cls, shape: ShapeSpec) -> "ShapeColumns":
        return cls(shape.name, shape.backend, shape.vcpus, shape.memory_gib, shape.gpus, shape.gpu_memory_gib,
                   (shape.gpu_type or "").lower())


@dataclass(frozen=True, slots=True)
class FitRule:
    applies: Callable[[PlacementRequest], bool]  # False: the request asks nothing of this rule
    holds: Callable[[PlacementRequest, Any], Any]  # over ShapeColumns (a bool) or ShapeIndex (a bool array)
    problem: Callable[[PlacementRequest, ShapeSpec], str]  # why a shape breaks it, for people


def _req(r: PlacementRequest) -> Requirements:
    return r.requirements


# A table, longer than a function should be: one row per rule, in the order reasons are listed.
FIT_RULES: tuple[FitRule, ...] = (
    FitRule(lambda r: r.pinned_shape is not None, lambda r, c: c.name == r.pinned_shape,
            lambda r, s: f"not the pinned shape {r.pinned_shape!r}"),
    FitRule(lambda r: r.backends is not None, lambda r, c: np.isin(c.backend, list(r.backends)),
            lambda r, s: f"backend {s.backend} not allowed here"),
    FitRule(lambda r: not r.has_image, lambda r, c: c.backend == "local",
            lambda r, s: f"backend {s.backend} needs the job to name an image"),
    FitRule(lambda r: True, lambda r, c: c.vcpus >= _req(r).cpus,
            lambda r, s: f"cpus {_req(r).cpus:g} > vcpus {s.vcpus:g}"),
    FitRule(lambda r: True, lambda r, c: c.memory_gib >= _req(r).memory_gib,
            lambda r, s: f"memory_gib {_req(r).memory_gib:g} > {s.memory_gib:g}"),
    FitRule(lambda r: bool(_req(r).gpus), lambda r, c: c.gpus >= _req(r).gpus,
            lambda r, s: f"gpus {_req(r).gpus:g} > {s.gpus:g}"),
    FitRule(lambda r: bool(_req(r).gpu_type), lambda r, c: c.gpu_type == _req(r).gpu_type.lower(),
            lambda r, s: f"gpu_type {_req(r).gpu_type} != {s.gpu_type or 'none'}"),
    FitRule(lambda r: bool(_req(r).gpu_memory_gib), lambda r, c: c.gpu_memory_gib >= _req(r).gpu_memory_gib,
            lambda r, s: f"gpu_memory_gib {_req(r).gpu_memory_gib:g} > {s.gpu_memory_gib:g}"),
)


def fit_problems(req: PlacementRequest, shape: ShapeSpec) -> list[str]:
    """Why the shape cannot take the request; empty when it fits."""
    columns = ShapeColumns.of(shape)
    return [rule.problem(req, shape) for rule in FIT_RULES if rule.applies(req) and not rule.holds(req, columns)]


def fits(req: PlacementRequest, shape: ShapeSpec) -> bool:
    columns = ShapeColumns.of(shape)
    return all(rule.holds(req, columns) for rule in FIT_RULES if rule.applies(req))


def fit_mask_over(req: PlacementRequest, columns: Any, size: int) -> np.ndarray:
    """The shapes (columns of ``size`` rows, as ``ShapeIndex`` holds them) the request fits."""
    mask = np.ones(size, dtype=bool)
    for rule in FIT_RULES:
        if rule.applies(req):
            mask &= rule.holds(req, columns)
    return mask


def unfit_message(requirements: Requirements, shapes: list[ShapeSpec], **request) -> str | None:
    """None when some shape fits; else one line naming the requirement and the biggest shape."""
    req = PlacementRequest(job="?", requirements=requirements, **request)
    if any(fits(req, s) for s in shapes):
        return None
    if not shapes:
        return "no shapes are declared; apply a Shape first"
    r = requirements
    biggest = max(shapes, key=lambda s: (s.gpus, s.vcpus, s.memory_gib, s.price_per_hour))
    desc = f"the biggest is {biggest.name} (vcpus={biggest.vcpus:g}, memory_gib={biggest.memory_gib:g}, gpus={biggest.gpus:g})"
    for name, need, have in (
        ("cpus", r.cpus, max(s.vcpus for s in shapes)),
        ("memory_gib", r.memory_gib, max(s.memory_gib for s in shapes)),
        ("gpus", r.gpus, max(s.gpus for s in shapes)),
        ("gpu_memory_gib", r.gpu_memory_gib, max(s.gpu_memory_gib for s in shapes)),
    ):
        if need > have:
            return f"requirements.{name}={need:g} fits no shape; {desc}"
    if r.gpu_type and not any((s.gpu_type or "").lower() == r.gpu_type.lower() for s in shapes):
        types = sorted({s.gpu_type for s in shapes if s.gpu_type})
        return f"requirements.gpu_type={r.gpu_type!r} fits no shape (types: {', '.join(types) or 'none'})"
    problems = {s.name: fit_problems(req, s) for s in shapes}
    closest = min(problems, key=lambda n: len(problems[n]))
    return (
        f"requirements {r.model_dump(exclude_defaults=True) or {}} fit no single shape; "
        f"closest is {closest}: {'; '.join(problems[closest])}"
    )
