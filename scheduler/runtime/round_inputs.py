"""What a dispatch round tells placement beyond one run (as the replay does): each job's runs in flight,
the live runs of full shapes for their expected waits, and the fleet's priors -- read from the store.

The fleet's priors pool every job's duration history (core/fleet_priors.py). They move only as runs
finish, and slowly, so they are recomputed at most every ``FLEET_PRIORS_TTL_S`` (one query for all
histories, a fit per job whose runs span two shapes; pooled by the jobs' labels too), not per round: a round costs one grouped count
(which also gives the slots in use) and, only when a decision meets a full shape, one read of its runs.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from ..core.clock import Clock
from ..core.fit import PlacementRequest
from ..core.fleet_priors import FleetPriors, fleet_priors, history_evidence
from ..core.shape_index import ShapeIndex
from ..core.specs import JobSpec
from ..store import dispatch_queries
from ..store.store import Store

FLEET_PRIORS_TTL_S = 60.0


class FleetPriorsCache:
    """The fleet's priors, recomputed from the store at most every ``FLEET_PRIORS_TTL_S``."""

    def __init__(self, store: Store, clock: Clock):
        self.store, self.clock = store, clock
        self._lock = threading.Lock()
        self._at: float | None = None
        self._priors = FleetPriors()

    def get(self, index: ShapeIndex) -> FleetPriors:
        with self._lock:
            mono = self.clock.monotonic()
            if self._at is None or mono - self._at >= FLEET_PRIORS_TTL_S:
                self._priors = self._compute(index, self._priors)
                self._at = mono
            return self._priors

    def _compute(self, index: ShapeIndex, previous: FleetPriors) -> FleetPriors:
        """Each job's evidence under the priors its requests were placed with (the last ones), pooled."""
        evidence, labels = {}, {}
        for job, history in dispatch_queries.fleet_histories(self.store).items():
            spec = self.store.get("Job", job)
            if not isinstance(spec, JobSpec):
                continue  # a job no longer declared: its runs placed nothing that is still to come
            req = replace(PlacementRequest.for_job(spec), scaling_prior=previous.scaling_for(job, spec.labels),
                          slope_prior=previous.slope)
            evidence[job], labels[job] = history_evidence(req, index, history), spec.labels
        return fleet_priors(evidence, labels)
