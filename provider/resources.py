"""`ComputeShape`, `Job` and `Pipeline`: Pulumi dynamic resources whose inputs are costwise documents.

Each takes a typed args class (or the same fields as keyword arguments); `name` defaults to the
resource's Pulumi name. Extra inputs: `db` (catalog URL; default `COSTWISE_DB`, else the SQLite
catalog under `COSTWISE_HOME`) and, for jobs and pipelines, `cancel_runs_on_delete`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi.dynamic
from pulumi import Input, Output

from .kinds import ComputeShapeProvider, JobProvider, PipelineProvider
from .props import OUTPUT_KEYS


@dataclass
class ComputeShapeArgs:
    vcpus: Input[float]
    memory_gib: Input[float]
    price_per_hour: Input[float]
    name: Optional[Input[str]] = None
    backend: Optional[Input[str]] = None  # local | docker | kubernetes
    gpus: Optional[Input[float]] = None
    gpu_type: Optional[Input[str]] = None
    gpu_memory_gib: Optional[Input[float]] = None
    spot_price_per_hour: Optional[Input[float]] = None
    spot_interruptions_per_hour: Optional[Input[float]] = None
    capacity: Optional[Input[int]] = None
    labels: Optional[Input[Mapping[str, Input[str]]]] = None
    region: Optional[Input[str]] = None
    kueue_queue: Optional[Input[str]] = None  # kubernetes: Jobs created suspended for this Kueue LocalQueue
    allocatable: Optional[Input[Mapping[str, float]]] = None  # {vcpus, memory_gib} a node of the shape gives pods
    db: Optional[Input[str]] = None


@dataclass
class JobArgs:
    artifact: Input[str]  # a file, a folder, a .zip or .tar.gz; content-hashed by `check`
    name: Optional[Input[str]] = None
    entrypoint: Optional[Input[str]] = None
    args: Optional[Input[Sequence[Input[str]]]] = None
    env: Optional[Input[Mapping[str, Input[str]]]] = None  # values given as Pulumi secrets are sealed
    secret_env: Optional[Input[Mapping[str, Input[str]]]] = None  # env:NAME, file:/path, or a secret value
    requirements: Optional[Input[Mapping[str, Any]]] = None
    shape: Optional[Input[str]] = None
    max_runtime: Optional[Input[Any]] = None
    stop_grace: Optional[Input[Any]] = None
    max_wait: Optional[Input[Any]] = None
    expected_duration: Optional[Input[Any]] = None
    retries: Optional[Input[int]] = None
    resume: Optional[Input[bool]] = None
    mounts: Optional[Input[Sequence[Mapping[str, Any]]]] = None
    image: Optional[Input[str]] = None
    labels: Optional[Input[Mapping[str, Input[str]]]] = None
    schedule: Optional[Input[Mapping[str, Any]]] = None
    hooks: Optional[Input[Mapping[str, Any]]] = None
    spot: Optional[Input[str]] = None  # never | allowed | required
    checkpoint_interval: Optional[Input[Any]] = None
    deadline: Optional[Input[Any]] = None
    db: Optional[Input[str]] = None
    cancel_runs_on_delete: Optional[Input[bool]] = None


@dataclass
class PipelineArgs:
    steps: Input[Sequence[Mapping[str, Any]]]
    name: Optional[Input[str]] = None
    parameters: Optional[Input[Mapping[str, Any]]] = None
    backends: Optional[Input[Sequence[str]]] = None  # which backends' shapes its steps may use
    schedule: Optional[Input[Mapping[str, Any]]] = None
    labels: Optional[Input[Mapping[str, Input[str]]]] = None
    hooks: Optional[Input[Mapping[str, Any]]] = None
    db: Optional[Input[str]] = None
    cancel_runs_on_delete: Optional[Input[bool]] = None


def _props(resource_name: str, args: Any, extra: dict[str, Any]) -> dict[str, Any]:
    props = {}
    if args is not None:
        props = {f.name: getattr(args, f.name) for f in dataclasses.fields(args)}
    props.update(extra)
    props = {k: v for k, v in props.items() if v is not None}
    props.setdefault("name", resource_name)
    for key in OUTPUT_KEYS:  # declared so that `resource.fits` etc. are Outputs
        props.setdefault(key, None)
    return props


class ComputeShape(pulumi.dynamic.Resource, module="costwise", name="ComputeShape"):
    """A compute shape in the costwise catalog."""

    name: Output[str]

    def __init__(self, resource_name: str, args: Optional[ComputeShapeArgs] = None,
                 opts: Optional[pulumi.ResourceOptions] = None, **kwargs: Any):
        super().__init__(ComputeShapeProvider(), resource_name, _props(resource_name, args, kwargs), opts)


class Job(pulumi.dynamic.Resource, module="costwise", name="Job"):
    """A job template in the costwise catalog; outputs its artifact hash and the shapes that fit."""

    name: Output[str]
    artifact_hash: Output[str]
    artifact_path: Output[str]
    fits: Output[list]
    cheapest_shape: Output[Optional[str]]
    expected_cost_usd: Output[Optional[float]]

    def __init__(self, resource_name: str, args: Optional[JobArgs] = None,
                 opts: Optional[pulumi.ResourceOptions] = None, **kwargs: Any):
        props = _props(resource_name, args, kwargs)
        artifact = props.get("artifact")
        if isinstance(artifact, str) and not os.path.isabs(os.path.expanduser(artifact)):
            props["artifact"] = os.path.abspath(artifact)  # relative to the program, as a person expects
        props["env"], props["secret_env"] = split_secret_env(props.get("env"), props.get("secret_env"))
        props.setdefault("artifact_hash", None)
        props = {k: v for k, v in props.items() if k not in ("env", "secret_env") or v is not None}
        super().__init__(JobProvider(), resource_name, props, opts)


class Pipeline(pulumi.dynamic.Resource, module="costwise", name="Pipeline"):
    """A pipeline (a DAG of job steps) in the costwise catalog; outputs each step's cheapest shape and
    what its next run is expected to cost (cached steps free; shown by `pulumi preview`)."""

    name: Output[str]
    step_shapes: Output[dict]
    expected_cost_usd: Output[Optional[float]]
    expected_cost_range_usd: Output[Optional[list]]
    unpriced_steps: Output[Optional[list]]

    def __init__(self, resource_name: str, args: Optional[PipelineArgs] = None,
                 opts: Optional[pulumi.ResourceOptions] = None, **kwargs: Any):
        props = _props(resource_name, args, kwargs)
        params = props.get("parameters")
        if isinstance(params, Mapping):  # protobuf has one number type: keep 7.0 a float parameter
            types = {k: "float" for k, v in params.items() if isinstance(v, float)}
            if types:
                props["parameter_types"] = types
        super().__init__(PipelineProvider(), resource_name, props, opts)


def split_secret_env(env: Any, secret_env: Any) -> tuple[Any, Any]:
    """Move `env` values given as Pulumi secrets into `secret_env`, where the provider seals them.

    The engine strips the secret marker before it calls a dynamic provider, so the provider could
    not tell which env values were secret: the program side, which can, sorts them first.
    """
    def dynamic(value: Any) -> bool:
        return isinstance(value, Output) or isawaitable(value)

    env_values = env.values() if isinstance(env, Mapping) else ()
    if env is None or not (dynamic(env) or any(dynamic(v) for v in env_values)):
        return env, secret_env

    async def resolve(value: Any) -> tuple[Any, bool, bool, set]:
        out = Output.from_input(value)
        return (await out.future(with_unknowns=True), await out.is_secret(), await out.is_known(), await out.resources())

    async def split() -> dict[str, Any]:
        plain, hidden, deps, known = {}, {}, set(), True
        hidden_secret = False
        whole, whole_secret, whole_known, whole_deps = await resolve(env) if dynamic(env) else (env, False, True, set())
        deps |= whole_deps
        known &= whole_known
        for key, value in (whole or {}).items():
            val, secret, is_known, res = await resolve(value)
            deps |= res
            known &= is_known
            (hidden if secret or whole_secret else plain)[key] = val
        hidden_secret = bool(hidden)
        if secret_env is not None:
            refs, secret, is_known, res = await resolve(secret_env)
            deps |= res
            known &= is_known
            hidden_secret |= secret
            hidden = {**(refs or {}), **hidden}
        return {"env": plain, "secret_env": hidden, "deps": deps, "known": known, "secret": hidden_secret}

    task = asyncio.ensure_future(split())

    def part(key: str) -> Output:
        async def value():
            return (await task)[key]

        async def deps():
            return (await task)["deps"]

        async def known():
            return (await task)["known"]

        async def secret():
            return key == "secret_env" and (await task)["secret"]

        return Output(deps(), value(), known(), secret())

    return part("env"), part("secret_env")
