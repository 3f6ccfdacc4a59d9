"""The building blocks of every spec: the frozen base model, names, bounded maps and lists, durations.

Each annotated type refuses what the bounds module says is nonsense, with an error that names the value.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from .bounds import (
    ARGS_MAX,
    ARGS_TOTAL_MAX_CHARS,
    ENV_MAX,
    ENV_NAME_MAX_CHARS,
    ENV_TOTAL_MAX_CHARS,
    LABEL_KEY_MAX_CHARS,
    LABEL_VALUE_MAX_CHARS,
    LABELS_MAX,
    LIST_MAX,
    MAX_RUNTIME_CAP_S,
    TEXT_MAX_CHARS,
)
from .durations import duration_words, parse_duration
from .plain_values import short_repr

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
