"""Which run labels the cost-allocation series carry: ``COSTWISE_METRICS_LABELS`` (default ``team``).

``COSTWISE_METRICS_LABELS=team,project,cost_center=cost-center`` puts the runs' ``team`` and
``project`` labels on the spend series under the same names, and their ``cost-center`` label as
``cost_center`` (a Prometheus label name has no ``-``). The default keeps today's series: ``team``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..core.errors import SpecError

ENV = "COSTWISE_METRICS_LABELS"
MAX_LABELS = 8  # each one multiplies the spend series by its distinct values
PROM_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")  # Prometheus label names; "__" is reserved
RUN_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}\Z")
# the names the metrics already use, and those Prometheus gives the scrape target
TAKEN = frozenset({"job_name", "pipeline", "step", "shape", "state", "result", "backend", "le", "quantile",
                   "job", "instance", "market"})


class AllocationLabel(NamedTuple):
    name: str  # the Prometheus label
    key: str  # the run label it is read from


DEFAULT = (AllocationLabel("team", "team"),)


def allocation_labels(text: str | None) -> tuple[AllocationLabel, ...]:
    """The labels ``text`` names (comma-separated ``name`` or ``name=run-label``); unset or empty:
    ``team``. A bad entry is a SpecError naming it."""
    if text is None or not text.strip():
        return DEFAULT
    out: list[AllocationLabel] = []
    for entry in (e.strip() for e in text.split(",")):
        name, _, key = entry.partition("=")
        name, key = name.strip(), (key.strip() or name.strip())
        if not PROM_NAME.match(name) or name.startswith("__"):
            raise SpecError(f"{ENV}: {name!r} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)",
                            ENV, text)
        if name in TAKEN:
            raise SpecError(f"{ENV}: {name!r} is a label the metrics already use", ENV, text)
        if not RUN_LABEL_KEY.match(key):
            raise SpecError(f"{ENV}: {key!r} is not a run label key", ENV, text)
        if name in (a.name for a in out):
            raise SpecError(f"{ENV}: {name!r} is named twice", ENV, text)
        out.append(AllocationLabel(name, key))
    if len(out) > MAX_LABELS:
        raise SpecError(f"{ENV}: {len(out)} labels; at most {MAX_LABELS}", ENV, text)
    return tuple(out)
