"""Shape documents from a price-catalog CSV (the SkyPilot catalog schema: columns selected by name).

Reads the default catalog shipped under `stacks/prices/` as well as SkyPilot-style catalogs (Azure,
Lambda, Vast, ...): `#` lines are comments; one row per instance type and region; the row in the
wanted region is taken, else the cheapest one.
"""

from __future__ import annotations

import ast
import csv
import fnmatch
import re
from pathlib import Path
from typing import Iterable

# Per-GPU memory (GiB) for catalogs that do not say it (Azure's GpuInfo holds only the name).
GPU_MEMORY_GIB = {
    "T4": 16, "A10": 24, "A10G": 24, "L4": 24, "V100": 16, "V100-32GB": 32, "A100": 40, "A100-80GB": 80,
    "H100": 80, "H200": 141, "L40S": 48, "A6000": 48, "MI300X": 192, "GH200": 96, "B200": 180,
}


def shape_name(instance_type: str) -> str:
    """A catalog name for an instance type (names allow letters, digits, '.', '_' and '-')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", instance_type).strip("-.")[:63]


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _gpu_memory(row: dict, gpu: str) -> float:
    given = _number(row.get("GpuMemoryGiB"))
    if given is not None:
        return given
    info = row.get("GpuInfo") or ""
    if info.startswith("{"):
        try:
            gpus = ast.literal_eval(info).get("Gpus") or []
            return round(gpus[0]["MemoryInfo"]["SizeInMiB"] / 1024, 1)
        except (ValueError, SyntaxError, KeyError, IndexError, TypeError):
            pass
    return float(GPU_MEMORY_GIB.get(gpu, 0))


def read_rows(path: str | Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


def load_shapes(
    path: str | Path,
    backend: str = "kubernetes",
    include: Iterable[str] = ("*",),
    region: str | None = None,
    capacity: int = 4,
) -> list[dict]:
    """Shape documents for the instance types matching `include` (glob patterns), cheapest first."""
    patterns = list(include)
    best: dict[str, dict] = {}
    for row in read_rows(path):
        kind = row.get("InstanceType") or ""
        price = _number(row.get("Price"))
        if not kind or not price or not any(fnmatch.fnmatchcase(kind, p) for p in patterns):
            continue
        if region and row.get("Region") != region:
            continue
        if kind not in best or price < _number(best[kind]["Price"]):
            best[kind] = row
    return sorted((_shape(row, backend, capacity) for row in best.values()), key=lambda d: (d["price_per_hour"], d["name"]))


def _shape(row: dict, backend: str, capacity: int) -> dict:
    gpu = (row.get("AcceleratorName") or "").strip() or None
    gpus = _number(row.get("AcceleratorCount")) or 0.0
    spot = _number(row.get("SpotPrice"))
    doc = {
        "name": shape_name(row["InstanceType"]),
        "backend": backend,
        "vcpus": _number(row.get("vCPUs")),
        "memory_gib": _number(row.get("MemoryGiB")),
        "gpus": gpus if gpu else 0.0,
        "gpu_type": gpu if gpus else None,
        "gpu_memory_gib": _gpu_memory(row, gpu) if gpu and gpus else 0.0,
        "price_per_hour": _number(row.get("Price")),
        "spot_price_per_hour": spot if spot else None,  # 0 means "no spot market", not "free"
        "capacity": capacity,
        "region": row.get("Region") or None,
        "labels": {"node.kubernetes.io/instance-type": row["InstanceType"]} if backend == "kubernetes" else {},
    }
    return doc
