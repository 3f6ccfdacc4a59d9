"""The optional parts of costwise and the one line a command prints when it needs one not installed.

The base install is the scheduler; each extra (``pip install 'costwise[docker]'``) adds libraries that
only some commands use. ``require`` imports one where it is used and turns its absence into a UserError
(exit 2) naming the extra, instead of a traceback ending in ModuleNotFoundError.
"""

from __future__ import annotations

import importlib
from enum import StrEnum
from types import ModuleType

from .errors import UserError


class Extra(StrEnum):
    PULUMI = "pulumi"
    DOCKER = "docker"
    KUBERNETES = "kubernetes"
    POSTGRES = "postgres"
    GPU = "gpu"
    FAST_REPORTS = "fast-reports"


class MissingExtra(UserError):
    """A command needs a library of an extra that is not installed."""

    def __init__(self, what: str, extra: Extra):
        super().__init__(f"{what} needs costwise[{extra}]: pip install 'costwise[{extra}]'")
        self.extra = extra


def require(module: str, extra: Extra, what: str) -> ModuleType:
    """``module`` imported, or MissingExtra saying that ``what`` needs ``extra``. Any ImportError counts:
    the library missing, or one it needs (a half-installed extra is fixed by the same pip line)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(what, extra) from None
