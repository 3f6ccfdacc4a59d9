"""Empirical-Bayes priors across a fleet's jobs: what each job's own runs say about how jobs scale
with the hardware, pooled into ``PlacementRequest.scaling_prior`` / ``slope_prior`` for every job.

A job speaks only once its runs span two hardware classes (one class cannot tell "scales" from
"flat"): its posterior weight that it scales, and, where its runs fit a line, its slope on the
prior's log speed-up with that slope's precision. The fleet's share of scaling jobs is their mean
weight, shrunk towards duration_model's default by ``SCALING_SHRINK_JOBS`` jobs' worth; the fleet's
slope is the precision-weighted mean of the jobs' slopes, the default counted as one more job. No
I/O; the daemon (runtime) and the replay feed it each job's fit from its duration history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from . import duration_model as dm
from .placement import Estimates, PlacementRequest, ShapeIndex

SCALING_SHRINK_JOBS = 2.0
MIN_CLASSES = 2  # hardware classes a job's runs must span before it says anything


@dataclass(frozen=True, slots=True)
class JobEvidence:
    """What one job's runs say: its weight of scaling, and (precision-weighted weight, slope) when
    its runs fit a slope."""

    scaling: float
    slope: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class FleetPriors:
    """The priors to pass a request (None: duration_model's defaults)."""

    scaling: float | None = None
    slope: float | None = None


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


def fleet_priors(evidence: Mapping[str, JobEvidence | None]) -> FleetPriors:
    """The fleet's priors from each job's evidence (jobs whose runs cannot tell yet are left out)."""
    speaking = [e for e in evidence.values() if e is not None]
    if not speaking:
        return FleetPriors()
    return FleetPriors(fleet_scaling(e.scaling for e in speaking),
                       fleet_slope(e.slope for e in speaking if e.slope is not None))
