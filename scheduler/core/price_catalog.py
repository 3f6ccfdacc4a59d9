"""Price catalogs in the SkyPilot schema, in every layout clouds publish them. Pure: rows in, offers out.

Columns are found by name, case-insensitively, in any order; extra columns are ignored. Required:
InstanceType, vCPUs, MemoryGiB, Price. Optional: AcceleratorName, AcceleratorCount, GpuInfo (or
GPUInfo), GpuMemoryGiB (per GPU), SpotPrice, Region, AvailabilityZone. Layouts:

* GPU columns on the VM row (Azure, Lambda, Vast, AWS): the row is the offer.
* Accelerators priced on rows of their own, with no InstanceType (GCP): each such row prices
  AcceleratorCount GPUs in its zone (GCP writes count x unit price; a catalog with only count-1 rows
  is read as a unit price and multiplied). They attach to host VMs in the same zone as
  ``instance_families`` documents (GCP N1 + T4 / V100 / P100 / P4 / K80 in 1 / 2 / 4 / 8): one offer
  ``<host>_<count>x<GPU>`` priced host + GPUs.
* Accelerator VM families whose GPUs are implied by the name (GCP a2 / a3 / a4 / g2, AWS p / g):
  GPU model and count from ``instance_families``; where that cloud bills the GPUs apart (GCP), the
  price adds the GPU rows of the same zone.

Rows that yield no offer are counted by reason (``SKIP_REASONS``), never dropped silently. A missing
required column, or a file that is not a catalog, raises ``CatalogError`` (one line, exit 2).
"""

from __future__ import annotations

import ast
import csv
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Iterable

from . import instance_families as fam
from .errors import UserError

REQUIRED = ("InstanceType", "vCPUs", "MemoryGiB", "Price")
OPTIONAL = ("AcceleratorName", "AcceleratorCount", "GpuInfo", "GpuMemoryGiB", "SpotPrice", "Region",
            "AvailabilityZone")
SKIP_REASONS = {
    "no_price": "Price empty, zero, negative or not a number (an on-demand price is needed)",
    "no_resources": "vCPUs or MemoryGiB empty, zero or not a number",
    "duplicate": "the same instance type, accelerator and place as an earlier row",
    "tpu": "a TPU: not a GPU a job here can ask for",
    "unnamed_accelerator": "AcceleratorCount without an AcceleratorName (e.g. Azure NP FPGAs)",
    "bad_accelerator_count": "AcceleratorName with an empty, zero or non-numeric AcceleratorCount",
    "unmapped_accelerator_family": "a GPU family name with no GPU columns that instance_families does not map",
    "accelerator_price_missing": "GPUs billed apart, with no GPU row in the same zone to price them",
    "accelerator_without_host": "a GPU row no host VM in its zone can take",
    "no_instance_type": "neither an InstanceType nor an AcceleratorName",
}


class CatalogError(UserError):
    """The file is not a price catalog this loader can read."""


@dataclass(frozen=True, slots=True)
class Offer:
    """One shape at one price in one place."""

    instance_type: str  # attached GPUs: "<host>_<count>x<GPU>"
    vcpus: float
    memory_gib: float
    gpus: float
    gpu_type: str | None  # as the catalog spells it
    gpu_memory_gib: float  # per GPU
    price_per_hour: float
    spot_price_per_hour: float | None  # None: no spot market (a 0 in the file means that too)
    region: str | None
    zone: str | None
    layout: str  # vm_row | attached | family
    order: int  # first appearance of the instance type (attached: of its host) in the file
    host: str  # the VM it runs on: the instance type, or the host of attached GPUs


@dataclass
class PriceCatalog:
    offers: list[Offer]  # every priced offer, every place
    skipped: Counter = field(default_factory=Counter)  # reason -> rows
    columns: tuple[str, ...] = ()

    def cheapest(self, region: str | None = None) -> list[Offer]:
        """One offer per instance type: in `region` if given, else its cheapest place; file order."""
        best: dict[str, Offer] = {}
        for offer in self.offers:
            if region is not None and offer.region != region:
                continue
            held = best.get(offer.instance_type)
            if held is None or offer.price_per_hour < held.price_per_hour:
                best[offer.instance_type] = offer
        return sorted(best.values(), key=lambda o: (o.order, o.instance_type))

    def gpu_offers(self) -> int:
        return len({o.instance_type for o in self.offers if o.gpus > 0})


def _number(text: str | None) -> float | None:
    """A finite number, or None for empty / not a number / NaN / infinity."""
    if text is None or not str(text).strip():
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _gpu_memory_from_info(info: str) -> float | None:
    """Lambda / Vast / GCP GpuInfo: a Python-dict repr with MemoryInfo.SizeInMiB (per GPU)."""
    if not info.startswith("{"):
        return None
    try:
        gpus = ast.literal_eval(info).get("Gpus") or []
        return round(float(gpus[0]["MemoryInfo"]["SizeInMiB"]) / 1024, 2)
    except (ValueError, SyntaxError, KeyError, IndexError, TypeError, AttributeError):
        return None


def header_map(header: list[str]) -> dict[str, str]:
    """Schema column -> the file's spelling of it; CatalogError naming a missing required column."""
    found = {name.strip().lstrip("\ufeff").lower(): name for name in header if name}  # a BOM from Excel
    columns = {name: found[name.lower()] for name in REQUIRED + OPTIONAL if name.lower() in found}
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        listed = ", ".join(h for h in header if h) or "none"
        raise CatalogError(f"price catalog: missing column {missing[0]!r} (columns found: {listed})")
    return columns


def parse_catalog(lines: Iterable[str]) -> PriceCatalog:
    """Offers and skip counts from the lines of a catalog CSV (``#`` lines are comments)."""
    reader = csv.reader(line for line in lines if line.strip() and not line.lstrip().startswith("#"))
    header = next(reader, None)
    if header is None:
        raise CatalogError("price catalog: the file is empty (no header row)")
    columns = header_map(header)
    index = {name: header.index(spelling) for name, spelling in columns.items()}
    rows = ({name: (row[i].strip() if i < len(row) else "") for name, i in index.items()} for row in reader)
    return _Builder().build(rows, tuple(h for h in header if h))


@dataclass
class _AcceleratorPrice:
    price: float
    spot: float | None
    gpu_memory: float | None
    used: bool = False


class _Builder:
    def __init__(self):
        self.offers: list[Offer] = []
        self.skipped: Counter = Counter()
        self.seen: set[tuple] = set()
        self.order: dict[str, int] = {}
        self.accelerators: dict[tuple, _AcceleratorPrice] = {}  # (MODEL, count, region, zone)
        self.hosts: list[Offer] = []
        self.billed_apart: list[tuple[Offer, fam.FamilyGpus]] = []

    def build(self, rows: Iterable[dict], header: tuple[str, ...]) -> PriceCatalog:
        for row in rows:
            reason = self._row(row)
            if reason:
                self.skipped[reason] += 1
        self._attach()
        self._price_families()
        unused = sum(1 for a in self.accelerators.values() if not a.used)
        if unused:
            self.skipped["accelerator_without_host"] += unused
        return PriceCatalog(self.offers, self.skipped, header)

    def _row(self, row: dict) -> str | None:
        kind, accel = row.get("InstanceType", ""), row.get("AcceleratorName", "")
        count = _number(row.get("AcceleratorCount"))
        if accel and fam.is_tpu(accel):
            return "tpu"
        if not kind and not accel:
            return "no_instance_type"
        price, spot = _number(row.get("Price")), _number(row.get("SpotPrice"))
        if price is None or price <= 0:
            return "no_price"
        region, zone = row.get("Region") or None, row.get("AvailabilityZone") or None
        key = (kind, accel.upper(), count, region, zone)
        if key in self.seen:
            return "duplicate"
        self.seen.add(key)
        spot = spot if spot and spot > 0 else None
        if not kind:
            if count is None or count <= 0:
                return "bad_accelerator_count"
            info = _gpu_memory_from_info(row.get("GpuInfo", ""))
            self.accelerators[(accel.upper(), count, region, zone)] = _AcceleratorPrice(price, spot, info)
            return None
        vcpus, memory = _number(row.get("vCPUs")), _number(row.get("MemoryGiB"))
        if not vcpus or vcpus <= 0 or not memory or memory <= 0:
            return "no_resources"
        order = self.order.setdefault(kind, len(self.order))
        base = Offer(kind, vcpus, memory, gpus=0.0, gpu_type=None, gpu_memory_gib=0.0, price_per_hour=price,
                     spot_price_per_hour=spot, region=region, zone=zone, layout="vm_row", order=order, host=kind)
        return self._vm_offer(base, row, accel, count)

    def _vm_offer(self, base: Offer, row: dict, accel: str, count: float | None) -> str | None:
        """Keep a VM row's offer: with the accelerators its row names, its family implies, or none."""
        kind = base.instance_type
        if accel:
            if count is None or count <= 0:
                return "bad_accelerator_count"
            memory_gib = _number(row.get("GpuMemoryGiB"))
            if memory_gib is None:
                memory_gib = _gpu_memory_from_info(row.get("GpuInfo", "")) or fam.gpu_memory_gib(accel, kind)
            self.offers.append(replace(base, gpus=count, gpu_type=accel, gpu_memory_gib=memory_gib))
            return None
        if count is not None and count > 0:
            return "unnamed_accelerator"
        implied = fam.implied_gpus(kind)
        if implied is not None:
            offer = replace(base, gpus=implied.count, gpu_type=implied.model, layout="family",
                            gpu_memory_gib=fam.gpu_memory_gib(implied.model, kind))
            if implied.billed_apart:
                self.billed_apart.append((offer, implied))
            else:
                self.offers.append(offer)
            return None
        if fam.is_unmapped_accelerator_family(kind):
            return "unmapped_accelerator_family"
        self.offers.append(base)
        if fam.attaches_gpus(kind):
            self.hosts.append(base)
        return None

    def _lookup(self, model: str, count: float, region, zone) -> tuple[float, float | None, float | None] | None:
        """(price, spot, memory per GPU) of `count` GPUs in that place: their own row, else count x the
        one-GPU row; the zone's rows first, then rows that name only the region."""
        for place in ((region, zone), (region, None)):
            exact = self.accelerators.get((model.upper(), count, *place))
            if exact is not None:
                exact.used = True
                return exact.price, exact.spot, exact.gpu_memory
            unit = self.accelerators.get((model.upper(), 1.0, *place))
            if unit is not None:
                unit.used = True
                return unit.price * count, unit.spot * count if unit.spot else None, unit.gpu_memory
        return None

    def _attach(self) -> None:
        models = sorted({m for (m, _, _, _) in self.accelerators if m in fam.HOST_LIMITS})
        for host in self.hosts:
            for model in models:
                for count in fam.HOST_LIMITS[model]:
                    if not fam.host_fits(model, count, host.vcpus, host.memory_gib):
                        continue
                    gpu = self._lookup(model, count, host.region, host.zone)
                    if gpu is not None:
                        name = f"{host.instance_type}_{count:g}x{model}"
                        self.offers.append(self._with_gpus(host, model, count, gpu, name, "attached"))

    def _price_families(self) -> None:
        for offer, implied in self.billed_apart:
            gpu = self._lookup(implied.priced_as, implied.count, offer.region, offer.zone)
            if gpu is None:
                self.skipped["accelerator_price_missing"] += 1
                continue
            self.offers.append(self._with_gpus(offer, implied.model, implied.count, gpu, offer.instance_type, "family"))

    @staticmethod
    def _with_gpus(host: Offer, model: str, count: float, gpu: tuple, name: str, layout: str) -> Offer:
        price, gpu_spot, gpu_memory = gpu
        spot = host.spot_price_per_hour + gpu_spot if host.spot_price_per_hour and gpu_spot else None
        memory = gpu_memory or host.gpu_memory_gib or fam.gpu_memory_gib(model, host.instance_type)
        return replace(host, instance_type=name, gpus=float(count), gpu_type=model, gpu_memory_gib=memory,
                       price_per_hour=host.price_per_hour + price, spot_price_per_hour=spot, layout=layout)
