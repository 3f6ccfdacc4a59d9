"""Empirical-Bayes priors across a fleet's jobs: what each job's own runs say about how jobs scale
with the hardware, pooled into ``PlacementRequest.scaling_prior`` / ``slope_prior`` for every job.

A job speaks only once its runs span two hardware classes (one class cannot tell "scales" from
"flat"): its posterior weight that it scales, and, where its runs fit a line, its slope on the
prior's log speed-up with that slope's precision. The fleet's share of scaling jobs is their mean
weight, shrunk towards duration_model's default by ``SCALING_SHRINK_JOBS`` jobs' worth; the fleet's
slope is the precision-weighted mean of the jobs' slopes, the default counted as one more job. No
I/O; the daemon (runtime) and the replay feed it each job's fit from its duration history.

Jobs alike by their labels (``LabelPools``): a fleet mixes jobs that gain from faster hardware
(training) with jobs that do not (services whose owner sets their lifetime, I/O-bound jobs), and its
share of scaling jobs fits neither. So a job's prior weight of scaling is pooled from the other jobs
that share its labels -- each ``key: value`` pair is a pool, and a job sharing two pairs counts twice
-- shrunk towards the fleet's share by ``LABEL_SHRINK_JOBS`` jobs' worth: a job whose labels nobody
else carries gets the fleet's. Nothing is assumed about what a label means; the pools learn it
from their jobs' runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from . import duration_model as dm
from .placement import Estimates, PlacementRequest, ShapeIndex

SCALING_SHRINK_JOBS = 2.0
LABEL_SHRINK_JOBS = 2.0
MIN_CLASSES = 2  # hardware classes a job's runs must span before it says anything


@dataclass(frozen=True, slots=True)
class JobEvidence:
    """What one job's runs say: its weight of scaling, and (precision-weighted weight, slope) when
    its runs fit a slope."""

    scaling: float
    slope: tuple[float, float] | None


class LabelPools:
    """Per label pair, the summed scaling weights and count of the speaking jobs that carry it."""

    def __init__(self) -> None:
        self._sums: dict[tuple[str, str], list[float]] = {}
        self._jobs: dict[str, tuple[tuple[tuple[str, str], ...], float]] = {}

    def set(self, job: str, labels: Mapping[str, str], scaling: float | None) -> None:
        """What ``job`` says now (None: nothing yet), replacing what it said before."""
        old = self._jobs.pop(job, None)
        if old is not None:
            for pair in old[0]:
                acc = self._sums[pair]
                acc[0] -= old[1]
                acc[1] -= 1
        if scaling is None:
            return
        pairs = tuple(sorted(labels.items()))
        for pair in pairs:
            acc = self._sums.setdefault(pair, [0.0, 0])
            acc[0] += scaling
            acc[1] += 1
        self._jobs[job] = (pairs, scaling)

    def scaling(self, job: str, labels: Mapping[str, str], fleet: float) -> float:
        """The prior weight of scaling for ``job``: the other jobs sharing its labels, shrunk to ``fleet``."""
        own = self._jobs.get(job)
        total, jobs = 0.0, 0
        for pair in labels.items():
            acc = self._sums.get(pair)
            if acc is not None:
                total, jobs = total + acc[0], jobs + acc[1]
                if own is not None and pair in own[0]:  # a prior comes from the others, not the job itself
                    total, jobs = total - own[1], jobs - 1
        return (total + LABEL_SHRINK_JOBS * fleet) / (jobs + LABEL_SHRINK_JOBS)


@dataclass(frozen=True, slots=True)
class FleetPriors:
    """The priors to pass a request (None: duration_model's defaults)."""

    scaling: float | None = None
    slope: float | None = None
    pools: LabelPools | None = None

    def scaling_for(self, job: str, labels: Mapping[str, str]) -> float | None:
        """The fleet's share of scaling jobs, or the share among the jobs alike to this one by labels."""
        if self.scaling is None or self.pools is None or not labels:
            return self.scaling
        return self.pools.scaling(job, labels, self.scaling)


def job_evidence(fit: dm.Fit | None) -> JobEvidence | None:
    """A job's evidence from its fitted history, or None while its runs cannot tell."""
    if fit is None or int(fit.class_runs.astype(bool).sum()) < MIN_CLASSES:
        return None
    slope = None
    if fit.slope_evidence:
        value, precision = fit.slope_evidence  # a job's own slope varies around the fleet's by SLOPE_SD
        slope = (fit.scaling / (1.0 / precision + dm.SLOPE_SD**2), value)
    return JobEvidence(fit.scaling, slope)


def history_evidence(req: PlacementRequest, index: ShapeIndex, history: Mapping[str, Any]) -> JobEvidence | None:
    """A job's evidence from its duration history {shape: (median s, runs)} under the request's priors."""
    if len(history) < MIN_CLASSES:  # one shape is one hardware class: nothing to fit
        return None
    return job_evidence(Estimates(req, index, history).fit)


def fleet_scaling(weights: Iterable[float]) -> float:
    """The share of the speaking jobs that scale (their posterior weights), shrunk towards the default."""
    weights = list(weights)
    return (sum(weights) + SCALING_SHRINK_JOBS * dm.SCALING_PRIOR) / (len(weights) + SCALING_SHRINK_JOBS)


def fleet_slope(slopes: Iterable[tuple[float, float]]) -> float | None:
    """The fleet's mean slope from (weight, slope) of each job that fit one; None when none did."""
    slopes = list(slopes)
    if not slopes:
        return None
    prior_precision = 1.0 / dm.SLOPE_SD**2
    total = prior_precision + sum(p for p, _ in slopes)
    return (prior_precision * dm.SLOPE_MEAN + sum(p * s for p, s in slopes)) / total


def fleet_priors(evidence: Mapping[str, JobEvidence | None],
                 labels: Mapping[str, Mapping[str, str]] | None = None) -> FleetPriors:
    """The fleet's priors from each job's evidence (jobs whose runs cannot tell yet are left out),
    pooled by label too where ``labels`` gives each job's."""
    speaking = {job: e for job, e in evidence.items() if e is not None}
    if not speaking:
        return FleetPriors()
    pools = None
    if labels:
        pools = LabelPools()
        for job, e in speaking.items():
            pools.set(job, labels.get(job) or {}, e.scaling)
    return FleetPriors(fleet_scaling(e.scaling for e in speaking.values()),
                       fleet_slope(e.slope for e in speaking.values() if e.slope is not None), pools)
