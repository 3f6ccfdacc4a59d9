"""What public benchmarks say about hardware speed: the duration model's prior, nothing more.

Two tables of *relative throughput* (higher is faster; a job is expected to take 1/speed as long):

* ``GPU_SPEED`` per accelerator model, relative to an NVIDIA V100 (16/32 GB, PCIe or SXM2) = 1.0,
  for a single-GPU deep-learning training job in mixed precision. Rounded from
  - Lambda, "Deep Learning GPU Benchmarks" (lambdalabs.com/gpu-benchmarks; PyTorch training
    throughput, 2022 and 2023 runs: NGC PyTorch 21.07 / 22.10 containers, V100, A100, A6000,
    A5000, RTX 6000/8000, RTX 3090/4090, H100 PCIe/SXM5, A10, L40S),
  - MLCommons MLPerf Training v1.0-v4.0 and Inference v2.1-v4.0 closed-division results
    (mlcommons.org/benchmarks; T4, A10, L4, A100, H100, H200, B200 single-accelerator ratios),
  - NVIDIA datasheets (nvidia.com/en-us/data-center/...) for dense FP16/BF16 tensor throughput and
    memory bandwidth where neither of the above benchmarks a model (K80, P4, P40, M60, consumer
    cards); those are scaled down the way measured training throughput trails peak FLOPS
    (roughly: half-way between the bandwidth ratio and the FLOPS ratio).
  Training throughput trails peak TFLOPS badly (memory bandwidth, kernels, input pipelines), which
  is why these numbers are much flatter than datasheet ratios (an H100 SXM has ~8.8x a V100's dense
  FP16 peak but trains ~3.5-4x as fast in Lambda's runs). A job is not a benchmark: the duration model
  shrinks each job's own evidence towards these numbers and learns how far it departs from them.
* ``CPU_SPEED`` per CPU generation, per vCPU, relative to an Intel Skylake-SP vCPU (one
  hyperthread) = 1.0, rounded from the vendors' published generation-on-generation IPC claims and
  SPEC CPU2017 integer rate results per core (spec.org/cpu2017/results): Intel Ice Lake +18 % IPC
  over Skylake (Intel Architecture Day 2019), Golden Cove (Sapphire Rapids) +19 % over Sunny Cove
  (Architecture Day 2021); AMD Zen 3 +19 % over Zen 2, Zen 4 +13 %, Zen 5 +16 % (AMD launch
  figures); AWS Graviton3 up to +25 % over Graviton2 and Graviton4 +30 % over Graviton3 (AWS
  re:Invent 2021 / 2023); Arm vCPUs are whole cores, which puts Graviton2 level with a Skylake
  hyperthread. Which generation a VM family runs on comes from the clouds' own size pages (Azure
  "Sizes for virtual machines", AWS "Instance types", GCP "Machine families resource guide").

A name not in a table has no prior (speed 1.0 and a wider uncertainty, see ``duration_model``).
"""

from __future__ import annotations

import re

REFERENCE_GPU = "V100"
REFERENCE_CPU = "skylake"

GPU_SPEED: dict[str, float] = {
    # data centre, by generation
    "K80": 0.2,  # one GK210 die, as clouds sell a "K80"
    "M60": 0.2,
    "P4": 0.2,
    "P40": 0.45,
    "P100": 0.5,
    "V100": 1.0,
    "T4": 0.4,
    "A10": 0.9,
    "A10G": 0.8,  # AWS g5: an A10 at lower clocks
    "A16": 0.25,
    "A30": 1.3,
    "A40": 1.3,
    "A100": 2.2,  # 40 GB
    "A100-80GB": 2.4,
    "L4": 0.75,
    "L40": 1.7,
    "L40S": 2.0,
    "H100-PCIE": 3.0,
    "H100-NVL": 3.3,
    "H100": 3.5,  # SXM5; catalogs that do not say which H100 usually sell SXM
    "H200": 4.2,
    "GH200": 4.2,
    "B200": 7.0,
    # workstation (Quadro / RTX professional)
    "RTX6000": 0.8,  # Quadro RTX 6000 (Turing)
    "RTX8000": 0.8,
    "RTXA4000": 0.65,
    "RTXA4500": 0.85,
    "RTXA5000": 1.0,
    "RTXA6000": 1.3,
    "RTX5880-ADA": 1.7,
    "RTX6000-ADA": 2.0,
    "RTXPRO6000": 2.6,  # RTX PRO 6000 Blackwell
    # consumer (GeForce)
    "RTX2080TI": 0.7,
    "RTX3060": 0.45,
    "RTX3080": 0.85,
    "RTX3090": 1.0,
    "RTX4060": 0.45,
    "RTX4070": 0.8,
    "RTX4080": 1.2,
    "RTX4090": 1.7,
    "RTX5070": 0.9,
    "RTX5080": 1.5,
    "RTX5090": 2.3,
    # AMD Instinct (ROCm); CUDA-only jobs cannot use them at all, which fit rules, not speeds, decide
    "MI25": 0.4,
    "MI100": 1.1,
    "MI250": 2.0,
    "MI300X": 3.5,
}

GPU_ALIASES = {"A6000": "RTXA6000", "A5000": "RTXA5000", "A4000": "RTXA4000", "TITANV": "V100", "T4G": "T4"}

CPU_SPEED: dict[str, float] = {
    "haswell": 0.8,
    "broadwell": 0.9,
    "skylake": 1.0,
    "cascadelake": 1.05,
    "icelake": 1.15,
    "sapphirerapids": 1.35,
    "emeraldrapids": 1.4,
    "graniterapids": 1.55,
    "naples": 0.8,  # AMD Zen 1
    "rome": 1.0,  # Zen 2
    "milan": 1.15,  # Zen 3
    "genoa": 1.3,  # Zen 4
    "turin": 1.5,  # Zen 5
    "graviton2": 1.0,  # Arm Neoverse N1, one core per vCPU (also Ampere Altra)
    "graviton3": 1.25,
    "graviton4": 1.6,
    "cobalt100": 1.3,  # Azure's Neoverse N2
}

_BRANDS = re.compile(r"^(NVIDIA|TESLA|GEFORCE|QUADRO|AMD|INSTINCT|RADEON)+")
# what may follow a model's name without changing the chip: memory size, form factor, variant
_VARIANT = re.compile(r"^(\d+GB|SXM\d?|PCIE|HBM\d?E?|GEN\d|WS|SERVER|BLACKWELL|MAXQ)*$")


def gpu_model(name: str | None) -> str | None:
    """The GPU_SPEED key for an accelerator as catalogs spell it ("A100-80GB", "NVIDIA A10G",
    "Tesla V100-SXM2-32GB", "RTX 4090", "H100 NVL"), or None when it is not in the table."""
    if not name:
        return None
    compact = _BRANDS.sub("", re.sub(r"[^A-Z0-9]", "", name.upper()))
    compact = GPU_ALIASES.get(compact, compact)
    keys = {k.replace("-", ""): k for k in GPU_SPEED}
    if compact in keys:
        return keys[compact]
    if "NVL" in compact and compact.startswith("H100"):
        return "H100-NVL"
    if "PCIE" in compact and compact.startswith("H100"):
        return "H100-PCIE"
    for key in sorted(keys, key=len, reverse=True):  # longest first: A100 before A10
        rest = compact[len(key):]
        if compact.startswith(key) and _VARIANT.match(rest):
            if "80GB" in rest and f"{key}80GB" in keys:
                return keys[f"{key}80GB"]
            return GPU_ALIASES.get(keys[key], keys[key])
    return None


def gpu_speed(name: str | None) -> float | None:
    model = gpu_model(name)
    return None if model is None else GPU_SPEED[model]


# Azure: Standard_<series><size>[-constrained]<features>[_v<version>]; "a" = AMD, "p" = Arm
_AZURE = re.compile(r"^standard_([a-z]+?)(\d+)(-\d+)?([a-z]*)(?:_v(\d+))?$")
_AZURE_INTEL = {None: "haswell", "2": "broadwell", "3": "broadwell", "4": "cascadelake", "5": "icelake",
                "6": "sapphirerapids"}
_AZURE_AMD = {"4": "rome", "5": "milan", "6": "genoa", "7": "turin"}
_AZURE_ARM = {"5": "graviton2", "6": "cobalt100"}  # v5 p-sizes run Ampere Altra (Neoverse N1)
# AWS: <family><generation><processor letters>.<size>, e.g. m5.large, c6i.xlarge, m7g.medium
_AWS = re.compile(r"^([a-z]+?)(\d)([a-z-]*)\.[0-9a-z]+$")
_AWS_INTEL = {"4": "broadwell", "5": "skylake", "6": "icelake", "7": "sapphirerapids", "8": "graniterapids"}
_AWS_AMD = {"5": "naples", "6": "milan", "7": "genoa", "8": "turin"}
_AWS_ARM = {"6": "graviton2", "7": "graviton3", "8": "graviton4"}
# GCP: <family>-<kind>-<vcpus>, e.g. n2-standard-8, c3d-highmem-16
_GCP = {"n1": "skylake", "n2": "cascadelake", "n2d": "milan", "c2": "cascadelake", "c2d": "milan",
        "c3": "sapphirerapids", "c3d": "genoa", "c4": "emeraldrapids", "c4d": "turin", "n4": "emeraldrapids",
        "t2d": "milan", "t2a": "graviton2", "c4a": "graviton3", "m1": "broadwell", "m3": "icelake",
        "e2": "broadwell", "h3": "sapphirerapids"}


def cpu_generation(instance_type: str | None) -> str | None:
    """The CPU generation behind a VM size name (Azure, AWS, GCP spellings), or None."""
    name = (instance_type or "").lower()
    if (m := _AZURE.match(name)) is not None:
        series, _, constrained, features, version = m.groups()
        if series in ("b", "a"):  # burstable and basic A sizes: whatever host is free
            return None
        if "p" in features:
            return _AZURE_ARM.get(version)
        if "a" in features:
            return _AZURE_AMD.get(version)
        if series.startswith("f") and version == "2":
            return "cascadelake" if series == "fx" else "skylake"
        return _AZURE_INTEL.get(version)
    if (m := _AWS.match(name)) is not None:
        _family, generation, letters = m.groups()
        table = _AWS_ARM if "g" in letters else _AWS_AMD if "a" in letters else _AWS_INTEL
        return table.get(generation)
    family = name.split("-", 1)[0]
    return _GCP.get(family) if "-" in name else None


def cpu_speed(instance_type: str | None) -> float | None:
    generation = cpu_generation(instance_type)
    return None if generation is None else CPU_SPEED[generation]
