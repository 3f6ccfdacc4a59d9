"""Cheapest-fit placement: pure functions over a snapshot of shapes, usage and run history.

No I/O, no clock of its own (``now`` is passed in). ``place`` is the fast decision the engine and
daemon call for every queued run; ``explain`` ranks every shape with its reasons for people.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

import numpy as np

from .specs import Requirements, ShapeSpec


MASK_CACHE_SIZE = 4096


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


@dataclass(frozen=True, slots=True)
class Candidate:
    shape: str
    backend: str
    price_per_hour: float
    expected_duration_s: float | None
    duration_source: str  # history | similar shapes | job history | declared | none (price order)
    expected_cost_usd: float | None
    free_slots: int

    @property
    def sort_key(self) -> tuple:
        cost = self.expected_cost_usd if self.expected_cost_usd is not None else self.price_per_hour
        return (cost, self.price_per_hour, self.shape)


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # place | wait | refuse
    shape: str | None
    reason: str
    chosen: Candidate | None = None
    cheapest: Candidate | None = None


@dataclass(frozen=True)
class Explanation:
    ranked: list[Candidate]
    rejected: list[tuple[str, list[str]]] = field(default_factory=list)


def speed_class(shape: ShapeSpec) -> tuple[str, float]:
    """Shapes of one class are assumed to run a job equally fast (same GPU type and count)."""
    return ((shape.gpu_type or "cpu").lower(), shape.gpus)


def fit_problems(req: PlacementRequest, shape: ShapeSpec) -> list[str]:
    """Why the shape cannot take the request; empty when it fits."""
    r = req.requirements
    problems = []
    if req.pinned_shape and shape.name != req.pinned_shape:
        problems.append(f"not the pinned shape {req.pinned_shape!r}")
    if req.backends is not None and shape.backend not in req.backends:
        problems.append(f"backend {shape.backend} not allowed here")
    if shape.backend != "local" and not req.has_image:
        problems.append(f"backend {shape.backend} needs the job to name an image")
    if r.cpus > shape.vcpus:
        problems.append(f"cpus {r.cpus:g} > vcpus {shape.vcpus:g}")
    if r.memory_gib > shape.memory_gib:
        problems.append(f"memory_gib {r.memory_gib:g} > {shape.memory_gib:g}")
    if r.gpus > shape.gpus:
        problems.append(f"gpus {r.gpus:g} > {shape.gpus:g}")
    if r.gpu_type and (shape.gpu_type or "").lower() != r.gpu_type.lower():
        problems.append(f"gpu_type {r.gpu_type} != {shape.gpu_type or 'none'}")
    if r.gpu_memory_gib > shape.gpu_memory_gib:
        problems.append(f"gpu_memory_gib {r.gpu_memory_gib:g} > {shape.gpu_memory_gib:g}")
    return problems


def fits(req: PlacementRequest, shape: ShapeSpec) -> bool:
    r = req.requirements
    return (
        r.cpus <= shape.vcpus
        and r.memory_gib <= shape.memory_gib
        and r.gpus <= shape.gpus
        and r.gpu_memory_gib <= shape.gpu_memory_gib
        and (not r.gpu_type or (shape.gpu_type or "").lower() == r.gpu_type.lower())
        and (req.pinned_shape is None or shape.name == req.pinned_shape)
        and (req.backends is None or shape.backend in req.backends)
        and (shape.backend == "local" or req.has_image)
    )


class ShapeIndex:
    """A snapshot of the catalog's shapes as columns sorted by (price, name), for fast fit checks."""

    def __init__(self, shapes: Iterable[ShapeSpec]):
        self.shapes = sorted(shapes, key=lambda s: (s.price_per_hour, s.name))
        self.by_name = {s.name: s for s in self.shapes}
        self.position = {s.name: i for i, s in enumerate(self.shapes)}
        self.classes: dict[tuple[str, float], list[ShapeSpec]] = {}
        for shape in self.shapes:
            self.classes.setdefault(speed_class(shape), []).append(shape)
        class_ids = {cls: i for i, cls in enumerate(self.classes)}
        self.class_of = {s.name: class_ids[speed_class(s)] for s in self.shapes}
        self.class_ids = class_ids
        col = lambda f: np.array([f(s) for s in self.shapes], dtype=float)  # noqa: E731
        self.vcpus = col(lambda s: s.vcpus)
        self.memory = col(lambda s: s.memory_gib)
        self.gpus = col(lambda s: s.gpus)
        self.gpu_memory = col(lambda s: s.gpu_memory_gib)
        self.price = col(lambda s: s.price_per_hour)
        self.capacity = col(lambda s: s.capacity)
        self.gpu_type = np.array([(s.gpu_type or "").lower() for s in self.shapes], dtype=object)
        self.backend = np.array([s.backend for s in self.shapes], dtype=object)
        self.is_local = self.backend == "local"
        self.class_id = np.array([self.class_of[s.name] for s in self.shapes], dtype=np.int32)
        self.masks: dict[tuple, np.ndarray] = {}

    def snapshot(self, in_use: Mapping[str, int]) -> "Snapshot":
        return Snapshot(self, in_use)


class Snapshot:
    """Shapes plus the slots in use at one moment: what a batch of placements is decided against."""

    def __init__(self, index: ShapeIndex, in_use: Mapping[str, int]):
        self.index = index
        self.in_use = in_use
        used = np.array([in_use.get(s.name, 0) for s in index.shapes], dtype=float)
        self.free = index.capacity - used
        self.has_free = self.free > 0


SHRINK_RUNS = 10  # a shape's median counts as much as the job's overall one after this many runs


def _shrink(median: float, runs: int | None, prior: float | None) -> float:
    if runs is None or prior is None:
        return median
    return (runs * median + SHRINK_RUNS * prior) / (runs + SHRINK_RUNS)


class DurationModel:
    """Expected duration of one job per shape: its own history, similar shapes, the job's history
    anywhere, or its declared estimate.

    ``history`` maps a shape to the median duration of the job's recent successful runs there, or to
    (median, number of runs); with the count, a median from few runs is shrunk towards the job's
    median over all shapes (durations are heavy-tailed, so two runs say little about a shape)."""

    def __init__(self, index: ShapeIndex, history: Mapping[str, Any], declared: float | None):
        raw = {k: (v if isinstance(v, tuple) else (v, None)) for k, v in history.items() if k in index.by_name}
        self.job = statistics.median(m for m, _ in raw.values()) if raw else None
        # few runs on a shape say little (durations are heavy-tailed): shrink towards the job's median
        self.history = {k: _shrink(m, n, self.job) for k, (m, n) in raw.items()}
        per_class: dict[tuple[str, float], list[float]] = {}
        for name, seconds in self.history.items():
            per_class.setdefault(speed_class(index.by_name[name]), []).append(seconds)
        self.per_class = {k: statistics.median(v) for k, v in per_class.items()}
        self.declared = declared

    def class_estimate(self, cls: tuple[str, float]) -> tuple[float | None, str]:
        if cls in self.per_class:
            return self.per_class[cls], "similar shapes"
        if self.job is not None:
            return self.job, "job history"
        if self.declared is not None:
            return self.declared, "declared"
        return None, "none (price order)"

    def estimate(self, shape: ShapeSpec) -> tuple[float | None, str]:
        if shape.name in self.history:
            return self.history[shape.name], "history"
        return self.class_estimate(speed_class(shape))

    def expected_seconds(self, index: ShapeIndex) -> np.ndarray | None:
        """Per-shape expected seconds in index order; None when there is nothing to go on."""
        base = self.job if self.job is not None else self.declared
        if base is None:
            return None
        seconds = np.full(len(index.shapes), base, dtype=float)
        for cls, value in self.per_class.items():
            seconds[index.class_id == index.class_ids[cls]] = value
        for name, value in self.history.items():
            seconds[index.position[name]] = value
        return seconds


def _candidate(shape: ShapeSpec, model: DurationModel, in_use: Mapping[str, int]) -> Candidate:
    seconds, source = model.estimate(shape)
    cost = None if seconds is None else shape.price_per_hour * seconds / 3600.0
    free = max(shape.capacity - in_use.get(shape.name, 0), 0)
    return Candidate(shape.name, shape.backend, shape.price_per_hour, seconds, source, cost, free)


def fit_mask(req: PlacementRequest, index: ShapeIndex) -> np.ndarray:
    """Which shapes (in index order) can take the request, ignoring capacity (memoised per index:
    the same job is placed again and again, so its requirements recur)."""
    r = req.requirements
    key = (r.cpus, r.memory_gib, r.gpus, r.gpu_memory_gib, r.gpu_type, req.has_image, req.backends, req.pinned_shape)
    mask = index.masks.get(key)
    if mask is None:
        if len(index.masks) >= MASK_CACHE_SIZE:
            index.masks.clear()
        mask = index.masks[key] = _fit_mask(req, index)
    return mask


def _fit_mask(req: PlacementRequest, index: ShapeIndex) -> np.ndarray:
    r = req.requirements
    mask = (index.vcpus >= r.cpus) & (index.memory >= r.memory_gib)
    if r.gpus:
        mask &= index.gpus >= r.gpus
    if r.gpu_memory_gib:
        mask &= index.gpu_memory >= r.gpu_memory_gib
    if r.gpu_type:
        mask &= index.gpu_type == r.gpu_type.lower()
    if not req.has_image:
        mask &= index.is_local
    if req.backends is not None:
        mask &= np.isin(index.backend, list(req.backends))
    if req.pinned_shape is not None:
        pinned = np.zeros(len(index.shapes), dtype=bool)
        if req.pinned_shape in index.position:
            pinned[index.position[req.pinned_shape]] = True
        mask &= pinned
    return mask


def place(
    req: PlacementRequest,
    snapshot: Snapshot,
    history: Mapping[str, float],
    now: datetime,
) -> Decision:
    """Where the run goes now: the cheapest fitting shape with a free slot, or wait, or refuse."""
    index = snapshot.index
    model = DurationModel(index, history, req.declared_duration_s)
    mask = fit_mask(req, index)
    if not mask.any():
        return Decision("refuse", None, "no shape fits the requirements")
    seconds = model.expected_seconds(index)
    if seconds is None:  # no estimate anywhere: plain price order, which is index order
        best_any = int(mask.argmax())
        free_mask = mask & snapshot.has_free
        best_free = int(free_mask.argmax()) if free_mask[free_mask.argmax()] else None
    else:
        cost = np.where(mask, index.price * seconds, np.inf)
        best_any = int(cost.argmin())  # first minimum: ties go to the lower price, then the name
        free_cost = np.where(snapshot.has_free, cost, np.inf)
        best_free = int(free_cost.argmin())
        best_free = best_free if free_cost[best_free] != np.inf else None
    chosen_any = _candidate(index.shapes[best_any], model, snapshot.in_use)
    if best_free == best_any:
        chosen_free = chosen_any
    else:
        chosen_free = None if best_free is None else _candidate(index.shapes[best_free], model, snapshot.in_use)
    return _decide(req, chosen_any, chosen_free, now)


def _decide(req, best_any: Candidate | None, best_free: Candidate | None, now: datetime) -> Decision:
    if best_any is None:
        return Decision("refuse", None, "no shape fits the requirements")
    if best_free is not None and best_free.shape == best_any.shape:
        return Decision("place", best_any.shape, f"cheapest fitting shape: {_why(best_any)}", best_any, best_any)
    if best_free is None:
        return Decision("wait", None, f"every fitting shape is full; cheapest is {best_any.shape}", None, best_any)
    waited = (now - req.queued_at).total_seconds() if req.queued_at else 0.0
    if waited >= req.max_wait_s:
        return Decision(
            "place",
            best_free.shape,
            f"spilled over after waiting {waited:.0f}s for {best_any.shape} (full, max_wait "
            f"{req.max_wait_s:g}s): {_why(best_free)}",
            best_free,
            best_any,
        )
    return Decision(
        "wait",
        None,
        f"waiting for {best_any.shape} (full); spills to {best_free.shape} after max_wait {req.max_wait_s:g}s",
        None,
        best_any,
    )


def _why(c: Candidate) -> str:
    if c.expected_cost_usd is None:
        return f"{c.shape} at ${c.price_per_hour:.4g}/h (no duration history: price order)"
    return (
        f"{c.shape} expected ${c.expected_cost_usd:.4g} "
        f"({c.expected_duration_s:.1f}s from {c.duration_source} at ${c.price_per_hour:.4g}/h)"
    )


def alternatives(req: PlacementRequest, snapshot: Snapshot, history: Mapping[str, Any], k: int = 5) -> list[Candidate]:
    """The k fitting shapes with the lowest expected cost, in ``explain``'s order, without looking at
    every shape in Python (what a run's record keeps, on the dispatch path)."""
    index = snapshot.index
    model = DurationModel(index, history, req.declared_duration_s)
    fitting = np.flatnonzero(fit_mask(req, index))
    seconds = model.expected_seconds(index)
    key = index.price if seconds is None else index.price * seconds
    best = fitting[np.argsort(key[fitting], kind="stable")][:k]  # stable: ties keep (price, name) order
    return [_candidate(index.shapes[i], model, snapshot.in_use) for i in best]


def explain(
    req: PlacementRequest,
    shapes: Iterable[ShapeSpec],
    in_use: Mapping[str, int],
    history: Mapping[str, float],
) -> Explanation:
    """Every shape: the fitting ones ranked by expected cost, the others with why they do not fit."""
    index = shapes if isinstance(shapes, ShapeIndex) else ShapeIndex(shapes)
    model = DurationModel(index, history, req.declared_duration_s)
    ranked, rejected = [], []
    for shape in index.shapes:
        problems = fit_problems(req, shape)
        if problems:
            rejected.append((shape.name, problems))
        else:
            ranked.append(_candidate(shape, model, in_use))
    ranked.sort(key=lambda c: c.sort_key)
    return Explanation(ranked, rejected)


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
