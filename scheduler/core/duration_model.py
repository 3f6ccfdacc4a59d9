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

Two hypotheses per job. The line above is M1, "the job scales with the hardware"; M0 says its
duration does not depend on the hardware at all (a service whose owner sets its lifetime): one base
for every class. A job's weight of M1 is its posterior probability, a Bayes factor of the two
models' marginal likelihoods of its class means (closed form) times the prior odds
``scaling_prior``; with runs on one class only the two cannot be told apart and the weight stays at
the prior. The expected seconds on a shape are the mixture's mean, so a job without evidence hedges
instead of trusting the prior's speed-ups. The caller may learn the prior weight and the slope's
mean from its fleet (empirical Bayes: the share of jobs that scaled, their mean slope); the
defaults are ``SCALING_PRIOR`` and ``SLOPE_MEAN``. The optimistic (exploring) cost lowers only M1's
part by its bound, so exploration is worth what the chance that the job scales is worth.
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
SLOPE_MEAN = 0.7  # a job that scales gets this power of the benchmarks' speed-up (the prior is flatter than peaks) ...
SLOPE_SD = 0.4  # ... give or take this much (jobs that gain nothing are the flat hypothesis, M0)
UNKNOWN_SD = 1.0  # hardware without a prior figure
SHAPE_SD = 0.25
SCALING_PRIOR = 0.7  # before the fleet says otherwise: most jobs that ask for a GPU gain from a faster one
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
    class_prior_var_list: list[float]
    class_log_speed_list: list[float]

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
                   np.array(class_var, dtype=float), np.array(class_speed, dtype=float), speeds, ids,
                   class_var, class_speed)


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
    optimistic_mu: np.ndarray  # per view shape: mu with the scaling hypothesis at its lower bound
    scaling: float  # posterior weight of "the job scales with the hardware"
    slope_evidence: tuple[float, float] | None  # (slope, precision) from the runs alone: None below two classes

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
    scaling_prior: float = SCALING_PRIOR,
    slope_mean: float = SLOPE_MEAN,
    explore_z: float = 0.0,
    explore_runs: int = 0,
) -> Fit | None:
    """The posterior over a view's shapes; None when there is neither history nor an estimate."""
    classes, rows = _class_sums(columns, entries)
    if classes:
        line, source = _regression(columns, classes, slope_mean), "history"
    elif declared_s is not None:
        line, source = _Line(math.log(max(declared_s, MIN_SECONDS)), slope_mean, DECLARED_SD**2, 0.0, SLOPE_SD**2), "declared"
    else:
        return None
    x = -columns.class_log_speed
    class_mean = line.base + line.slope * x
    class_var = line.c00 + 2 * line.c01 * x + line.c11 * x * x + columns.class_prior_var
    class_runs = np.zeros(len(columns.class_prior_var))
    for k, (w, wy, runs) in classes.items():  # the class's own mean, shrunk towards the regression's
        v, pred_var = 1.0 / w, float(class_var[k])
        keep = pred_var / (pred_var + v)
        class_mean[k] += (wy / w - class_mean[k]) * keep
        class_var[k] = v * keep
        class_runs[k] = runs
    if not classes:
        mu = class_mean[view_class]
        return Fit(mu, class_mean, class_var, class_runs, {}, source, mu, 1.0, None)
    scaling = scaling_weight(classes, columns.class_prior_var_list, columns.class_log_speed_list, scaling_prior,
                             slope_mean)
    fitted = Fit(None, class_mean, class_var, class_runs, {}, source, None, scaling, line.slope_evidence)
    _mix_hypotheses(fitted, classes, rows, view_class, view_of, explore_z * np.sqrt(class_var) * (class_runs < explore_runs))
    return fitted


@dataclass(frozen=True, slots=True)
class _Line:
    """Mean log-seconds = base + slope x (-log prior speed), with the (base, slope) covariance."""

    base: float
    slope: float
    c00: float
    c01: float
    c11: float
    slope_evidence: tuple[float, float] | None = None


def _class_sums(columns: PriorColumns, entries: list[tuple[int, float, float | None]]) -> tuple[dict, list]:
    """Per class [sum of weights, weighted log median, runs], and per entry (pos, class, y, noise, runs)."""
    cid, shape_var = columns.class_id_list, SHAPE_SD**2
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
    return classes, rows


def _regression(columns: PriorColumns, classes: dict, slope_mean: float) -> _Line:
    """Weighted least squares of each class's mean log-seconds on -log prior speed, with the slope's
    prior N(slope_mean, SLOPE_SD^2): (base, slope) and their 2x2 covariance in closed form."""
    var_list, speed_list = columns.class_prior_var_list, columns.class_log_speed_list
    s0 = s1 = s2 = t0 = t1 = 0.0
    for k, (w, wy, _) in classes.items():
        omega, x = 1.0 / (1.0 / w + var_list[k]), -speed_list[k]
        s0, s1, s2 = s0 + omega, s1 + omega * x, s2 + omega * x * x
        t0, t1 = t0 + omega * wy / w, t1 + omega * x * wy / w
    data_det = s0 * s2 - s1 * s1  # the slope the runs alone say, and how surely (for the fleet's mean)
    slope_evidence = ((s0 * t1 - s1 * t0) / data_det, data_det / s0) if data_det > 1e-9 else None
    s2, t1 = s2 + 1.0 / SLOPE_SD**2, t1 + slope_mean / SLOPE_SD**2
    det = s0 * s2 - s1 * s1
    return _Line((s2 * t0 - s1 * t1) / det, (s0 * t1 - s1 * t0) / det, s2 / det, -s1 / det, s0 / det, slope_evidence)


def _mix_hypotheses(fitted: Fit, classes: dict, rows: list, view_class: np.ndarray, view_of: Mapping[int, int],
                    bonus: np.ndarray) -> None:
    """Fill ``fitted``'s expected and optimistic log-seconds per view shape: the mixture of M1 (the job
    scales with the hardware, weight ``fitted.scaling``) and M0, "the hardware does not matter" (one
    base for every class: a service whose owner sets its lifetime). Per class first (a few entries),
    then per shape by indexing: the view may hold hundreds of shapes."""
    shape_var, class_mean, class_var = SHAPE_SD**2, fitted.class_mean, fitted.class_var
    class_mu = class_mean + 0.5 * (class_var + shape_var)
    w0 = sum(w for w, _, _ in classes.values())
    base0, base0_var = sum(wy for _, wy, _ in classes.values()) / w0, 1.0 / w0
    flat_prior_v = base0_var + shape_var
    log_w1, log_w0 = math.log(max(fitted.scaling, 1e-300)), math.log(max(1.0 - fitted.scaling, 1e-300))
    flat_w = base0 + 0.5 * flat_prior_v + log_w0
    expected = np.logaddexp(class_mu + log_w1, flat_w)[view_class]
    optimistic = np.logaddexp(class_mu - bonus + log_w1, flat_w)[view_class]
    for pos, k, y, noise, runs in rows:  # shapes this job ran on: their own runs, shrunk to each hypothesis
        i = view_of.get(pos)
        if i is not None:
            prior_mean, prior_v = float(class_mean[k]), float(class_var[k]) + shape_var
            post_var = 1.0 / (1.0 / prior_v + 1.0 / noise)
            scaled = post_var * (prior_mean / prior_v + y / noise) + 0.5 * post_var
            fitted.own[i] = (runs, post_var)
            flat_var = 1.0 / (1.0 / flat_prior_v + 1.0 / noise)
            flat = flat_var * (base0 / flat_prior_v + y / noise) + 0.5 * flat_var + log_w0
            expected[i] = _logaddexp(scaled + log_w1, flat)
            optimistic[i] = _logaddexp(scaled - bonus[k] + log_w1, flat)
    fitted.mu, fitted.optimistic_mu = expected, optimistic


def _logaddexp(a: float, b: float) -> float:
    """log(e^a + e^b) of two floats (numpy's ufunc costs more than the sum on scalars)."""
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def _log_evidence_scaling(classes: Mapping[int, list[float]], prior_var: list[float], log_speed: list[float],
                          slope_mean: float) -> float:
    """log marginal likelihood of the classes' mean log-seconds under M1: base (flat, shared by both
    hypotheses so its improper constant cancels) + slope x (-log speed) + class deviations, the
    slope integrated over N(slope_mean, SLOPE_SD^2): Sherman-Morrison over scalar sums."""
    a = b = c = p = q = t = logdet = 0.0
    for k, (w, wy, _) in classes.items():
        d = 1.0 / w + prior_var[k]
        x = -log_speed[k]
        r = wy / w - slope_mean * x
        a, b, c = a + 1 / d, b + x / d, c + x * x / d
        p, q, t = p + r / d, q + x * r / d, t + r * r / d
        logdet += math.log(d)
    s2 = SLOPE_SD * SLOPE_SD
    g = s2 / (1.0 + s2 * c)
    ones, one_r, rr = a - g * b * b, p - g * b * q, t - g * q * q
    return -0.5 * (logdet + math.log1p(s2 * c) + math.log(ones) + rr - one_r * one_r / ones)


def _log_evidence_flat(classes: Mapping[int, list[float]]) -> float:
    """The same under M0: every class's mean is the base plus its runs' noise."""
    a = p = t = logdet = 0.0
    for w, wy, _ in classes.values():
        a, p, t, logdet = a + w, p + wy, t + wy * wy / w, logdet - math.log(w)
    return -0.5 * (logdet + math.log(a) + t - p * p / a)


def scaling_weight(classes: Mapping[int, list[float]], prior_var: list[float], log_speed: list[float],
                   scaling_prior: float, slope_mean: float = SLOPE_MEAN) -> float:
    """Posterior probability that the job's duration scales with the hardware (M1) rather than not
    at all (M0): a Bayes factor from its runs' class means. Runs on one class alone cannot tell
    them apart, so the weight stays at the prior until the job has run on different hardware."""
    if len(classes) < 2:
        return scaling_prior
    scaling_prior = min(max(scaling_prior, 1e-6), 1.0 - 1e-6)
    log_bf = _log_evidence_scaling(classes, prior_var, log_speed, slope_mean) - _log_evidence_flat(classes)
    log_odds = max(min(log_bf + math.log(scaling_prior / (1.0 - scaling_prior)), 700.0), -700.0)
    return 1.0 / (1.0 + math.exp(-log_odds))


def relative_log_seconds(columns: PriorColumns, view_class: np.ndarray, scaling_prior: float = SCALING_PRIOR,
                         slope_mean: float = SLOPE_MEAN) -> np.ndarray:
    """Per view shape, the log of a job's expected seconds there relative to its unknown base (a job
    with neither runs nor a declared duration): the two hypotheses' mixture as in ``fit``, with the
    base (the same on every shape) left out, so it ranks shapes by cost but says no duration."""
    x = -columns.class_log_speed
    scaled = slope_mean * x + 0.5 * (columns.class_prior_var + SLOPE_SD**2 * x * x)
    w = min(max(scaling_prior, 1e-6), 1.0 - 1e-6)
    return np.logaddexp(scaled + math.log(w), math.log(1.0 - w))[view_class]
