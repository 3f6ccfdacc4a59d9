"""What the web page's queries accept (the filters of the runs list, the spend window), validated like
the API's: unknown fields refused, every refusal one line naming the field and the value. A filter
form sends its empty fields as ``name=``: those mean "no filter", not an empty value."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal
from urllib.parse import parse_qs

from pydantic import Field, ValidationError, field_validator

from ..core.clock import parse_time
from ..core.errors import SpecError
from ..core.runs import ALL_STATES
from ..core.bounds import LABEL_KEY_MAX_CHARS
from ..core.specs import Name, Spec, describe_error
from ..store.web_queries import Cursor, RunsFilter

QUERY_FIELDS_MAX = 16
STATE_NAMES = tuple(state.value for state in ALL_STATES)  # plain strings: a refusal lists them readably
_RUN_ID = re.compile(r"[\w-]{1,32}")
_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


class RunsPageQuery(Spec):
    """GET /web/f/runs?job=&pipeline=&state=&label=key=value&since=&until=&before=&limit="""

    job: Name | None = None
    pipeline: Name | None = None
    state: Literal[STATE_NAMES] | None = None  # type: ignore[valid-type]
    label: str | None = Field(None, max_length=LABEL_KEY_MAX_CHARS + 1 + 256)
    since: str | None = Field(None, max_length=64)
    until: str | None = Field(None, max_length=64)
    before: str | None = Field(None, max_length=96)
    limit: int = Field(50, ge=1, le=200)

    @field_validator("label")
    @classmethod
    def _label_pair(cls, value: str | None) -> str | None:
        if value is not None:
            key, sep, _ = value.partition("=")
            if not sep or not _LABEL_KEY.fullmatch(key) or len(key) > LABEL_KEY_MAX_CHARS:
                raise ValueError("must be KEY=VALUE, e.g. team=ml")
        return value

    def filter(self, now: datetime) -> RunsFilter:
        label = tuple(self.label.split("=", 1)) if self.label else None
        return RunsFilter(job=self.job, pipeline=self.pipeline, state=self.state, label=label,  # type: ignore[arg-type]
                          since=_time("since", self.since, now), until=_time("until", self.until, now))

    def cursor(self) -> Cursor | None:
        if not self.before:
            return None
        at, sep, run_id = self.before.rpartition("~")
        try:
            when = datetime.fromisoformat(at.replace("Z", "+00:00")) if sep else None
        except ValueError:
            when = None
        if when is None or when.tzinfo is None or not _RUN_ID.fullmatch(run_id):
            raise SpecError(f"before={self.before!r} is not a page cursor (TIME~RUN_ID)", "before", self.before)
        return Cursor(when, run_id)


class SpendQuery(Spec):
    """GET /web/f/spend?days=&key="""

    days: int = Field(14, ge=1, le=366)
    key: str | None = Field(None, max_length=LABEL_KEY_MAX_CHARS, pattern=f"^{_LABEL_KEY.pattern}$")


class NoQuery(Spec):
    """Pages that take no query fields."""


def cursor_text(cursor: Cursor) -> str:
    from ..core.clock import iso

    return f"{iso(cursor.queued_at)}~{cursor.run_id}"


def _time(name: str, text: str | None, now: datetime) -> datetime | None:
    if not text:
        return None
    try:
        return parse_time(text, now)
    except (ValueError, OverflowError) as exc:
        raise SpecError(f"{name}={text!r}: {exc}", name, text) from None


def parse_web_query(model: type[Spec], query: str, label: str):
    """A page's query string as its model; empty fields dropped, a repeated field refused."""
    try:
        parsed = parse_qs(query, max_num_fields=QUERY_FIELDS_MAX)
    except ValueError:
        raise SpecError(f"{label}: more than {QUERY_FIELDS_MAX} query fields", "query", None) from None
    flat = {key: values[0] if len(values) == 1 else values for key, values in parsed.items()
            if any(v.strip() for v in values)}
    try:
        return model.model_validate(flat)
    except ValidationError as exc:
        raise describe_error(exc, model, label) from None
