"""Pipeline specs (Azure ML / SageMaker style): a DAG of steps with parameters, inputs, outputs,
conditions, fail steps and per-step compute. Pure: validation and planning, no I/O."""

from __future__ import annotations

import operator
import re
from graphlib import CycleError, TopologicalSorter
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from .bounds import FILE_NAME_MAX_BYTES, GPU_MEMORY_GIB_MAX, GPUS_MAX, LIST_MAX, MEMORY_GIB_MAX, STEPS_MAX, VCPUS_MAX
from .errors import ConditionError, SpecError
from .plain_values import scalar_problem, short_repr
from .specs import (
    NAME_PATTERN, EnvMap, Hooks, Labels, Scalar, Schedule, Seconds, Spec, StrList, StrMap, _duration, register_kind,
)
from .sweeps import SweepSpec, trial_refs

PARAM_REF = re.compile(r"\$\{params\.([A-Za-z_][A-Za-z0-9_]*)\}")
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}


class StepRequirements(Spec):
    """Per-step overrides of the job's requirements: only the fields given replace the job's."""

    cpus: float | None = Field(None, ge=0, le=VCPUS_MAX)
    memory_gib: float | None = Field(None, ge=0, le=MEMORY_GIB_MAX)
    gpus: float | None = Field(None, ge=0, le=GPUS_MAX)
    gpu_type: str | None = None
    gpu_memory_gib: float | None = Field(None, ge=0, le=GPU_MEMORY_GIB_MAX)


class Condition(Spec):
    value: str  # "step/file.json#a.b"
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    than: Scalar

    @model_validator(mode="after")
    def _reference(self) -> "Condition":
        step, sep, rest = self.value.partition("/")
        if not sep or not step or not rest.partition("#")[0]:
            raise ValueError(f"value {self.value!r} is not 'step/output.json#json.path'")
        return self

    @property
    def step(self) -> str:
        return self.value.split("/", 1)[0]

    @property
    def output(self) -> str:
        return self.value.split("/", 1)[1].partition("#")[0]

    @property
    def path(self) -> list[str]:
        path = self.value.partition("#")[2]
        return [p for p in path.split(".") if p] if path else []


class Step(Spec):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    job: str | None = None
    fail: str | None = None
    sweep: SweepSpec | None = None
    args: StrList | None = None
    env: EnvMap = {}
    inputs: StrMap = {}  # name in COSTWISE_INPUT_DIR -> "step/output"
    outputs: Annotated[list[str], Field(max_length=LIST_MAX)] = []
    requirements: StepRequirements | None = None
    shape: str | None = None
    max_runtime: Annotated[Seconds | None, _duration("max_runtime")] = None
    when: Condition | None = None
    cache: bool = True
    cache_version: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "Step":
        if sum(x is not None for x in (self.job, self.fail, self.sweep)) != 1:
            raise ValueError(f"step {self.name!r} names exactly one of 'job', 'fail' or 'sweep'")
        for name, ref in self.inputs.items():
            step, sep, output = ref.partition("/")
            if not sep or not step or not output:
                raise ValueError(f"input {name!r}: {ref!r} is not 'step/output'")
        for name in [*self.outputs, *self.inputs]:
            if "/" in name or name in ("", ".", ".."):
                raise ValueError(f"{name!r} is not a plain file name")
            if len(name.encode()) > FILE_NAME_MAX_BYTES:
                raise ValueError(f"{short_repr(name)} is longer than a file name may be ({FILE_NAME_MAX_BYTES} bytes)")
        used = sorted(trial_refs([*(self.args or []), *self.env.values()]))
        if self.sweep is None:
            if used:
                raise ValueError(f"step {self.name!r} uses ${{trial.{used[0]}}}, but only sweep steps have trial parameters")
        else:
            unknown = [u for u in used if u not in self.sweep.parameters]
            if unknown:
                declared = ", ".join(sorted(self.sweep.parameters)) or "none"
                raise ValueError(
                    f"step {self.name!r} uses ${{trial.{unknown[0]}}}, which is not a sweep parameter (declared: {declared})"
                )
            if self.sweep.objective.output not in self.outputs:
                raise ValueError(
                    f"step {self.name!r} sweep objective reads {self.sweep.objective.output!r}, which the step does "
                    f"not declare as an output (outputs: {self.outputs})"
                )
        return self

    @property
    def job_name(self) -> str | None:
        """The job this step runs: its ``job``, or its sweep's job; None for a ``fail`` step."""
        return self.sweep.job if self.sweep is not None else self.job

    def upstream(self) -> set[str]:
        deps = {ref.split("/", 1)[0] for ref in self.inputs.values()}
        if self.when is not None:
            deps.add(self.when.step)
        return deps


class PipelineSpec(Spec):
    kind: Literal["Pipeline"] = "Pipeline"
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    parameters: Annotated[dict[str, Scalar], Field(max_length=LIST_MAX)] = {}
    steps: list[Step] = Field(min_length=1, max_length=STEPS_MAX)
    backends: Annotated[list[Literal["local", "docker", "kubernetes"]], Field(max_length=3)] | None = None
    schedule: Schedule | None = None
    labels: Labels = {}
    hooks: Hooks = Hooks()

    @model_validator(mode="after")
    def _graph(self) -> "PipelineSpec":
        names = [s.name for s in self.steps]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise ValueError(f"step name {dup!r} is used twice")
        by_name = {s.name: s for s in self.steps}
        for step in self.steps:
            for name, ref in step.inputs.items():
                src, _, output = ref.partition("/")
                if src not in by_name:
                    raise ValueError(f"step {step.name!r} input {name!r} refers to unknown step {src!r}")
                if output not in by_name[src].outputs:
                    raise ValueError(
                        f"step {step.name!r} input {name!r} refers to {ref!r}, but step {src!r} declares "
                        f"outputs {by_name[src].outputs}"
                    )
            if step.when is not None:
                if step.when.step not in by_name:
                    raise ValueError(f"step {step.name!r} condition refers to unknown step {step.when.step!r}")
                if step.when.output not in by_name[step.when.step].outputs:
                    raise ValueError(
                        f"step {step.name!r} condition reads {step.when.output!r}, which step "
                        f"{step.when.step!r} does not declare as an output"
                    )
            for text in _texts(step):
                for ref in PARAM_REF.findall(text):
                    if ref not in self.parameters:
                        raise ValueError(f"step {step.name!r} uses ${{params.{ref}}}, which is not a parameter")
        try:
            self.order()
        except CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise ValueError(f"steps form a cycle: {cycle}") from None
        return self

    def order(self) -> list[str]:
        """Step names in a topological order (declared order among independent steps)."""
        graph = TopologicalSorter({s.name: sorted(s.upstream()) for s in self.steps})
        graph.prepare()
        position = {s.name: i for i, s in enumerate(self.steps)}
        order = []
        while graph.is_active():
            ready = sorted(graph.get_ready(), key=position.get)
            order.extend(ready)
            graph.done(*ready)
        return order

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def job_names(self) -> set[str]:
        return {s.job_name for s in self.steps if s.job_name}

    def dependants(self, name: str) -> set[str]:
        """Every step downstream of ``name`` (transitively)."""
        out, frontier = set(), {name}
        while frontier:
            nxt = {s.name for s in self.steps if s.upstream() & frontier} - out
            out |= nxt
            frontier = nxt
        return out


def _texts(step: Step) -> list[str]:
    texts = list(step.args or []) + list(step.env.values())
    if step.when is not None and isinstance(step.when.than, str):
        texts.append(step.when.than)
    return texts


register_kind("Pipeline", PipelineSpec)


# -- parameters ------------------------------------------------------------------------------------
def parse_params(spec: PipelineSpec, pairs: dict[str, str]) -> dict[str, Any]:
    """Parameter values: defaults, with `--param k=v` strings parsed to each default's type."""
    values = dict(spec.parameters)
    for key, text in pairs.items():
        if key not in spec.parameters:
            known = ", ".join(spec.parameters) or "none"
            raise SpecError(f"--param {key}={text!r}: {spec.name!r} has no parameter {key!r} (known: {known})", "param", key)
        default = spec.parameters[key]
        try:
            values[key] = _typed(text, default)
        except ValueError:
            raise SpecError(
                f"--param {key}={short_repr(text)} is not a {type(default).__name__} like the default {default!r}",
                "param", text,
            ) from None
        why = scalar_problem(values[key])
        if why:
            raise SpecError(f"--param {key}={short_repr(text)} {why}", "param", text)
    return values


def _typed(text: str, default: Any) -> Any:
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError(text)
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return text


def substitute(text: str, params: dict[str, Any]) -> str:
    return PARAM_REF.sub(lambda m: _render(params[m.group(1)]), text)


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def referenced_params(step: Step) -> set[str]:
    return {ref for text in _texts(step) for ref in PARAM_REF.findall(text)}


def resolve_than(condition: Condition, params: dict[str, Any]) -> Any:
    than = condition.than
    if isinstance(than, str):
        match = PARAM_REF.fullmatch(than.strip())
        than = params[match.group(1)] if match else substitute(than, params)
    return than


def evaluate_condition(condition: Condition, document: Any, params: dict[str, Any]) -> tuple[bool, str]:
    """Compare the value at the condition's JSON path with its threshold; (result, explanation)."""
    value = document
    for part in condition.path:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise SpecError(f"condition {condition.value!r}: no {part!r} in the output", "when", condition.value)
    than = resolve_than(condition, params)
    if _kind(value) == "number" and isinstance(than, str):  # a threshold from a --param arrives as text
        try:
            than = float(than)
        except ValueError:
            pass
    _check_comparable(condition, value, than)
    result = bool(OPS[condition.op](value, than))
    return result, f"{condition.value} = {value!r} {condition.op} {than!r} is {result}"


ORDERED_KINDS = frozenset({"number", "string"})  # strings order as text (ISO dates compare right)


def _kind(value: Any) -> str:
    """What a condition may compare a value with: numbers (int and float alike) with numbers, strings
    with strings, booleans with booleans (== and != only); null with nothing."""
    if isinstance(value, bool):  # before int: True is an int to Python, not to a condition
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "null" if value is None else type(value).__name__


def _check_comparable(condition: Condition, value: Any, than: Any) -> None:
    kind, than_kind = _kind(value), _kind(than)
    ordering = condition.op not in ("==", "!=")
    if kind != than_kind or kind not in ("number", "string", "boolean") or (ordering and kind not in ORDERED_KINDS):
        raise ConditionError(
            f"condition {condition.value!r}: cannot compare {value!r} ({kind}) {condition.op} {than!r} ({than_kind})",
            "when", condition.value,
        )
