"""Option values converted without pydantic where the answer is plain.

Typer (0.2x) converts every parameter's value through a pydantic TypeAdapter built on first use: each
command line paid pydantic's import and ten or so schema builds (about 50 ms, a third of a thin
`costwise runs`). Every option of costwise is a str, int, bool or Path (or a list of them), without
bounds or parsers, and for those the conversion is trivial. `install` gives each such parameter a
converter that answers the plain cases itself (a str, a decimal integer, a path: the path's checks are
still typer's own) and hands anything else to the converter typer would have built, so what is
accepted and every error message stay typer's. With a typer that has no such adapters it does nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args, get_origin

PLAIN_INT = re.compile(r"[+-]?[0-9]+")
LEAVES = (str, int, Path)


def install(command) -> int:
    """Give the plain parameters of ``command`` and its subcommands the light converter; how many."""
    try:
        from typer._coercion import RuntimeParam, build_runtime_param
        from typer._param_types import coerce_cli_path
    except ImportError:  # a typer that converts through click's types: nothing to speed up
        return 0
    converter = _converter_class(RuntimeParam, build_runtime_param, coerce_cli_path)
    count = 0
    for param in _params(command):
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", "absent") is not None or not _plain(descriptor):
            continue
        param._runtime_param = converter(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation,
                                         descriptor=descriptor)
        count += 1
    return count


def _params(command, parent=None):
    """Every parameter, each command's --help too: click makes that one for a context and keeps it, so
    it is made here for a context like the one the command line will give it."""
    from typer._click import Context

    yield from command.params
    context = Context(command, info_name=command.name, parent=parent, **command.context_settings)
    if (help_option := command.get_help_option(context)) is not None:
        yield help_option
    for sub in getattr(command, "commands", {}).values():
        yield from _params(sub, context)


def _plain(descriptor) -> bool:
    info = descriptor.parameter_info
    if descriptor.file_annotation is not None or descriptor.is_choice:
        return False
    if any(getattr(info, name, None) is not None for name in ("parser", "min", "max", "formats")):
        return False
    annotation = descriptor.annotation
    if get_origin(annotation) is list:
        args = get_args(annotation)
        return len(args) == 1 and args[0] in LEAVES
    return annotation in LEAVES or annotation is bool


def _converter_class(runtime_param, build_runtime_param, coerce_cli_path):
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class PlainRuntimeParam(runtime_param):
        descriptor: Any = None
        _typer: list = field(default_factory=list, compare=False)  # typer's own converter, built when needed

        def _coerce_value(self, value, param, ctx):
            if get_origin(self.annotation) is list and isinstance(value, (list, tuple)):
                leaf = get_args(self.annotation)[0]
                items = [self._leaf(leaf, item, param, ctx) for item in value]
                if all(item is not _UNPLAIN for item in items):
                    return items
            elif (done := self._leaf(self.annotation, value, param, ctx)) is not _UNPLAIN:
                return done
            if not self._typer:
                self._typer.append(build_runtime_param(self.descriptor))
            return self._typer[0]._coerce_value(value, param=param, ctx=ctx)

        def _leaf(self, kind, value, param, ctx):
            if kind is str and isinstance(value, str):
                return value
            if kind is int and not isinstance(value, bool):
                if isinstance(value, int):
                    return value
                if isinstance(value, str) and PLAIN_INT.fullmatch(value):
                    return int(value)
            if kind is Path and isinstance(value, (str, Path)) and value != "":
                path_type = self.parameter_info.path_type or Path
                if path_type is Path:  # typer's own checks (exists=, readable=, ...) on a value already a Path
                    return coerce_cli_path(Path(value), self.parameter_info, path_type=Path, param=param, ctx=ctx)
            return _UNPLAIN

    return PlainRuntimeParam


_UNPLAIN = object()
