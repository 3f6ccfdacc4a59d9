"""How long a job takes on each shape: its own runs, shrunk towards what the prior says the hardware is worth.

The model, in log-seconds, for job j on shape s whose hardware class is k (the GPU model for a job
that asks for GPUs, the CPU generation for one that does not)::

    log d(j, s) = base_j - slope_j * log prior_speed(k) + delta_jk + eta_js + noise

* ``base_j``: the job's duration on reference hardware (``priors.REFERENCE_GPU`` / ``REFERENCE_CPU``),
  flat prior -- learned from every finished run of the job, whatever shape it ran on;
* ``slope_j ~ N(SLOPE_MEAN, SLOPE_SD^2)``: how much of the benchmark speed-up this job gets -- 1 for a job
  that scales like the benchmarks, 0 for one that does not care (a service whose lifetime its owner
  sets, an I/O-bound job), in between for a memory-bound one;
* ``delta_jk ~ N(0, PRIOR_SD^2)``: what is left of class k's speed-up for this job after the slope
  (``UNKNOWN_SD`` for hardware the prior has no figure for);
* ``eta_js ~ N(0, SHAPE_SD^2)``: one shape of a class unlike its siblings (more vCPUs, another host);
* ``noise``: one run's spread around its shape's median, ``RUN_SD``; a median of n runs is taken to
  have variance ``RUN_SD^2 / n`` (a bare median without a count is taken as exact).

The fit is Bayesian in closed form (no iteration; scalar sums over the shapes with runs): a
weighted least-squares line of each class's mean log-seconds on the prior's log speed with the
slope's prior (a 2x2 normal posterior); each class with runs combines its own mean with the line's
prediction (precision-weighted: few runs stay near the prior, many runs speak for themselves); each
shape with runs combines its own median with its class's. A shape with no run of this job is
estimated from the job's line -- its base scaled by the prior speed to the learned power -- so a
faster, dearer GPU has an estimate (and an uncertainty) before it is ever tried.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from . import priors
from .specs import ShapeSpec

RUN_SD = 1.4  # log-spread of one run around its median (runs of one openb job class: 1.3-1.4)
PRIOR_SD = 0.25  # how far one class's speed-up departs from the job's scaled prior (~ +-30 %)
SLOPE_MEAN = 0.3  # a job gets this power of the benchmarks' speed-up (many jobs are not compute-bound) ...
SLOPE_SD = 0.3  # ... give or take this much (0: it gains nothing; 1: all of it)
UNKNOWN_SD = 1.0  # hardware without a prior figure
SHAPE_SD = 0.25
DECLARED_SD = 0.7  # a person's estimate, read as the duration on reference hardware
EXACT_VAR = 1e-9  # a median given without a count
MIN_SECONDS = 1e-3


def hardware_class(shape: ShapeSpec, gpu_job: bool) -> tuple[str, float | None]:
    """(class name, prior speed or None) of a shape for a GPU job or a CPU-only job."""
    if gpu_job:
        if not shape.gpus:
            return "no gpu", None
        model = priors.gpu_model(shape.gpu_type)
        return (model, priors.GPU_SPEED[model]) if model else ((shape.gpu_type or "?").lower(), None)
    generation = priors.cpu_generation(shape.name)
    return (generation, priors.CPU_SPEED[generation]) if generation else ("cpu", None)


@dataclass(frozen=True)
class PriorColumns:
    """The prior per shape, in index order, for one kind of job (lists too: scalar reads are hot)."""

    log_speed: np.ndarray
    class_id: np.ndarray
    class_names: tuple[str, ...]
    class_prior_var: np.ndarray  # per class: PRIOR_SD^2, or UNKNOWN_SD^2 where the prior has no figure
    class_log_speed: np.ndarray  # per class: log prior speed (0 where the prior has no figure)
    log_speed_list: list[float]
    class_id_list: list[int]

    @classmethod
    def build(cls, shapes: Iterable[ShapeSpec], gpu_job: bool) -> "PriorColumns":
        names: dict[str, int] = {}
        speeds, ids, class_var, class_speed = [], [], [], []
        for shape in shapes:
            name, speed = hardware_class(shape, gpu_job)
            if name not in names:
                names[name] = len(names)
                class_var.append((PRIOR_SD if speed else UNKNOWN_SD) ** 2)
                class_speed.append(math.log(speed) if speed else 0.0)
            ids.append(names[name])
            speeds.append(math.log(speed) if speed else 0.0)
        return cls(np.array(speeds, dtype=float), np.array(ids, dtype=np.intp), tuple(names),
                   np.array(class_var, dtype=float), np.array(class_speed, dtype=float), speeds, ids)


@dataclass(slots=True)
class Fit:
    """Posterior log-seconds per shape of a view (a subset of the index, in index order); per-class
    posteriors as small arrays indexed by class id."""

    mu: np.ndarray  # per view shape: log of the expected (mean) seconds
    class_mean: np.ndarray  # per class: log seconds on reference hardware for this job
    class_var: np.ndarray  # per class: its variance (what exploring may be wrong about)
    class_runs: np.ndarray  # per class: this job's runs there
    own: dict[int, tuple[float, float]]  # view position -> (runs on that very shape, posterior variance)
    base_source: str  # "history" (runs anywhere) or "declared"

    def source(self, i: int, class_id: int) -> str:
        if i in self.own:
            return "history"
        if self.class_runs[class_id] > 0:
            return "similar shapes"
        return "prior" if self.base_source == "history" else "declared"

    def var(self, i: int, class_id: int) -> float:
        own = self.own.get(i)
        return own[1] if own else float(self.class_var[class_id]) + SHAPE_SD**2


def history_entries(history: Mapping[str, Any], position: Mapping[str, int]) -> list[tuple[int, float, float | None]]:
    """(index position, median seconds, runs or None) for the history's shapes still in the index."""
    out = []
    for name, value in history.items():
        pos = position.get(name)
        if pos is not None:
            median, runs = value if isinstance(value, tuple) else (value, None)
            out.append((pos, median, runs))
    return out


def fit(
    columns: PriorColumns,
    view_log_speed: np.ndarray,
    view_class: np.ndarray,
    view_of: Mapping[int, int],
    entries: list[tuple[int, float, float | None]],
    declared_s: float | None,
) -> Fit | None:
    """The posterior over a view's shapes; None when there is neither history nor an estimate."""
    ls, cid = columns.log_speed_list, columns.class_id_list
    shape_var = SHAPE_SD**2
    # per class: [sum of weights, weighted log median, runs]
    classes: dict[int, list[float]] = {}
    rows = []
    for pos, median, runs in entries:
        noise = RUN_SD**2 / runs if runs else EXACT_VAR
        y, k = math.log(max(median, MIN_SECONDS)), cid[pos]
        rows.append((pos, k, y, noise, runs or 1))
        acc = classes.setdefault(k, [0.0, 0.0, 0.0])
        w = 1.0 / (noise + shape_var)
        acc[0] += w
        acc[1] += w * y
        acc[2] += runs or 1
    prior_var = columns.class_prior_var
    log_speed = columns.class_log_speed
    n = len(prior_var)
    if classes:
        # weighted least squares of each class's mean log-seconds on -log prior speed, with the
        # slope's prior N(1, SLOPE_SD^2): (base, slope) and their 2x2 covariance in closed form
        s0 = s1 = s2 = t0 = t1 = 0.0
        for k, (w, wy, _) in classes.items():
            omega, x = 1.0 / (1.0 / w + prior_var[k]), -log_speed[k]
            s0, s1, s2 = s0 + omega, s1 + omega * x, s2 + omega * x * x
            t0, t1 = t0 + omega * wy / w, t1 + omega * x * wy / w
        s2, t1 = s2 + 1.0 / SLOPE_SD**2, t1 + SLOPE_MEAN / SLOPE_SD**2
        det = s0 * s2 - s1 * s1
        base, slope = (s2 * t0 - s1 * t1) / det, (s0 * t1 - s1 * t0) / det
        c00, c01, c11 = s2 / det, -s1 / det, s0 / det
        source = "history"
    elif declared_s is not None:
        base, slope, source = math.log(max(declared_s, MIN_SECONDS)), SLOPE_MEAN, "declared"
        c00, c01, c11 = DECLARED_SD**2, 0.0, SLOPE_SD**2
    else:
        return None
    x = -log_speed
    class_mean = base + slope * x
    class_var = c00 + 2 * c01 * x + c11 * x * x + prior_var
    class_runs = np.zeros(n)
    for k, (w, wy, runs) in classes.items():  # the class's own mean, shrunk towards the regression's
        v, pred_var = 1.0 / w, float(class_var[k])
        keep = pred_var / (pred_var + v)
        class_mean[k] += (wy / w - class_mean[k]) * keep
        class_var[k] = v * keep
        class_runs[k] = runs
    mu = class_mean[view_class]
    own = {}
    for pos, k, y, noise, runs in rows:
        i = view_of.get(pos)
        if i is not None:
            prior_mean, prior_v = class_mean[k], class_var[k] + shape_var
            post_var = 1.0 / (1.0 / prior_v + 1.0 / noise)
            mu[i] = post_var * (prior_mean / prior_v + y / noise)
            own[i] = (runs, post_var)
    var = class_var[view_class] + shape_var
    for i, (_, post_var) in own.items():
        var[i] = post_var
    if classes:  # a log-normal's mean: cost is paid on the mean duration (a declared one already is)
        mu += 0.5 * var
    return Fit(mu, class_mean, class_var, class_runs, own, source)
