"""Specs for shapes and jobs: frozen pydantic models shared by apply, the provider and the daemon.

Every validation error becomes a one-line ``SpecError`` naming the field path and the value.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .durations import DEFAULT_MAX_RUNTIME_S, MAX_RUNTIME_CAP_S, parse_duration
from .errors import SpecError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
BACKENDS = ("local", "docker", "kubernetes")


def _duration(field: str):
    return BeforeValidator(lambda v: None if v is None else parse_duration(v, field=field))


def _stringify(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    return value


def _str_map(value: Any) -> Any:
    return {k: _stringify(v) for k, v in value.items()} if isinstance(value, dict) else value


def _str_list(value: Any) -> Any:
    return [_stringify(v) for v in value] if isinstance(value, list) else value


Name = Annotated[str, Field(pattern=NAME_PATTERN)]
StrMap = Annotated[dict[str, str], BeforeValidator(_str_map)]
StrList = Annotated[list[str], BeforeValidator(_str_list)]
Seconds = Annotated[float, Field(ge=0)]


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Requirements(Spec):
    cpus: float = Field(1.0, ge=0)
    memory_gib: float = Field(1.0, ge=0)
    gpus: float = Field(0.0, ge=0)
    gpu_type: str | None = None
    gpu_memory_gib: float = Field(0.0, ge=0)


class ShapeSpec(Spec):
    kind: Literal["Shape"] = "Shape"
    name: Name
    backend: Literal["local", "docker", "kubernetes"] = "local"
    vcpus: float = Field(gt=0)
    memory_gib: float = Field(gt=0)
    gpus: float = Field(0.0, ge=0)
    gpu_type: str | None = None
    gpu_memory_gib: float = Field(0.0, ge=0)
    price_per_hour: float = Field(ge=0)
    spot_price_per_hour: float | None = Field(None, ge=0)
    capacity: int = Field(1, ge=1)
    labels: StrMap = {}
    region: str | None = None

    @model_validator(mode="after")
    def _gpu_type_needs_gpus(self) -> "ShapeSpec":
        if self.gpu_type and self.gpus <= 0:
            raise ValueError(f"gpu_type {self.gpu_type!r} given but gpus is {self.gpus:g}")
        return self


class Mount(Spec):
    source: str
    path: str
    read_only: bool = False


class Schedule(Spec):
    cron: str | None = None
    interval: Annotated[float | None, _duration("schedule.interval")] = None
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _exactly_one(self) -> "Schedule":
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of 'cron' or 'interval'")
        if self.interval is not None and self.interval < 1:
            raise ValueError(f"interval {self.interval:g}s is shorter than 1s")
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron, timezone=self.timezone)
            except ValueError as exc:
                raise ValueError(f"cron {self.cron!r} is not a valid crontab line: {exc}") from None
        return self


class Hook(Spec):
    job: str | None = None
    pipeline: str | None = None
    webhook: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Hook":
        if sum(x is not None for x in (self.job, self.pipeline, self.webhook)) != 1:
            raise ValueError("a hook names exactly one of 'job', 'pipeline' or 'webhook'")
        return self


class Hooks(Spec):
    on_success: list[Hook] = []
    on_failure: list[Hook] = []
    on_timeout: list[Hook] = []


class JobSpec(Spec):
    kind: Literal["Job"] = "Job"
    name: Name
    artifact: str
    artifact_hash: str | None = None
    entrypoint: str | None = None
    args: StrList = []
    env: StrMap = {}
    secret_env: StrMap = {}
    requirements: Requirements = Requirements()
    shape: str | None = None
    max_runtime: Annotated[Seconds, _duration("max_runtime")] = DEFAULT_MAX_RUNTIME_S
    stop_grace: Annotated[Seconds, _duration("stop_grace")] = 10.0
    max_wait: Annotated[Seconds, _duration("max_wait")] = 600.0
    expected_duration: Annotated[Seconds | None, _duration("expected_duration")] = None
    retries: int = Field(0, ge=0, le=100)
    resume: bool = False
    mounts: list[Mount] = []
    image: str | None = None
    labels: StrMap = {}
    schedule: Schedule | None = None
    hooks: Hooks = Hooks()

    @field_validator("max_runtime")
    @classmethod
    def _cap(cls, v: float) -> float:
        if v > MAX_RUNTIME_CAP_S:
            raise ValueError(f"more than the 30-day cap ({v:g}s > {MAX_RUNTIME_CAP_S}s)")
        if v <= 0:
            raise ValueError("must be more than 0s")
        return v

    @field_validator("secret_env")
    @classmethod
    def _references_only(cls, v: dict[str, str]) -> dict[str, str]:
        for key, ref in v.items():
            if not (ref.startswith("env:") or ref.startswith("file:")):
                raise ValueError(
                    f"{key}: secrets are references, 'env:NAME' or 'file:/path', not values"
                )
        return v

    @model_validator(mode="after")
    def _env_names_unique(self) -> "JobSpec":
        both = set(self.env) & set(self.secret_env)
        if both:
            raise ValueError(f"{sorted(both)[0]!r} is in both env and secret_env")
        return self


class RunOverrides(Spec):
    """What one run may change of its job (OCI job-run overrides)."""

    env: StrMap = {}
    args: StrList | None = None
    shape: str | None = None
    max_runtime: Annotated[Seconds | None, _duration("max_runtime")] = None

    @field_validator("max_runtime")
    @classmethod
    def _cap(cls, v: float | None) -> float | None:
        if v is not None and not 0 < v <= MAX_RUNTIME_CAP_S:
            raise ValueError(f"{v:g}s is outside (0s, 30d]")
        return v


def parse_overrides(data: dict[str, Any]) -> RunOverrides:
    """Run overrides from the CLI's flags or an API body; one-line SpecError on bad values."""
    clean = {k: v for k, v in data.items() if v not in (None, [], {})}
    try:
        return RunOverrides.model_validate(clean)
    except ValidationError as exc:
        raise describe_error(exc, RunOverrides, "run override") from None


SPEC_KINDS: dict[str, type[Spec]] = {"Shape": ShapeSpec, "Job": JobSpec}


def register_kind(kind: str, model: type[Spec]) -> None:
    SPEC_KINDS[kind] = model


def describe_error(exc: ValidationError, model: type[BaseModel], label: str) -> SpecError:
    """One line naming the field path and the value, with a suggestion for unknown keys."""
    err = exc.errors()[0]
    path = ".".join(str(p) for p in err["loc"])
    value = err.get("input")
    if err["type"] == "extra_forbidden":
        known = _known_fields(model, err["loc"][:-1])
        hint = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
        tip = f" (did you mean {hint[0]!r}?)" if hint else f" (known: {', '.join(sorted(known))})"
        return SpecError(f"{label}: unknown field {path!r}{tip}", path, value)
    message = err["msg"].removeprefix("Value error, ").removeprefix(f"{path}: ")
    if err["type"] == "missing":
        return SpecError(f"{label}: {path} is required", path, None)
    if not path:
        return SpecError(f"{label}: {message}", path, value)
    return SpecError(f"{label}: {path}={_short(value)} is invalid: {message}", path, value)


def _known_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the model at ``loc`` (list positions and Optional / list[...] unwrapped)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):  # a position in a list: the list's item model is already current
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = _model_in(field.annotation)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_spec(doc: Any, kind: str | None = None) -> Spec:
    """Validate one document (a dict with 'kind', or with kind given) into its spec."""
    if not isinstance(doc, dict):
        raise SpecError(f"a document must be a mapping, got {_short(doc)}", "", doc)
    kind = kind or doc.get("kind")
    model = SPEC_KINDS.get(kind)  # type: ignore[arg-type]
    if model is None:
        raise SpecError(
            f"kind={kind!r} is not one of {', '.join(SPEC_KINDS)}", "kind", kind
        )
    label = f"{kind} {doc.get('name', '?')!r}"
    try:
        return model.model_validate({**doc, "kind": kind})
    except ValidationError as exc:
        raise describe_error(exc, model, label) from None


def spec_to_doc(spec: Spec) -> dict[str, Any]:
    """The document form of a spec (JSON-safe, every field present)."""
    return spec.model_dump(mode="json")
