"""The replay's hidden truth: how fast each job class really runs on each shape. The policy never sees it.

speed(class, shape) = table[type] x exp(sigma * z), z ~ N(0, 1) drawn once per (seed, job class,
type). The type is the shape's accelerator model as the catalog spells it for a GPU job, else its
CPU family (``scheduler.core.instance_families.cpu_family``; the instance type where no family is known,
e.g. Lambda's ``cpu_4x_generalx``); a table row whose type holds * ? or [ matches instance types
instead (any case) and wins, except for a CPU-only job on a GPU VM, which runs on the host's CPUs. A type the table does not list runs at 1.0 (times the
noise). z is seeded by the class's requirement signature and the type's name, so one class draws
the same factor for "A100" whatever else the catalog or the trace holds. The noise says what a
datasheet cannot: some jobs gain less from a faster GPU than its peak ratio, some more.
"""

from __future__ import annotations

import csv
import fnmatch
import math
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from scheduler.core.errors import UserError

DEFAULT_TABLE = Path(__file__).resolve().parent / "replay-speeds.csv"
DEFAULT_NOISE = 0.25  # sigma of log(speed): a class's factor is within x0.78..x1.28 two times in three
NOISE_MAX = 3.0


class TruthError(UserError):
    """A speed table or noise setting the replay cannot use."""


@dataclass
class SpeedTable:
    exact: dict[str, float] = field(default_factory=dict)  # TYPE (upper case) -> speed
    patterns: list[tuple[str, float]] = field(default_factory=list)  # instance-type globs, file order

    def speed(self, key: str | None, instance_type: str, patterns: bool = True) -> float:
        if patterns:
            lowered = instance_type.lower()
            for pattern, speed in self.patterns:
                if fnmatch.fnmatchcase(lowered, pattern):
                    return speed
        return self.exact.get((key or "").upper(), 1.0)


def load_speed_table(path: Path) -> SpeedTable:
    """A `type,relative_speed` CSV (``#`` lines are comments); TruthError of one line otherwise."""
    table = SpeedTable()
    with open(path, newline="") as handle:
        reader = csv.DictReader(line for line in handle if line.strip() and not line.startswith("#"))
        header = [h.strip() for h in (reader.fieldnames or [])]
        for column in ("type", "relative_speed"):
            if column not in header:
                raise TruthError(f"--speed-table {path}: missing column {column!r} "
                                 f"(columns found: {', '.join(h for h in header if h) or 'none'})")
        reader.fieldnames = header
        for line, row in enumerate(reader, start=2):
            kind, text = (row.get("type") or "").strip(), (row.get("relative_speed") or "").strip()
            try:
                speed = float(text)
            except ValueError:
                speed = math.nan
            if not kind or not math.isfinite(speed) or not 0 < speed <= 1000:
                raise TruthError(f"--speed-table {path} row {line}: type={kind!r} relative_speed={text!r} "
                                 "(a name and a number in (0, 1000])")
            if any(c in kind for c in "*?["):
                table.patterns.append((kind.lower(), speed))
            else:
                table.exact[kind.upper()] = speed
    return table


def check_noise(sigma: float) -> float:
    if not math.isfinite(sigma) or not 0 <= sigma <= NOISE_MAX:
        raise TruthError(f"--speed-noise {sigma!r}: must be a number in [0, {NOISE_MAX:g}]")
    return sigma


@lru_cache(maxsize=65536)  # a class meets the same type on many shapes
def noise_factor(sigma: float, seed: int, class_key: str, type_key: str) -> float:
    if sigma == 0:
        return 1.0
    crc = lambda text: zlib.crc32(text.encode())  # noqa: E731  (stable across runs, unlike hash())
    z = np.random.default_rng([seed, crc(class_key), crc(type_key.upper())]).standard_normal()
    return math.exp(sigma * z)


@dataclass
class Truth:
    table: SpeedTable
    sigma: float = DEFAULT_NOISE
    seed: int = 0

    def speed(self, class_key: str, gpu_job: bool, gpu_type: str | None, cpu_family: str | None,
              instance_type: str) -> float:
        """The class's true relative speed on that shape (before the daemon's max_runtime cap)."""
        on_gpu = gpu_job and gpu_type is not None
        key = gpu_type if on_gpu else cpu_family
        # a CPU-only job on a GPU VM runs on its host CPUs: patterns (which name GPU parts) do not apply
        base = self.table.speed(key, instance_type, patterns=on_gpu or gpu_type is None)
        return base * noise_factor(self.sigma, self.seed, class_key, key or instance_type)
