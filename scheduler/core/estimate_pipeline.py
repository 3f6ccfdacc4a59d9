"""A pipeline run's expected cost before it runs (pure: what it reads comes in as functions).

The steps are walked in the runner's order and planned as the runner plans them (``step_plan``):
a step whose cache key -- computed from the current job, args, parameters and its inputs' hashes --
has a cached entry is a hit and costs $0; a step with an upstream step that will run again is a
miss (its inputs are not known before that step has run, and a change upstream is what changes
them); a ``fail`` step and the steps after it cost nothing; a ``when`` whose document comes from a
cached step is evaluated, one whose document is not known yet is taken to hold (the dearer case).

The total's range adds the steps' p10s and p90s: as if the steps' errors moved together, a wider
range than independent errors would give, which is the safe side for a budget.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Callable, Mapping

from .estimate import JobEstimate, Source, sweep_cost
from .pipelines import PipelineSpec, Step
from .runs import CACHED, FAILED, SKIPPED, SUCCEEDED
from .specs import JobSpec
from .step_plan import (CacheLookup, ConditionDocument, Fail, Hit, RunSoFar, Skip, StepKey, gate_step, needs_lookup,
                        plan_step, step_key)


class Outcome(StrEnum):
    """What the step is expected to do on the next run."""

    RUN = "run"
    SWEEP = "sweep"
    CACHED = "cached"
    SKIPPED = "skipped"
    FAILS = "fails"
    UNKNOWN = "unknown"  # its job is not in the catalog


_STATE = {Outcome.RUN: SUCCEEDED, Outcome.SWEEP: SUCCEEDED, Outcome.CACHED: CACHED, Outcome.SKIPPED: SKIPPED,
          Outcome.FAILS: FAILED, Outcome.UNKNOWN: SUCCEEDED}


@dataclass(frozen=True)
class StepEstimate:
    step: str
    outcome: Outcome
    reason: str
    expected_cost_usd: float | None
    p10_usd: float | None
    p90_usd: float | None
    estimate: JobEstimate | None = None  # the run's (a sweep's: one trial's)
    trials: int | None = None
    saved_usd: float = 0.0  # a hit: what the cached run cost

    @property
    def source(self) -> Source | None:
        return Source.CACHED if self.outcome is Outcome.CACHED else self.estimate.duration_source if self.estimate else None

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(outcome=str(self.outcome), estimate=self.estimate.public() if self.estimate else None,
                   source=str(self.source) if self.source else None)
        return out


@dataclass(frozen=True)
class PipelineEstimate:
    pipeline: str
    steps: list[StepEstimate]
    expected_cost_usd: float  # of the steps with a figure (``unknown`` lists the others)
    p10_usd: float
    p90_usd: float
    unknown: list[str] = field(default_factory=list)
    saved_usd: float = 0.0

    def public(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "expected_cost_usd": self.expected_cost_usd, "p10_usd": self.p10_usd,
                "p90_usd": self.p90_usd, "unknown": list(self.unknown), "saved_usd": self.saved_usd,
                "steps": [s.public() for s in self.steps]}


@dataclass(frozen=True)
class Readers:
    """What the walk reads, as functions: the job a step runs (None: not in the catalog), the cache's
    answer for a key, a ``when``'s document, and a run's estimate."""

    job_for: Callable[[Step], JobSpec | None]
    lookup: Callable[[Step, str], CacheLookup]
    condition_for: Callable[[Step, RunSoFar], ConditionDocument | None]
    estimate_for: Callable[[JobSpec], JobEstimate]


def estimate_pipeline(spec: PipelineSpec, params: Mapping[str, Any], read: Readers,
                      force_steps: frozenset[str] = frozenset(), force_all: bool = False) -> PipelineEstimate:
    """Every step's expected outcome and cost on the next run with these parameters, and the total."""
    states: dict[str, str] = {}
    outputs: dict[str, Mapping[str, Any]] = {}  # of the steps predicted as hits: their cached outputs
    steps = []
    for name in spec.order():
        step = spec.step(name)
        so_far = RunSoFar(params=params, states=dict(states), outputs=dict(outputs), force_all=force_all,
                          force_steps=force_steps)
        one, hit_outputs = _step(step, so_far, read)
        if hit_outputs is not None:
            outputs[name] = hit_outputs
        states[name] = _STATE[one.outcome]
        steps.append(one)
    return _total(spec.name, steps)


def _step(step: Step, so_far: RunSoFar, read: Readers) -> tuple[StepEstimate, Mapping[str, Any] | None]:
    """The step's estimate, and its cached outputs when it is predicted as a hit."""
    condition_known = step.when is not None and step.when.step in so_far.outputs
    gated = step if step.when is None or condition_known else step.model_copy(update={"when": None})
    condition = read.condition_for(step, so_far) if condition_known else None
    gate = gate_step(gated, so_far, condition)
    if isinstance(gate, Skip):
        return StepEstimate(step.name, Outcome.SKIPPED, gate.reason, 0.0, 0.0, 0.0), None
    if isinstance(gate, Fail):
        return StepEstimate(step.name, Outcome.FAILS, gate.message, 0.0, 0.0, 0.0), None
    job = read.job_for(step)
    if job is None:
        return StepEstimate(step.name, Outcome.UNKNOWN, f"job {step.job_name!r} is not in the catalog",
                            None, None, None), None
    rerun = sorted(u for u in step.upstream() if u not in so_far.outputs)
    if rerun:
        return _running(step, job, f"upstream step {rerun[0]} runs again: its outputs are not known yet", read), None
    key: StepKey = step_key(step, job, so_far)
    lookup = read.lookup(step, key.key) if needs_lookup(step, so_far) else None
    plan = plan_step(gated, so_far, key, lookup, condition)
    if isinstance(plan, Hit):
        origin = plan.entry.get("run_id") or "an earlier run"
        one = StepEstimate(step.name, Outcome.CACHED, f"key matches the cached outputs of {origin}", 0.0, 0.0, 0.0,
                           saved_usd=float(plan.entry.get("cost_usd") or 0.0))
        return one, plan.entry.get("outputs", {})
    return _running(step, job, plan.reason, read), None


def _running(step: Step, job: JobSpec, reason: str, read: Readers) -> StepEstimate:
    """A step that runs (a sweep step: its trials under its budget)."""
    run = read.estimate_for(job)
    if step.sweep is None:
        return StepEstimate(step.name, Outcome.RUN, reason, run.expected_cost_usd, run.p10_usd, run.p90_usd, run)
    sweep = step.sweep
    cost = sweep_cost(run, sweep.trial_count, sweep.parallel, sweep.budget_usd)
    return StepEstimate(step.name, Outcome.SWEEP, f"{reason}; {cost.reason}", cost.expected_usd, cost.p10_usd,
                        cost.p90_usd, run, cost.trials)


def _total(pipeline: str, steps: list[StepEstimate]) -> PipelineEstimate:
    known = [s for s in steps if s.expected_cost_usd is not None]
    return PipelineEstimate(
        pipeline, steps, sum(s.expected_cost_usd for s in known), sum(s.p10_usd for s in known),
        sum(s.p90_usd for s in known), [s.step for s in steps if s.expected_cost_usd is None],
        sum(s.saved_usd for s in steps),
    )
