"""What a Kubernetes node of a given size can give to pods: its size less the system reservations.

The formula is GKE's, as Google documents it for Standard node pools (the "Memory and CPU
reservations" table of https://cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes):

- CPU: 6% of the first core, 1% of the next core (up to 2), 0.5% of the next 2 cores (up to 4),
  0.25% of every core above 4;
- memory: 255 MiB on machines with less than 1 GiB; else 25% of the first 4 GiB, 20% of the next
  4 GiB (up to 8), 10% of the next 8 GiB (up to 16), 6% of the next 112 GiB (up to 128), 2% above
  128 GiB; plus the kubelet's 100 MiB hard eviction threshold.

Other managed services reserve by their own tables (EKS from the pods a node may hold, AKS by
version): a shape's own ``allocatable`` gives a cluster's exact figure (``kubectl get node -o yaml``).
Pure: no I/O.
"""

from __future__ import annotations

import math
from typing import NamedTuple

FORMULA_URL = "https://cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes"
CPU_TIERS = ((1.0, 0.06), (1.0, 0.01), (2.0, 0.005), (math.inf, 0.0025))  # (cores in the tier, share reserved)
MEMORY_TIERS_GIB = ((4.0, 0.25), (4.0, 0.20), (8.0, 0.10), (112.0, 0.06), (math.inf, 0.02))
SMALL_MACHINE_GIB = 1.0
SMALL_MACHINE_RESERVED_MIB = 255.0
EVICTION_THRESHOLD_MIB = 100.0
# A node this small gives pods (next to) nothing; the least left is kept positive so a shape stays valid.
MIN_MILLICORES = 1
MIN_MIB = 1


class NodeAllocatable(NamedTuple):
    vcpus: float
    memory_gib: float

    def as_doc(self) -> dict[str, float]:
        return {"vcpus": self.vcpus, "memory_gib": self.memory_gib}


def _tiered(amount: float, tiers: tuple[tuple[float, float], ...]) -> float:
    reserved, left = 0.0, amount
    for size, share in tiers:
        taken = min(left, size)
        reserved += taken * share
        left -= taken
        if left <= 0:
            break
    return reserved


def reserved_cpu(vcpus: float) -> float:
    return _tiered(vcpus, CPU_TIERS)


def reserved_memory_mib(memory_gib: float) -> float:
    """The system reservation plus the eviction threshold, in MiB."""
    if memory_gib < SMALL_MACHINE_GIB:
        return SMALL_MACHINE_RESERVED_MIB + EVICTION_THRESHOLD_MIB
    return _tiered(memory_gib, MEMORY_TIERS_GIB) * 1024 + EVICTION_THRESHOLD_MIB


def node_allocatable(vcpus: float, memory_gib: float) -> NodeAllocatable:
    """Allocatable CPU (whole millicores, rounded down) and memory (whole MiB, rounded down) of a
    node of ``vcpus`` and ``memory_gib``: rounding down keeps a request of it within the node."""
    millicores = max(math.floor(round((vcpus - reserved_cpu(vcpus)) * 1000, 6)), MIN_MILLICORES)
    mib = max(math.floor(round(memory_gib * 1024 - reserved_memory_mib(memory_gib), 6)), MIN_MIB)
    return NodeAllocatable(millicores / 1000, mib / 1024)
