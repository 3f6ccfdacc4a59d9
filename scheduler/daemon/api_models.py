"""What the daemon's API accepts: its bodies and queries, validated by the documents' own models and
types (specs.py), unknown fields refused, every refusal one line naming the field and the value."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..core.errors import SpecError
from ..core.runs import ALL_STATES
from ..core.specs import Name, RunOverrides, Spec, StrMap, describe_error, parse_overrides

M = TypeVar("M", bound=BaseModel)
QUERY_FIELDS_MAX = 16


class RunRequest(RunOverrides):
    """POST /runs: the job, and the overrides a run may carry (the CLI's `costwise run` flags)."""

    job: Name


class PipelineRunRequest(Spec):
    """POST /pipelines/NAME/runs: parameter values (typed by the pipeline's defaults later), forced steps."""

    params: StrMap = {}
    force_steps: list[Name] = []
    force_all: bool = False


class CancelRequest(Spec):
    """POST /runs/ID/cancel takes no fields."""


class Alert(BaseModel):
    """One alert of an Alertmanager webhook. Alertmanager's payload grows fields between versions
    (truncatedAlerts, groupKey...), so what costwise does not read is ignored, not refused."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    status: str = Field("firing", max_length=64)
    labels: StrMap = {}
    fingerprint: str | None = Field(None, max_length=256)
    startsAt: str = Field("", max_length=64)  # noqa: N815 - Alertmanager's spelling


class AlertmanagerWebhook(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    alerts: list[Alert] = []


class RunsQuery(Spec):
    """GET /runs?job=&state=&since=&limit= (since: an ISO time)"""

    job: Name | None = None
    state: Literal[ALL_STATES] | None = None  # type: ignore[valid-type]
    since: datetime | None = None
    limit: int = Field(100, ge=1, le=10_000)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object ({} when empty); SpecError for anything else."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_constant=_no_constants)
    except RecursionError:
        raise SpecError("the request body is nested too deeply", "body", None) from None
    except ValueError as exc:  # also UnicodeDecodeError: JSON is UTF-8
        raise SpecError(f"the request body is not JSON: {exc}", "body", None) from None
    if not isinstance(body, dict):
        raise SpecError(f"the request body must be a JSON object, not {type(body).__name__}", "body", None)
    return body


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_body(model: type[M], data: dict[str, Any], label: str) -> M:
    """Validate a body or a query against its model; one-line SpecError naming the field and the value."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise describe_error(exc, model, label) from None


def parse_query(query: str) -> RunsQuery:
    """GET /runs's query string; a repeated key is refused by the model (its value is then a list)."""
    try:
        parsed = parse_qs(query, max_num_fields=QUERY_FIELDS_MAX)
    except ValueError:
        raise SpecError(f"GET /runs: more than {QUERY_FIELDS_MAX} query fields", "query", None) from None
    flat = {key: values[0] if len(values) == 1 else values for key, values in parsed.items()}
    return parse_body(RunsQuery, flat, "GET /runs")


def run_request(body: dict[str, Any]) -> tuple[str, RunOverrides]:
    """The job and its overrides from a POST /runs body."""
    request = parse_body(RunRequest, body, "POST /runs")
    return request.job, parse_overrides(request.model_dump(exclude={"job"}, exclude_unset=True))


class Limits(BaseModel):
    """How long and how much one client may take of the API (COSTWISE_API_* environment variables)."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False, populate_by_name=True)
    # Between two reads (or writes) on a connection: an idle or stalled client is dropped after this.
    idle_timeout_s: float = Field(10.0, gt=0, le=3600, alias="COSTWISE_API_IDLE_TIMEOUT")
    # From waiting for a request to having read all of it: a client trickling bytes is cut off here.
    request_deadline_s: float = Field(30.0, gt=0, le=3600, alias="COSTWISE_API_REQUEST_DEADLINE")
    # Connections served at once, one thread each; past this a connection is answered 503 at once.
    max_connections: int = Field(64, ge=1, le=10_000, alias="COSTWISE_API_MAX_CONNECTIONS")
    max_body_bytes: int = Field(1 << 20, ge=1, le=1 << 30, alias="COSTWISE_API_MAX_BODY_BYTES")

    @classmethod
    def from_env(cls, env: dict[str, str]) -> "Limits":
        names = {field.alias for field in cls.model_fields.values()}
        return parse_body(cls, {k: v for k, v in env.items() if k in names}, "API limits")
