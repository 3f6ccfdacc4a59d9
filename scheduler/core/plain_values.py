"""Checks on a plain value (what YAML, JSON or a property bag decoded) before any model sees it.

Pure, and iterative: a hostile value may be nested thousands deep or hold millions of items, so
nothing here recurses on it, and ``short_repr`` never prints more than a few levels of it.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any

from .bounds import DOCUMENT_DEPTH_MAX, DOCUMENT_VALUES_MAX, INT_MAX, INT_MIN, TEXT_MAX_CHARS


class _ShortRepr(reprlib.Repr):
    def __init__(self):
        super().__init__()
        self.maxlevel, self.maxdict, self.maxlist, self.maxtuple, self.maxset = 3, 4, 6, 6, 6
        self.maxstring, self.maxother, self.maxlong = 80, 80, 40

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:  # repr() of a huge int is slow, and refused past 4300 digits
            return f"{'-' if x < 0 else ''}<an int of {x.bit_length()} bits>"
        return super().repr_int(x, level)


_SHORT = _ShortRepr()


def short_repr(value: Any) -> str:
    """A repr of at most 120 characters, safe on deep, huge or recursive values."""
    text = _SHORT.repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def first_problem(value: Any) -> tuple[str, Any, str] | None:
    """The first thing out of bounds in ``value``, in document order: (dotted path, the value, why);
    None when every number is finite and in int64, every text short and without NUL, and the whole
    is neither too deep nor too big."""
    # (where: a (parent, key) chain built only when a problem is reported, the item, its depth)
    stack: list[tuple[Any, Any, int]] = [(None, value, 0)]
    seen = 0
    while stack:
        where, item, depth = stack.pop()
        seen += 1
        if seen > DOCUMENT_VALUES_MAX:
            return _path(where), item, f"makes the document hold more than {DOCUMENT_VALUES_MAX} values"
        if isinstance(item, _CONTAINERS):
            if depth >= DOCUMENT_DEPTH_MAX:
                return _path(where), item, f"is nested deeper than {DOCUMENT_DEPTH_MAX} levels"
            if isinstance(item, dict):
                for key in item:
                    why = scalar_problem(key)
                    if why:
                        return _path((where, key)), key, f"is a key that {why}"
                pairs = list(item.items())
            else:  # a set has no order: its items are reported under their position in iteration
                pairs = list(enumerate(item))
            stack.extend(((where, k), v, depth + 1) for k, v in reversed(pairs))
        elif not isinstance(item, _PLAIN):
            why = scalar_problem(item)
            if why:
                return _path(where), item, why
    return None


_CONTAINERS = (dict, list, tuple, set, frozenset)
_PLAIN = (bool, type(None))


def _path(where: Any) -> str:
    keys = []
    while where is not None:
        where, key = where
        keys.append(key)
    return dotted_path(keys[::-1])


def scalar_problem(item: Any) -> str | None:
    if isinstance(item, bool):
        return None
    if isinstance(item, float) and not math.isfinite(item):
        return "is not a finite number"
    if isinstance(item, int) and not INT_MIN <= item <= INT_MAX:
        return "is outside the 64-bit integer range"
    if isinstance(item, (bytes, bytearray)):
        return "is binary data, not text"
    if isinstance(item, str):
        if len(item) > TEXT_MAX_CHARS:
            return f"is {len(item)} characters long (at most {TEXT_MAX_CHARS})"
        if "\x00" in item:
            return "contains a NUL character"
    return None


def dotted_path(path: tuple | list) -> str:
    """'steps.0.name' from a location; very long keys cut short."""
    return ".".join(str(p) if not isinstance(p, str) or len(p) <= 80 else p[:77] + "..." for p in path)
