"""YAML / JSON document text to plain values, with its nesting and its aliases bounded.

The text is walked as parser events first (iteratively, so a hostile depth cannot exhaust the
stack), counting each alias as the values it stands for: a "billion laughs" file of a few lines is
refused before it is built. Only then are the values constructed, by PyYAML's safe loader (the
libyaml one where it is installed).
"""

from __future__ import annotations

from typing import Any

import yaml

from .bounds import DOCUMENT_DEPTH_MAX, DOCUMENT_VALUES_MAX

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DocumentTextError(ValueError):
    """The text is not YAML / JSON, or is out of bounds; ``line`` is 1-based (None if unknown)."""

    def __init__(self, problem: str, line: int | None):
        super().__init__(problem)
        self.problem = problem
        self.line = line


def parse_documents(text: str) -> list[Any]:
    """Every non-empty document in ``text`` ('---' separated), as plain values."""
    try:
        check_events(text)
        return [body for body in yaml.load_all(text, Loader=LOADER) if body is not None]
    except yaml.YAMLError as exc:
        raise DocumentTextError(*_describe(exc, text)) from None


def check_events(text: str) -> None:
    """DocumentTextError when a document nests deeper than DOCUMENT_DEPTH_MAX or, aliases expanded,
    holds more than DOCUMENT_VALUES_MAX values (or an alias refers to the node that holds it)."""
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, values counted before it)
    sizes: dict[str, int] = {}  # anchor -> values under it, itself included
    values = 0
    for event in yaml.parse(text, Loader=LOADER):
        if isinstance(event, yaml.DocumentStartEvent):
            sizes, values = {}, 0
        elif isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for anchor, _ in open_nodes):
                raise DocumentTextError(f"alias *{event.anchor} refers to a node that contains it", _line(event))
            values += sizes.get(event.anchor, 1)  # an undefined alias is the composer's error to report
        elif isinstance(event, yaml.ScalarEvent):
            values += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            values += 1
            open_nodes.append((event.anchor, values - 1))
            if len(open_nodes) > DOCUMENT_DEPTH_MAX:
                raise DocumentTextError(f"nested deeper than {DOCUMENT_DEPTH_MAX} levels", _line(event))
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, before = open_nodes.pop()
            if anchor:
                sizes[anchor] = values - before
        if values > DOCUMENT_VALUES_MAX:
            raise DocumentTextError(
                f"a document holds more than {DOCUMENT_VALUES_MAX} values (aliases counted as what they repeat)",
                _line(event),
            )


def _line(event) -> int | None:
    mark = getattr(event, "start_mark", None)
    return mark.line + 1 if mark is not None else None


def _describe(exc: yaml.YAMLError, text: str) -> tuple[str, int | None]:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None)
    if problem is None and isinstance(exc, yaml.reader.ReaderError):
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        problem = f"unacceptable character #x{char:04x}"
        line = text.count("\n", 0, exc.position) + 1
    if problem is None:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return " ".join(problem.split()), line
