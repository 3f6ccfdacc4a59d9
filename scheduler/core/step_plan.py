"""What to do with one pipeline step, decided from data alone (pure: no store, no files, no clock).

The runtime gathers what the decision needs — the run's state so far, the condition's document, the
cache lookup — and passes it in; the planner answers with a typed plan that the runtime executes:

- ``Skip(reason)``: the run was canceled, an upstream step did not succeed, or ``when`` is false;
- ``Fail(message)``: a ``fail`` step, or a condition that cannot be evaluated;
- ``Hit(entry)``: the step cache holds its outputs;
- ``Miss(reason, key, parts)`` / ``Sweep(reason, key, parts)``: run the step (or its sweep's trials).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from . import cache
from .errors import CostwiseError
from .pipelines import Step, evaluate_condition, referenced_params
from .runs import CACHED, SUCCEEDED
from .specs import JobSpec
from .sweeps import SweepSpec

OK_STATES = (SUCCEEDED, CACHED)


@dataclass(frozen=True)
class RunSoFar:
    """What a pipeline run knows when it plans a step: its parameters, what it was told to force,
    the final state and outputs of each step that ended, and whether a cancel was requested."""

    params: Mapping[str, Any]
    states: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    force_all: bool = False
    force_steps: frozenset[str] = frozenset()
    canceled: bool = False

    def forced(self, step: Step) -> bool:
        return self.force_all or step.name in self.force_steps


@dataclass(frozen=True)
class ConditionDocument:
    """The JSON document a ``when`` reads, or why it could not be read."""

    value: Any = None
    error: str | None = None


@dataclass(frozen=True)
class StepKey:
    """A step's inputs (output references of upstream steps) and its cache key with the key's parts."""

    inputs: dict[str, dict[str, Any]]
    key: str
    parts: dict[str, Any]


@dataclass(frozen=True)
class CacheLookup:
    """What the step cache answered for a key: a verified entry, or why a found entry was broken;
    and the key parts of this step's last cached run (to say what changed)."""

    entry: dict[str, Any] | None = None
    problem: str | None = None
    last_parts: dict[str, Any] | None = None


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass(frozen=True)
class Fail:
    message: str


@dataclass(frozen=True)
class Hit:
    entry: dict[str, Any]


@dataclass(frozen=True)
class Miss:
    reason: str
    key: str
    parts: dict[str, Any]


@dataclass(frozen=True)
class Sweep(Miss):
    """A sweep step that must run its trials (a miss, like ``Miss``)."""


Gate = Skip | Fail
StepPlan = Skip | Fail | Hit | Miss


def sweep_key_part(sweep: SweepSpec) -> dict[str, Any]:
    """The sweep definition as it enters the step's cache key (trials as the count actually run)."""
    return {**sweep.model_dump(mode="json", exclude_none=True), "trials": sweep.trial_count}


def step_key(step: Step, job: JobSpec, so_far: RunSoFar) -> StepKey:
    """The step's inputs and cache key, for ``job`` as the step runs it (parameters substituted)."""
    inputs = {}
    for name, ref in step.inputs.items():
        upstream, output = ref.split("/", 1)
        inputs[name] = so_far.outputs[upstream][output]
    parts = cache.key_parts(
        job, {p: so_far.params[p] for p in referenced_params(step)},
        {name: ref["sha256"] for name, ref in inputs.items()}, step.outputs, step.cache_version,
        sweep=sweep_key_part(step.sweep) if step.sweep is not None else None,
    )
    return StepKey(inputs, cache.cache_key(parts), parts)


def needs_lookup(step: Step, so_far: RunSoFar) -> bool:
    """Whether the step cache is consulted at all (not for ``cache: false`` or a forced rerun)."""
    return step.cache and not so_far.forced(step)


def gate_step(step: Step, so_far: RunSoFar, condition: ConditionDocument | None = None) -> Gate | None:
    """The plan of a step decided before anything is looked up or launched, or None when it may run."""
    if so_far.canceled:
        return Skip("the pipeline run was canceled")
    bad = [u for u in sorted(step.upstream()) if so_far.states[u] not in OK_STATES]
    if bad:
        return Skip(f"upstream step {bad[0]} is {so_far.states[bad[0]]}")
    if step.when is not None:
        if condition is None or condition.error is not None:
            why = condition.error if condition is not None else "its document was not read"
            return Fail(f"condition could not be evaluated: {why}")
        try:
            ok, why = evaluate_condition(step.when, condition.value, dict(so_far.params))
        except (CostwiseError, KeyError, ValueError, TypeError) as exc:  # incomparable values, missing path
            return Fail(f"condition could not be evaluated: {exc}")
        if not ok:
            return Skip(f"condition false: {why}")
    if step.fail is not None:
        return Fail(step.fail)
    return None


def plan_step(
    step: Step,
    so_far: RunSoFar,
    key: StepKey,
    lookup: CacheLookup | None = None,
    condition: ConditionDocument | None = None,
) -> StepPlan:
    """What to do with ``step``: the gate's Skip / Fail, else a Hit from ``lookup`` or a Miss (a Sweep
    for a sweep step) whose reason names what changed. ``lookup`` is None when none was made."""
    gate = gate_step(step, so_far, condition)
    if gate is not None:
        return gate
    miss = Sweep if step.sweep is not None else Miss
    if not step.cache:
        return miss("cache: false on this step", key.key, key.parts)
    if so_far.forced(step):
        return miss("forced rerun", key.key, key.parts)
    lookup = lookup or CacheLookup()
    if lookup.entry is not None:
        return Hit(lookup.entry)
    return miss(lookup.problem or cache.explain_miss(lookup.last_parts, key.parts), key.key, key.parts)
