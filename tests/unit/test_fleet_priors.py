"""The fleet's empirical-Bayes priors (core/fleet_priors.py): what each job's runs say, pooled."""

import pytest

from scheduler.core import duration_model as dm
from scheduler.core.dispatch import DispatchRound
from scheduler.core.fleet_priors import (
    LABEL_SHRINK_JOBS, FleetPriors, JobEvidence, LabelPools, fleet_priors, fleet_scaling, fleet_slope,
    history_evidence,
)
from scheduler.core.placement import PlacementRequest, ShapeIndex
from scheduler.core.specs import Requirements, ShapeSpec


def gpu(name, gpu_type, price):
    return ShapeSpec(name=name, vcpus=8, memory_gib=32, gpus=1, gpu_type=gpu_type, price_per_hour=price,
                     capacity=1, backend="local")


INDEX = ShapeIndex([gpu("m60", "M60", 1.0), gpu("t4", "T4", 1.5), gpu("a100", "A100", 4.0)])
REQ = PlacementRequest(job="j", requirements=Requirements(gpus=1, cpus=1, memory_gib=1))


def test_a_job_on_one_kind_of_hardware_says_nothing():
    assert history_evidence(REQ, INDEX, {}) is None
    assert history_evidence(REQ, INDEX, {"m60": (3000.0, 50)}) is None


def test_a_job_that_scales_and_one_that_does_not_say_so():
    scales = history_evidence(REQ, INDEX, {"m60": (3000.0, 20), "t4": (1500.0, 20), "a100": (500.0, 20)})
    flat = history_evidence(REQ, INDEX, {"m60": (3000.0, 20), "t4": (3000.0, 20), "a100": (3000.0, 20)})
    assert scales.scaling > 0.9 and flat.scaling < 0.3
    weight, slope = scales.slope
    assert weight > 0 and slope > 0.5


def test_the_fleet_shrinks_towards_the_defaults():
    assert fleet_priors({}) == FleetPriors() == fleet_priors({"quiet": None})
    assert fleet_scaling([]) == dm.SCALING_PRIOR
    assert fleet_scaling([1.0]) == pytest.approx((1.0 + 2 * dm.SCALING_PRIOR) / 3)
    assert fleet_slope([]) is None
    assert fleet_slope([(1e9, 1.2)]) == pytest.approx(1.2)  # a very sure job outweighs the default
    assert fleet_slope([(1e-9, 1.2)]) == pytest.approx(dm.SLOPE_MEAN)


def test_the_fleet_pools_every_speaking_job():
    priors = fleet_priors({"a": JobEvidence(1.0, (10.0, 1.0)), "b": JobEvidence(0.0, None), "c": None})
    assert priors.scaling == pytest.approx((1.0 + 0.0 + 2 * dm.SCALING_PRIOR) / 4)
    assert dm.SLOPE_MEAN < priors.slope < 1.0
    assert fleet_priors({"b": JobEvidence(0.0, None)}).slope is None


SERVICE, TRAINING = {"kind": "service"}, {"kind": "training", "team": "nlp"}


def test_jobs_alike_by_labels_share_their_scaling_share():
    evidence = {f"svc{i}": JobEvidence(0.02, None) for i in range(6)}
    evidence.update({f"train{i}": JobEvidence(0.98, None) for i in range(6)})
    labels = {job: SERVICE if job.startswith("svc") else TRAINING for job in evidence}
    priors = fleet_priors(evidence, labels)
    fleet = priors.scaling
    assert 0.4 < fleet < 0.6  # the fleet's share fits neither kind
    new_service, new_training = priors.scaling_for("svc-new", SERVICE), priors.scaling_for("t-new", TRAINING)
    assert new_service < 0.2 and new_training > 0.85
    # a pool is learned from its jobs, not assumed from the label's words: the same runs, labels swapped
    swapped = fleet_priors(evidence, {job: TRAINING if lab is SERVICE else SERVICE for job, lab in labels.items()})
    assert swapped.scaling_for("x", TRAINING) < 0.2 and swapped.scaling_for("x", SERVICE) > 0.85
    # labels nobody else carries, or none: the fleet's share
    assert priors.scaling_for("loner", {"kind": "batch"}) == priors.scaling_for("bare", {}) == fleet
    assert fleet_priors(evidence).scaling_for("svc-new", SERVICE) == fleet  # no labels given: no pools


def test_a_job_is_not_its_own_prior_and_shared_pairs_count_for_each():
    pools = LabelPools()
    pools.set("a", TRAINING, 1.0)
    assert pools.scaling("a", TRAINING, 0.5) == 0.5  # only itself in its pools
    pools.set("b", {"kind": "training"}, 1.0)
    pools.set("c", {"team": "nlp", "kind": "training"}, 0.0)
    # for a (kind=training, team=nlp): b once (kind), c twice (kind and team), a itself left out
    expected = (1.0 + 0.0 + 0.0 + LABEL_SHRINK_JOBS * 0.5) / (3 + LABEL_SHRINK_JOBS)
    assert pools.scaling("a", TRAINING, 0.5) == pytest.approx(expected)
    pools.set("c", TRAINING, None)  # c no longer says anything (its runs aged out)
    pools.set("b", {"kind": "training"}, 0.0)  # b changed its mind: replaced, not added
    assert pools.scaling("a", TRAINING, 0.5) == pytest.approx((0.0 + LABEL_SHRINK_JOBS * 0.5) / (1 + LABEL_SHRINK_JOBS))


def test_a_dispatch_round_asks_for_the_share_of_the_jobs_labels():
    evidence = {f"svc{i}": JobEvidence(0.0, None) for i in range(8)}
    evidence["train0"] = JobEvidence(1.0, None)
    labels = {job: SERVICE if job.startswith("svc") else TRAINING for job in evidence}
    priors = fleet_priors(evidence, labels)
    round = DispatchRound(INDEX, {}, fleet=priors)
    service, unlabelled = round.request(REQ, SERVICE), round.request(REQ)
    assert service.scaling_prior == pytest.approx(priors.scaling_for("j", SERVICE))
    assert service.scaling_prior < unlabelled.scaling_prior
    assert unlabelled.scaling_prior == priors.scaling
    pinned = PlacementRequest(job="j", requirements=REQ.requirements, scaling_prior=0.9)
    assert round.request(pinned, SERVICE).scaling_prior == 0.9  # a request's own prior is kept
