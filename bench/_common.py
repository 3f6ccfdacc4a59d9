"""Helpers shared by the benchmarks: output format and the shared data folder."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))


def report(figures: dict, as_json: bool) -> None:
    """One `name: value` line per figure, or one JSON object."""
    if as_json:
        print(json.dumps(figures))
        return
    for name, value in figures.items():
        print(f"{name}: {round(value, 6) if isinstance(value, float) else value}")


def median(values) -> float:
    return statistics.median(values)
