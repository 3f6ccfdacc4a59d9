"""What a price catalog does not say outright: which VM families carry which GPUs, which GPUs
attach to which host VMs, GPU memory per model, and a VM's CPU family. Pure data and lookups.

GPU models are spelled as the SkyPilot catalogs spell ``AcceleratorName`` (``A100-80GB``, ``L4``).

VM families whose GPUs are implied by the name (rows with an empty ``AcceleratorName``):

| family (instance type)            | GPUs            | billing of the GPUs   | source |
| --------------------------------- | --------------- | --------------------- | ------ |
| GCP ``a2-highgpu-{1,2,4,8}g``     | N x A100 (40GB) | separate GPU rows     | [gcp-gpus], [sky-gcp] |
| GCP ``a2-megagpu-16g``            | 16 x A100       | separate GPU rows     | [gcp-gpus], [sky-gcp] |
| GCP ``a2-ultragpu-{1,2,4,8}g``    | N x A100-80GB   | separate GPU rows     | [gcp-gpus], [sky-gcp] |
| GCP ``a3-highgpu-{1,2,4,8}g``     | N x H100        | separate GPU rows     | [gcp-gpus], [sky-gcp] |
| GCP ``a3-megagpu-8g``             | 8 x H100        | rows named H100-MEGA  | [gcp-gpus], [sky-gcp] |
| GCP ``a3-ultragpu-8g``            | 8 x H200        | separate GPU rows     | [gcp-gpus], [sky-gcp] |
| GCP ``a4-highgpu-8g``             | 8 x B200        | separate GPU rows     | [gcp-gpus], [sky-gcp] |
| GCP ``g2-standard-{4,8,12,16,32}``| 1 x L4          | separate GPU rows     | [gcp-gpus], [sky-gcp] |
| GCP ``g2-standard-24/48/96``      | 2 / 4 / 8 x L4  | separate GPU rows     | [gcp-gpus], [sky-gcp] |
| AWS ``p2.xlarge/8xlarge/16xlarge``| 1 / 8 / 16 x K80| in the VM price       | [aws-types] |
| AWS ``p3.2xlarge/8xlarge/16xlarge``| 1 / 4 / 8 x V100| in the VM price      | [aws-types] |
| AWS ``p3dn.24xlarge``             | 8 x V100-32GB   | in the VM price       | [aws-types] |
| AWS ``p4d.24xlarge``              | 8 x A100        | in the VM price       | [aws-types] |
| AWS ``p4de.24xlarge``             | 8 x A100-80GB   | in the VM price       | [aws-types] |
| AWS ``p5.48xlarge``               | 8 x H100        | in the VM price       | [aws-types] |
| AWS ``p5e.48xlarge/p5en.48xlarge``| 8 x H200        | in the VM price       | [aws-types] |
| AWS ``g4dn.*`` (12xlarge / metal) | 1 x T4 (4 / 8)  | in the VM price       | [aws-types] |
| AWS ``g5.*`` (12x, 24x / 48xlarge)| 1 x A10G (4 / 8)| in the VM price       | [aws-types] |
| AWS ``g6.*`` (12x, 24x / 48xlarge)| 1 x L4 (4 / 8)  | in the VM price       | [aws-types] |
| AWS ``g6e.*`` (12x, 24x / 48xlarge)| 1 x L40S (4 / 8)| in the VM price      | [aws-types] |

Other names of those accelerator clouds' GPU families (GCP ``a2-``/``a3-``/``a4-``/``g2-``, AWS
``p*``/``g*``/``inf*``/``trn*``/``dl*``, Azure ``Standard_N*``) with no GPU columns are not
guessed: the loader skips them as an unmapped accelerator family rather than offering them as CPU VMs.

GPUs priced per unit in rows without an instance type attach to GCP N1 hosts in the same zone
(``n1-standard-*``, ``n1-highmem-*``, ``n1-highcpu-*``; N2 and later take no attached GPUs) in these
counts, with the host's vCPUs and memory at most [gcp-gpus]:

| GPU  | 1 GPU     | 2 GPUs     | 4 GPUs     | 8 GPUs     |
| ---- | --------- | ---------- | ---------- | ---------- |
| T4   | 48 / 312  | 48 / 312   | 96 / 624   | --         |
| V100 | 12 / 78   | 24 / 156   | 48 / 312   | 96 / 624   |
| P100 | 16 / 104  | 32 / 208   | 96 / 624   | --         |
| P4   | 24 / 156  | 48 / 312   | 96 / 624   | --         |
| K80  | 8 / 52    | 16 / 104   | 32 / 208   | 64 / 208   |

Sources:
[gcp-gpus]  https://cloud.google.com/compute/docs/gpus (GPU machine types; N1 + attached GPUs)
[sky-gcp]   skypilot-org/skypilot sky/catalog/gcp_catalog.py (the same family and limit tables) and
            sky/catalog/data_fetchers/fetch_gcp.py (GPU rows: no InstanceType, Price = count x unit)
[aws-types] https://aws.amazon.com/ec2/instance-types/ (accelerated computing: P2-P5, G4dn-G6e)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class FamilyGpus:
    model: str
    count: float
    billed_apart: bool  # GCP bills these GPUs in accelerator rows, not in the VM's row
    priced_as: str  # the accelerator rows' AcceleratorName that prices them


def _gcp(model: str, priced_as: str | None = None) -> tuple[str, bool, str]:
    return model, True, priced_as or model


def _aws(model: str) -> tuple[str, bool, str]:
    return model, False, model


_AWS_SIZES_ONE_GPU = r"(?:xlarge|2xlarge|4xlarge|8xlarge|16xlarge)"

# (full-match pattern, GPU count or None = the pattern's first group, (model, billed apart, priced as))
_FAMILIES: list[tuple[re.Pattern, float | None, tuple[str, bool, str]]] = [
    (re.compile(r"a2-highgpu-(1|2|4|8)g"), None, _gcp("A100")),
    (re.compile(r"a2-megagpu-16g"), 16, _gcp("A100")),
    (re.compile(r"a2-ultragpu-(1|2|4|8)g"), None, _gcp("A100-80GB")),
    (re.compile(r"a3-highgpu-(1|2|4|8)g"), None, _gcp("H100")),
    (re.compile(r"a3-megagpu-8g"), 8, _gcp("H100", "H100-MEGA")),
    (re.compile(r"a3-ultragpu-8g"), 8, _gcp("H200")),
    (re.compile(r"a4-highgpu-8g"), 8, _gcp("B200")),
    (re.compile(r"g2-standard-(?:4|8|12|16|32)"), 1, _gcp("L4")),
    (re.compile(r"g2-standard-24"), 2, _gcp("L4")),
    (re.compile(r"g2-standard-48"), 4, _gcp("L4")),
    (re.compile(r"g2-standard-96"), 8, _gcp("L4")),
    (re.compile(r"p2\.xlarge"), 1, _aws("K80")),
    (re.compile(r"p2\.8xlarge"), 8, _aws("K80")),
    (re.compile(r"p2\.16xlarge"), 16, _aws("K80")),
    (re.compile(r"p3\.2xlarge"), 1, _aws("V100")),
    (re.compile(r"p3\.8xlarge"), 4, _aws("V100")),
    (re.compile(r"p3\.16xlarge"), 8, _aws("V100")),
    (re.compile(r"p3dn\.24xlarge"), 8, _aws("V100-32GB")),
    (re.compile(r"p4d\.24xlarge"), 8, _aws("A100")),
    (re.compile(r"p4de\.24xlarge"), 8, _aws("A100-80GB")),
    (re.compile(r"p5\.48xlarge"), 8, _aws("H100")),
    (re.compile(r"p5en?\.48xlarge"), 8, _aws("H200")),
    (re.compile(r"g4dn\." + _AWS_SIZES_ONE_GPU), 1, _aws("T4")),
    (re.compile(r"g4dn\.12xlarge"), 4, _aws("T4")),
    (re.compile(r"g4dn\.metal"), 8, _aws("T4")),
    (re.compile(r"g5\." + _AWS_SIZES_ONE_GPU), 1, _aws("A10G")),
    (re.compile(r"g5\.(?:12|24)xlarge"), 4, _aws("A10G")),
    (re.compile(r"g5\.48xlarge"), 8, _aws("A10G")),
    (re.compile(r"g6\." + _AWS_SIZES_ONE_GPU), 1, _aws("L4")),
    (re.compile(r"g6\.(?:12|24)xlarge"), 4, _aws("L4")),
    (re.compile(r"g6\.48xlarge"), 8, _aws("L4")),
    (re.compile(r"g6e\." + _AWS_SIZES_ONE_GPU), 1, _aws("L40S")),
    (re.compile(r"g6e\.(?:12|24)xlarge"), 4, _aws("L40S")),
    (re.compile(r"g6e\.48xlarge"), 8, _aws("L40S")),
]

# names of accelerator families that are not in the table above: never offered as CPU VMs
_UNMAPPED_ACCELERATOR_FAMILY = re.compile(
    r"(?:a[2-9]|g2)-\S+"  # GCP accelerator-optimized
    r"|(?:p\d|g\d|inf\d|trn\d|dl\d|f\d|vt\d)[a-z]*\.\S+"  # AWS accelerated computing
    r"|Standard_N[A-Z]*\d\S*"  # Azure N-series
)

# GCP N1 + attached GPUs: model -> {count: (max vCPUs, max memory GiB)} [gcp-gpus]
HOST_LIMITS: dict[str, dict[int, tuple[float, float]]] = {
    "T4": {1: (48, 312), 2: (48, 312), 4: (96, 624)},
    "V100": {1: (12, 78), 2: (24, 156), 4: (48, 312), 8: (96, 624)},
    "P100": {1: (16, 104), 2: (32, 208), 4: (96, 624)},
    "P4": {1: (24, 156), 2: (48, 312), 4: (96, 624)},
    "K80": {1: (8, 52), 2: (16, 104), 4: (32, 208), 8: (64, 208)},
}
_ATTACHING_HOST = re.compile(r"n1-(?:standard|highmem|highcpu)-\d+")

# Per-GPU memory, GiB, from the vendors' datasheets, for catalogs whose GpuInfo does not say it
# (Azure's holds only the name). H100 is the 80 GB SXM / PCIe part; see gpu_memory_gib for NVL.
GPU_MEMORY_GIB: dict[str, float] = {
    "K80": 12, "M60": 8, "P4": 8, "P100": 16, "T4": 16, "V100": 16, "V100-32GB": 32, "A10": 24,
    "A10G": 24, "L4": 24, "L40S": 48, "A100": 40, "A100-80GB": 80, "H100": 80, "H100-MEGA": 80,
    "H200": 141, "GH200": 96, "B200": 180, "A6000": 48, "RTXA6000": 48, "RTX6000": 24, "MI25": 16,
    "MI300X": 192,
}
# Azure's NC H100 v5 sizes carry the 94 GB H100 NVL (learn.microsoft.com: NCads H100 v5 series)
_H100_NVL = re.compile(r"Standard_NCC?\d+a\w*_H100_v5")

_AZURE_SIZE = re.compile(r"Standard_([A-Z]+)\d+(?:-\d+)?([a-z]*)(?:_v(\d+))?")
_AWS_TYPE = re.compile(r"([a-z][a-z0-9-]*)\.[a-z0-9-]+")
_GCP_TYPE = re.compile(r"([a-z]\d+[a-z]?)-[a-z]+(?:-\d+)?(?:-\S+)?")


@lru_cache(maxsize=8192)  # a catalog names each type once per region
def implied_gpus(instance_type: str) -> FamilyGpus | None:
    """The GPUs a VM family carries by its name alone (see the table above), or None."""
    for pattern, count, (model, billed_apart, priced_as) in _FAMILIES:
        match = pattern.fullmatch(instance_type)
        if match:
            n = count if count is not None else float(match.group(1))
            return FamilyGpus(model, float(n), billed_apart, priced_as)
    return None


@lru_cache(maxsize=8192)
def is_unmapped_accelerator_family(instance_type: str) -> bool:
    """A GPU / accelerator family name that the table above does not map."""
    return implied_gpus(instance_type) is None and bool(_UNMAPPED_ACCELERATOR_FAMILY.fullmatch(instance_type))


@lru_cache(maxsize=8192)
def attaches_gpus(instance_type: str) -> bool:
    """Can GPUs priced on their own rows be attached to this host VM (GCP N1)?"""
    return bool(_ATTACHING_HOST.fullmatch(instance_type))


def host_fits(model: str, count: float, vcpus: float, memory_gib: float) -> bool:
    """Does GCP allow `count` GPUs of `model` on a host this big?"""
    limit = HOST_LIMITS.get(model.upper(), {}).get(int(count)) if float(count).is_integer() else None
    return limit is not None and vcpus <= limit[0] and memory_gib <= limit[1]


def is_tpu(accelerator: str) -> bool:
    return accelerator.lower().startswith("tpu")


def gpu_memory_gib(model: str, instance_type: str = "") -> float:
    """Memory per GPU from the model's datasheet; 0 when unknown."""
    if model.upper().startswith("H100") and _H100_NVL.fullmatch(instance_type):
        return 94.0
    for name, gib in GPU_MEMORY_GIB.items():
        if name.upper() == model.upper():
            return float(gib)
    return 0.0


@lru_cache(maxsize=8192)
def cpu_family(instance_type: str) -> str | None:
    """The VM's CPU family as its cloud names it: Azure ``Standard_D4ads_v5`` -> ``Dadsv5``,
    AWS ``m5.2xlarge`` -> ``m5``, GCP ``n2-standard-8`` -> ``n2``; None for other names."""
    if match := _AZURE_SIZE.fullmatch(instance_type):
        series, features, version = match.groups()
        return f"{series}{features}{'v' + version if version else ''}"
    if match := _AWS_TYPE.fullmatch(instance_type):
        return match.group(1)
    if match := _GCP_TYPE.fullmatch(instance_type):
        return match.group(1)
    return None
