"""The fleet's empirical-Bayes priors (core/fleet_priors.py): what each job's runs say, pooled."""

import pytest

from scheduler.core import duration_model as dm
from scheduler.core.fleet_priors import (
    FleetPriors, JobEvidence, fleet_priors, fleet_scaling, fleet_slope, history_evidence,
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
