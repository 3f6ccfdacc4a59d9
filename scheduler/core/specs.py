"""Specs for shapes and jobs: frozen pydantic models shared by apply, the provider and the daemon.

Every validation error becomes a one-line ``SpecError`` naming the field path and the value.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .bounds import (
    ARGS_MAX,
    ARGS_TOTAL_MAX_CHARS,
    CAPACITY_MAX,
    DEFAULT_MAX_RUNTIME_S,
    ENV_MAX,
    ENV_NAME_MAX_CHARS,
    ENV_TOTAL_MAX_CHARS,
    EXPECTED_DURATION_MAX_S,
    GPU_MEMORY_GIB_MAX,
    GPUS_MAX,
    INTERVAL_MAX_S,
    INTERVAL_MIN_S,
    LABEL_KEY_MAX_CHARS,
    LABEL_VALUE_MAX_CHARS,
    LABELS_MAX,
    LIST_MAX,
    MAX_RUNTIME_CAP_S,
    MAX_WAIT_MAX_S,
    MEMORY_GIB_MAX,
    PRICE_PER_HOUR_MAX,
    RETRIES_MAX,
    STOP_GRACE_MAX_S,
    TEXT_MAX_CHARS,
    VCPUS_MAX,
)
from .durations import duration_words, parse_duration
from .errors import SpecError
from .plain_values import short_repr
from .spot import INTERRUPTIONS_PER_HOUR_MAX, SpotPolicy
from .spec_errors import describe_error, refuse_out_of_bounds as _refuse_out_of_bounds  # noqa: F401 (re-exported)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
ENV_NAME_PATTERN = r"^[^=\x00]+$"  # what execve and docker accept as a variable name
BACKENDS = ("local", "docker", "kubernetes")


def _duration(field: str, cap: float = MAX_RUNTIME_CAP_S):
    """Seconds from "90s" / "2h" / a number, at most ``cap``."""

    def seconds(value: Any) -> Any:
        if value is None:
            return None
        parsed = parse_duration(value, field=field)
        if parsed > cap:
            raise ValueError(f"more than the {duration_words(cap)} cap ({parsed:g}s > {cap:g}s)")
        return parsed

    return BeforeValidator(seconds)


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


def _total_chars(limit: int, what: str):
    def check(value: Any) -> Any:
        items = value.items() if isinstance(value, dict) else [(v, "") for v in value or ()]
        total = sum(len(k) + len(v) for k, v in items)
        if total > limit:
            raise ValueError(f"{what} add up to {total} characters (at most {limit})")
        return value

    return AfterValidator(check)


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, (dict, list, tuple, set)):
        raise ValueError(f"{short_repr(value)} is not a number, a string or a boolean")
    return value


Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Scalar = Annotated[bool | int | float | str, BeforeValidator(_scalar)]
StrMap = Annotated[dict[str, str], BeforeValidator(_str_map), Field(max_length=LIST_MAX)]
EnvName = Annotated[str, Field(min_length=1, max_length=ENV_NAME_MAX_CHARS, pattern=ENV_NAME_PATTERN)]
EnvMap = Annotated[
    dict[EnvName, str], BeforeValidator(_str_map), Field(max_length=ENV_MAX),
    _total_chars(ENV_TOTAL_MAX_CHARS, "env names and values"),
]
Labels = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=LABEL_KEY_MAX_CHARS)],
         Annotated[str, Field(max_length=LABEL_VALUE_MAX_CHARS)]],
    BeforeValidator(_str_map), Field(max_length=LABELS_MAX),
]
StrList = Annotated[
    list[str], BeforeValidator(_str_list), Field(max_length=ARGS_MAX), _total_chars(ARGS_TOTAL_MAX_CHARS, "args")
]
Seconds = Annotated[float, Field(ge=0)]


class Spec(BaseModel):
    # Every float finite (pydantic refuses NaN and infinity), every string bounded.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, str_max_length=TEXT_MAX_CHARS)


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
