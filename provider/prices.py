"""Shape documents from a price-catalog CSV: the one loader stacks, the replay and costwise share.

Reads the default catalog shipped under `stacks/prices/` and SkyPilot-schema catalogs in every
layout clouds publish (GPU columns on the VM row; GPUs priced on rows of their own and attached to
host VMs; GPU families implied by the VM's name): see ``scheduler.core.price_catalog``, which does the
parsing without I/O. `#` lines are comments. Per instance type the row in the wanted region is
taken, else the cheapest one. Rows that yield no shape are counted by reason (``PriceCatalog.skipped``).
"""

from __future__ import annotations

import csv
import fnmatch
import re
from pathlib import Path
from typing import Iterable, Mapping

from scheduler.core.allocatable import node_allocatable
from scheduler.core.price_catalog import CatalogError, Offer, PriceCatalog, parse_catalog

__all__ = ["CatalogError", "PriceCatalog", "load_catalog", "load_shapes", "read_rows", "shape_name", "shape_document"]


def shape_name(instance_type: str) -> str:
    """A catalog name for an instance type (names allow letters, digits, '.', '_' and '-')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", instance_type).strip("-.")[:63]


def read_rows(path: str | Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


def load_catalog(path: str | Path) -> PriceCatalog:
    """Every offer in the file, with the skipped rows counted by reason; CatalogError names the file."""
    try:
        with open(path, newline="") as handle:
            return parse_catalog(handle)
    except CatalogError as error:
        raise CatalogError(f"{path}: {error}") from None
    except UnicodeDecodeError as error:
        raise CatalogError(f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start})") from None


def load_shapes(
    path: str | Path,
    backend: str = "kubernetes",
    include: Iterable[str] = ("*",),
    region: str | None = None,
    capacity: int = 4,
    overrides: Mapping[str, Mapping] | None = None,
) -> list[dict]:
    """Shape documents for the instance types matching `include` (glob patterns), cheapest first.
    ``overrides`` maps a shape's name to fields that replace the catalog's (e.g. the `allocatable` a
    cluster's nodes really report, or a `kueue_queue`); a name no loaded shape has is a CatalogError."""
    patterns = list(include)
    offers = [o for o in load_catalog(path).cheapest(region)
              if any(fnmatch.fnmatchcase(o.instance_type, p) for p in patterns)]
    docs = {d["name"]: d for d in (shape_document(o, backend, capacity) for o in offers)}
    for name, fields in (overrides or {}).items():
        if name not in docs:
            raise CatalogError(f"{path}: override for shape {name!r}, which the catalog does not give (known: "
                               f"{', '.join(sorted(docs)[:5]) or 'none'}{', ...' if len(docs) > 5 else ''})")
        docs[name] = {**docs[name], **fields}
    return sorted(docs.values(), key=lambda d: (d["price_per_hour"], d["name"]))


def shape_document(offer: Offer, backend: str, capacity: int) -> dict:
    """A Shape document (the schema `costwise apply` and provider.ComputeShape take) for an offer;
    a kubernetes one says what a node of it gives pods (GKE's documented reservations), which its Jobs request."""
    doc = {
        "name": shape_name(offer.instance_type),
        "backend": backend,
        "vcpus": offer.vcpus,
        "memory_gib": offer.memory_gib,
        "gpus": offer.gpus,
        "gpu_type": offer.gpu_type,
        "gpu_memory_gib": offer.gpu_memory_gib,
        "price_per_hour": offer.price_per_hour,
        "spot_price_per_hour": offer.spot_price_per_hour,
        "capacity": capacity,
        "region": offer.region,
        "labels": {"node.kubernetes.io/instance-type": offer.host} if backend == "kubernetes" else {},
    }
    if backend == "kubernetes":
        doc["allocatable"] = node_allocatable(offer.vcpus, offer.memory_gib).as_doc()
    return doc
