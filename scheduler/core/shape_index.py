"""The catalog's shapes as numpy columns, the slots in use at one moment (``Snapshot``), and the
memoised view of which shapes a kind of request fits: what placement decides against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, MutableMapping

import numpy as np

from . import duration_model as dm
from .fit import PlacementRequest, fit_mask_over
from .specs import ShapeSpec
from .spot import interruption_rate

MASK_CACHE_SIZE = 4096


class ShapeIndex:
    """A snapshot of the catalog's shapes as columns sorted by (price, name), for fast fit checks.
    The columns carry ``fit.ShapeColumns``' names, so the fit rules read them directly."""

    def __init__(self, shapes: Iterable[ShapeSpec]):
        self.shapes = sorted(shapes, key=lambda s: (s.price_per_hour, s.name))
        self.by_name = {s.name: s for s in self.shapes}
        self.position = {s.name: i for i, s in enumerate(self.shapes)}
        col = lambda f: np.array([f(s) for s in self.shapes], dtype=float)  # noqa: E731
        self.vcpus = col(lambda s: s.vcpus)
        self.memory_gib = col(lambda s: s.memory_gib)
        self.gpus = col(lambda s: s.gpus)
        self.gpu_memory_gib = col(lambda s: s.gpu_memory_gib)
        self.price = col(lambda s: s.price_per_hour)
        self.log_price = np.log(np.maximum(self.price, 1e-12))
        self.capacity = col(lambda s: s.capacity)
        # the spot market: its price (NaN: the shape sells none) and interruptions per hour
        self.spot_price = col(lambda s: np.nan if s.spot_price_per_hour is None else s.spot_price_per_hour)
        self.spot_rate = col(lambda s: interruption_rate(s.spot_interruptions_per_hour, s.gpus))
        self.name = np.array([s.name for s in self.shapes], dtype=object)
        self.gpu_type = np.array([(s.gpu_type or "").lower() for s in self.shapes], dtype=object)
        self.backend = np.array([s.backend for s in self.shapes], dtype=object)
        self.is_local = self.backend == "local"
        self.prior = {kind: dm.PriorColumns.build(self.shapes, kind) for kind in (True, False)}
        self.masks: dict[tuple, FitView] = {}

    def snapshot(self, in_use: MutableMapping[str, int], expected_wait_s: Mapping[str, float] | None = None) -> "Snapshot":
        return Snapshot(self, in_use, expected_wait_s)


class Snapshot:
    """Shapes plus the slots in use at one moment: what a batch of placements is decided against.
    ``expected_wait_s``: seconds until a slot of a full shape is expected to be this run's (NaN: unknown).
    A batch that places runs one after another says so with ``take`` / ``release``; nobody else
    writes into its arrays."""

    def __init__(self, index: ShapeIndex, in_use: MutableMapping[str, int], expected_wait_s: Mapping[str, float] | None = None):
        self.index = index
        self.in_use = in_use  # the caller's mapping, kept current by take / release
        used = np.array([in_use.get(s.name, 0) for s in index.shapes], dtype=float)
        self.free = index.capacity - used
        self.has_free = self.free > 0
        self.wait_s = np.full(len(index.shapes), np.nan)
        for name, seconds in (expected_wait_s or {}).items():
            if name in index.position:
                self.wait_s[index.position[name]] = seconds

    def take(self, shape: str, slots: int = 1) -> None:
        """A run claimed ``slots`` of this shape: later placements on this snapshot see them taken."""
        self._use(shape, slots)

    def release(self, shape: str, slots: int = 1) -> None:
        """A run gave back ``slots`` of this shape."""
        self._use(shape, -slots)

    def _use(self, shape: str, delta: int) -> None:
        position = self.index.position[shape]
        self.in_use[shape] = self.in_use.get(shape, 0) + delta
        self.free[position] -= delta
        self.has_free[position] = self.free[position] > 0


@dataclass(frozen=True)
class FitView:
    """The shapes one kind of request fits, in index order, with their prior columns (memoised)."""

    pos: np.ndarray
    log_price: np.ndarray
    gpu_job: bool
    log_speed: np.ndarray
    class_id: np.ndarray
    view_of: dict[int, int]

    @classmethod
    def build(cls, index: ShapeIndex, mask: np.ndarray, gpu_job: bool) -> "FitView":
        pos = np.flatnonzero(mask)
        prior = index.prior[gpu_job]
        return cls(pos, index.log_price[pos], gpu_job, prior.log_speed[pos], prior.class_id[pos],
                   {int(p): i for i, p in enumerate(pos)})


def fit_view(req: PlacementRequest, index: ShapeIndex) -> FitView:
    """Which shapes can take the request, ignoring capacity (memoised per index: the same job is
    placed again and again, so its requirements recur)."""
    r = req.requirements
    key = (r.cpus, r.memory_gib, r.gpus, r.gpu_memory_gib, r.gpu_type, req.has_image, req.backends, req.pinned_shape)
    view = index.masks.get(key)
    if view is None:
        if len(index.masks) >= MASK_CACHE_SIZE:
            index.masks.clear()
        mask = fit_mask_over(req, index, len(index.shapes))
        view = index.masks[key] = FitView.build(index, mask, r.gpus > 0)
    return view


def fit_mask(req: PlacementRequest, index: ShapeIndex) -> np.ndarray:
    mask = np.zeros(len(index.shapes), dtype=bool)
    mask[fit_view(req, index).pos] = True
    return mask
