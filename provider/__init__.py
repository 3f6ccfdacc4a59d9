"""Pulumi dynamic resources for costwise: ComputeShape, Job and Pipeline, and their providers.

A thin adapter over `scheduler`: the inputs are the documents `costwise apply` takes, validated by
the same parser and stored by the same catalog code.
"""

from scheduler.core.extras import Extra, require

require("pulumi", Extra.PULUMI, "the costwise Pulumi provider")

from .base import CatalogProvider, ProviderError
from .kinds import ComputeShapeProvider, JobProvider, PipelineProvider
from .resources import ComputeShape, ComputeShapeArgs, Job, JobArgs, Pipeline, PipelineArgs

__all__ = [
    "CatalogProvider",
    "ComputeShape",
    "ComputeShapeArgs",
    "ComputeShapeProvider",
    "Job",
    "JobArgs",
    "JobProvider",
    "Pipeline",
    "PipelineArgs",
    "PipelineProvider",
    "ProviderError",
]
