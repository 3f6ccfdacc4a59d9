"""Specs for shapes and jobs: frozen pydantic models shared by apply, the provider and the daemon.

Every validation error becomes a one-line ``SpecError`` naming the field path and the value.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from .bounds import (
    CAPACITY_MAX,
    DEFAULT_MAX_RUNTIME_S,
    EXPECTED_DURATION_MAX_S,
    GPU_MEMORY_GIB_MAX,
    GPUS_MAX,
    INTERVAL_MAX_S,
    INTERVAL_MIN_S,
    LIST_MAX,
    MAX_WAIT_MAX_S,
    MEMORY_GIB_MAX,
    PRICE_PER_HOUR_MAX,
    RETRIES_MAX,
    STOP_GRACE_MAX_S,
    VCPUS_MAX,
)
from .errors import SpecError
from .plain_values import short_repr
from .spec_errors import describe_error, refuse_out_of_bounds as _refuse_out_of_bounds  # noqa: F401 (re-exported)
from .spec_types import (  # noqa: F401 (Name, Scalar, StrMap, NAME_PATTERN... are re-exported)
    BACKENDS,
    ENV_NAME_PATTERN,
    NAME_PATTERN,
    EnvMap,
    EnvName,
    Labels,
    Name,
    Scalar,
    Seconds,
    Spec,
    StrList,
    StrMap,
    _duration,
)
from .spot import INTERRUPTIONS_PER_HOUR_MAX, SpotPolicy


class Requirements(Spec):
    cpus: float = Field(1.0, ge=0, le=VCPUS_MAX)
    memory_gib: float = Field(1.0, ge=0, le=MEMORY_GIB_MAX)
    gpus: float = Field(0.0, ge=0, le=GPUS_MAX)
    gpu_type: str | None = None
    gpu_memory_gib: float = Field(0.0, ge=0, le=GPU_MEMORY_GIB_MAX)


# A Kueue LocalQueue's name: an object name that is also a label value (kueue.x-k8s.io/queue-name).
KUEUE_QUEUE_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class Allocatable(Spec):
    """What one node of a shape really gives pods (its size less kubelet and system reservations)."""

    vcpus: float = Field(gt=0, le=VCPUS_MAX)
    memory_gib: float = Field(gt=0, le=MEMORY_GIB_MAX)


class ShapeSpec(Spec):
    kind: Literal["Shape"] = "Shape"
    name: Name
    backend: Literal["local", "docker", "kubernetes"] = "local"
    vcpus: float = Field(gt=0, le=VCPUS_MAX)
    memory_gib: float = Field(gt=0, le=MEMORY_GIB_MAX)
    gpus: float = Field(0.0, ge=0, le=GPUS_MAX)
    gpu_type: str | None = None
    gpu_memory_gib: float = Field(0.0, ge=0, le=GPU_MEMORY_GIB_MAX)
    price_per_hour: float = Field(ge=0, le=PRICE_PER_HOUR_MAX)
    spot_price_per_hour: float | None = Field(None, ge=0, le=PRICE_PER_HOUR_MAX)
    spot_interruptions_per_hour: float | None = Field(None, ge=0, le=INTERRUPTIONS_PER_HOUR_MAX)
    capacity: int = Field(1, ge=1, le=CAPACITY_MAX)
    labels: Labels = {}
    region: str | None = None
    kueue_queue: Annotated[str | None, Field(pattern=KUEUE_QUEUE_PATTERN)] = None
    allocatable: Allocatable | None = None

    @model_validator(mode="after")
    def _gpu_type_needs_gpus(self) -> "ShapeSpec":
        if self.gpu_type and self.gpus <= 0:
            raise ValueError(f"gpu_type {self.gpu_type!r} given but gpus is {self.gpus:g}")
        return self

    @model_validator(mode="after")
    def _kubernetes_fields(self) -> "ShapeSpec":
        if self.kueue_queue is not None and self.backend != "kubernetes":
            raise ValueError(f"kueue_queue={self.kueue_queue!r} is for kubernetes shapes, not backend {self.backend!r}")
        if self.allocatable is not None:
            for field in ("vcpus", "memory_gib"):
                if getattr(self.allocatable, field) > getattr(self, field):
                    raise ValueError(f"allocatable.{field}={getattr(self.allocatable, field):g} is more than the "
                                     f"shape's {field} {getattr(self, field):g}")
        return self


class Mount(Spec):
    source: str
    path: str
    read_only: bool = False


class Schedule(Spec):
    cron: str | None = None
    interval: Annotated[float | None, _duration("schedule.interval", INTERVAL_MAX_S)] = None
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(value)
        except (ValueError, LookupError, OSError):
            raise ValueError(f"{short_repr(value)} is not an IANA time zone (e.g. 'UTC', 'Europe/Paris')") from None
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> "Schedule":
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of 'cron' or 'interval'")
        if self.interval is not None and self.interval < INTERVAL_MIN_S:
            raise ValueError(f"interval {self.interval:g}s is shorter than {INTERVAL_MIN_S}s")
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


HookList = Annotated[list[Hook], Field(max_length=LIST_MAX)]


class Hooks(Spec):
    on_success: HookList = []
    on_failure: HookList = []
    on_timeout: HookList = []


class JobSpec(Spec):
    kind: Literal["Job"] = "Job"
    name: Name
    artifact: str
    artifact_hash: str | None = None
    entrypoint: str | None = None
    args: StrList = []
    env: EnvMap = {}
    secret_env: EnvMap = {}
    requirements: Requirements = Requirements()
    shape: str | None = None
    max_runtime: Annotated[Seconds, _duration("max_runtime")] = DEFAULT_MAX_RUNTIME_S
    stop_grace: Annotated[Seconds, _duration("stop_grace", STOP_GRACE_MAX_S)] = 10.0
    max_wait: Annotated[Seconds, _duration("max_wait", MAX_WAIT_MAX_S)] = 600.0
    expected_duration: Annotated[Seconds | None, _duration("expected_duration", EXPECTED_DURATION_MAX_S)] = None
    retries: int = Field(0, ge=0, le=RETRIES_MAX)
    resume: bool = False
    mounts: Annotated[list[Mount], Field(max_length=LIST_MAX)] = []
    image: str | None = None
    labels: Labels = {}
    schedule: Schedule | None = None
    hooks: Hooks = Hooks()
    spot: SpotPolicy = SpotPolicy.NEVER
    checkpoint_interval: Annotated[Seconds | None, _duration("checkpoint_interval")] = None
    deadline: Annotated[Seconds | None, _duration("deadline")] = None

    @field_validator("max_runtime")
    @classmethod
    def _positive(cls, v: float) -> float:
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

    @model_validator(mode="after")
    def _deadline_within_runtime(self) -> "JobSpec":
        if self.deadline is not None and not 0 < self.deadline <= self.max_runtime:
            raise ValueError(f"deadline {self.deadline:g}s is outside (0s, max_runtime {self.max_runtime:g}s]")
        if self.checkpoint_interval is not None and self.checkpoint_interval <= 0:
            raise ValueError("checkpoint_interval must be more than 0s")
        return self


class RunOverrides(Spec):
    """What one run may change of its job (OCI job-run overrides)."""

    env: EnvMap = {}
    args: StrList | None = None
    shape: str | None = None
    max_runtime: Annotated[Seconds | None, _duration("max_runtime")] = None

    @field_validator("max_runtime")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError(f"{v:g}s is outside (0s, 30d]")
        return v


def parse_overrides(data: dict[str, Any]) -> RunOverrides:
    """Run overrides from the CLI's flags or an API body; one-line SpecError on bad values."""
    clean = {k: v for k, v in data.items() if v not in (None, [], {})}
    _refuse_out_of_bounds(clean, "run override")
    try:
        return RunOverrides.model_validate(clean)
    except ValidationError as exc:
        raise describe_error(exc, RunOverrides, "run override") from None


SPEC_KINDS: dict[str, type[Spec]] = {"Shape": ShapeSpec, "Job": JobSpec}


def register_kind(kind: str, model: type[Spec]) -> None:
    SPEC_KINDS[kind] = model


def parse_spec(doc: Any, kind: str | None = None) -> Spec:
    """Validate one document (a dict with 'kind', or with kind given) into its spec."""
    if not isinstance(doc, dict):
        raise SpecError(f"a document must be a mapping, got {short_repr(doc)}", "", None)
    kind = kind or doc.get("kind")
    model = SPEC_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise SpecError(f"kind={short_repr(kind)} is not one of {', '.join(SPEC_KINDS)}", "kind", None)
    label = f"{kind} {short_repr(doc.get('name', '?'))}"
    _refuse_out_of_bounds(doc, label)
    try:
        return model.model_validate({**doc, "kind": kind})
    except ValidationError as exc:
        raise describe_error(exc, model, label) from None


def spec_to_doc(spec: Spec) -> dict[str, Any]:
    """The document form of a spec (JSON-safe, every field present)."""
    return spec.model_dump(mode="json")
