"""Validation errors as one line: the field path, the value, and for an unknown key the field meant."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import SpecError
from .plain_values import dotted_path, first_problem, short_repr


def describe_error(exc: ValidationError, model: type[BaseModel], label: str) -> SpecError:
    """One line naming the field path and the value, with a suggestion for unknown keys."""
    err = exc.errors()[0]
    path = dotted_path(err["loc"])
    value = err.get("input")
    if err["type"] == "extra_forbidden":
        known = _known_fields(model, err["loc"][:-1])
        hint = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
        tip = f" (did you mean {hint[0]!r}?)" if hint else f" (known: {', '.join(sorted(known))})"
        return SpecError(f"{label}: unknown field {path!r}{tip}", path, value)
    message = " ".join(err["msg"].removeprefix("Value error, ").removeprefix(f"{path}: ").split())
    if err["type"] == "missing":
        return SpecError(f"{label}: {path} is required", path, None)
    if not path:
        return SpecError(f"{label}: {message}", path, value)
    return SpecError(f"{label}: {path}={short_repr(value)} is invalid: {message}", path, value)


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


def refuse_out_of_bounds(value: Any, label: str) -> None:
    """SpecError naming the first value no model should see: NaN, a huge int, a NUL, a deep nest."""
    problem = first_problem(value)
    if problem is not None:
        path, bad, why = problem
        raise SpecError(f"{label}: {path}={short_repr(bad)} {why}" if path else f"{label}: the document {why}", path, None)
