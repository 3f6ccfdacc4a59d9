"""Allocatable CPU and memory by GKE's documented reservation table, and the Shape fields that carry it."""

import pytest

from provider.prices import CatalogError, load_shapes
from scheduler.core.allocatable import node_allocatable, reserved_cpu, reserved_memory_mib
from scheduler.core.errors import SpecError
from scheduler.core.specs import parse_spec

# Worked by hand from https://cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes
# (CPU: 6% / 1% / 0.5% x2 / 0.25% above 4 cores; memory: 25% / 20% / 10% / 6% / 2% tiers + 100 MiB eviction).
CPU_CASES = [
    (1, 0.94),          # 6% of the first core
    (2, 1.93),          # + 1% of the second
    (4, 3.92),          # + 0.5% of the next two: GKE's own example, a 4-core node allocates 3920m
    (8, 7.91),          # + 0.25% of each core above 4
    (64, 63.77),         # 0.08 + 60 x 0.25%
]


@pytest.mark.parametrize("vcpus, allocatable", CPU_CASES)
def test_cpu_allocatable_follows_the_documented_tiers(vcpus, allocatable):
    assert node_allocatable(vcpus, 16).vcpus == pytest.approx(allocatable)


@pytest.mark.parametrize("memory_gib, reserved_gib", [
    (4, 1.0),                       # 25% of 4
    (8, 1.8),                       # + 20% of the next 4
    (16, 2.6),                      # + 10% of the next 8
    (32, 3.56),                     # + 6% of 16 more
    (256, 1 + 0.8 + 0.8 + 6.72 + 2.56),  # 6% of 112, then 2% of the 128 above 128 GiB
])
def test_memory_reservation_follows_the_documented_tiers(memory_gib, reserved_gib):
    assert reserved_memory_mib(memory_gib) == pytest.approx(reserved_gib * 1024 + 100)


@pytest.mark.parametrize("memory_gib, allocatable_mib", [
    (0.5, 512 - 255 - 100),   # under 1 GiB: a flat 255 MiB
    (4, 4096 - 1024 - 100),
    (16, 13621),              # 16384 - 2662.4 - 100 = 13621.6, rounded down to whole MiB
    (256, 249878),            # 262144 - 12165.12 - 100 = 249878.88
])
def test_memory_allocatable_is_whole_mib_rounded_down(memory_gib, allocatable_mib):
    assert node_allocatable(4, memory_gib).memory_gib * 1024 == allocatable_mib


def test_allocatable_is_never_more_than_the_node_and_stays_positive():
    for vcpus, memory_gib in [(0.25, 0.3), (1, 1), (2, 7.5), (96, 768), (224, 1952)]:
        got = node_allocatable(vcpus, memory_gib)
        assert 0 < got.vcpus < vcpus and 0 < got.memory_gib < memory_gib
    assert reserved_cpu(0) == 0


KUBE = {"name": "k", "backend": "kubernetes", "vcpus": 4, "memory_gib": 16, "price_per_hour": 0.2}


def test_shape_takes_kueue_queue_and_allocatable_on_kubernetes():
    shape = parse_spec({**KUBE, "kueue_queue": "ml", "allocatable": {"vcpus": 3.92, "memory_gib": 13.3}}, "Shape")
    assert shape.kueue_queue == "ml" and (shape.allocatable.vcpus, shape.allocatable.memory_gib) == (3.92, 13.3)
    assert parse_spec(KUBE, "Shape").allocatable is None


@pytest.mark.parametrize("fields, says", [
    ({"backend": "local", "kueue_queue": "ml"}, "kueue_queue='ml' is for kubernetes shapes, not backend 'local'"),
    ({"backend": "docker", "kueue_queue": "ml"}, "kueue_queue='ml'"),
    ({"kueue_queue": "ML_queue"}, "kueue_queue='ML_queue' is invalid"),
    ({"allocatable": {"vcpus": 5, "memory_gib": 8}}, "allocatable.vcpus=5 is more than the shape's vcpus 4"),
    ({"allocatable": {"vcpus": 2, "memory_gib": 17}}, "allocatable.memory_gib=17 is more than the shape's memory_gib 16"),
    ({"allocatable": {"vcpus": 0, "memory_gib": 8}}, "allocatable.vcpus=0 is invalid"),
    ({"allocatable": {"vcpus": 2}}, "allocatable.memory_gib is required"),
    ({"allocatable": {"vcpus": 2, "memory_gib": 8, "pods": 110}}, "unknown field 'allocatable.pods'"),
])
def test_bad_kubernetes_fields_are_one_line_naming_the_field(fields, says):
    with pytest.raises(SpecError) as caught:
        parse_spec({**KUBE, **fields}, "Shape")
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_catalog_kubernetes_shapes_carry_allocatable_and_an_override_wins(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("InstanceType,vCPUs,MemoryGiB,Price,Region\nm5.xlarge,4,16,0.192,us-east-1\n")
    [doc] = load_shapes(path, backend="kubernetes")
    assert doc["allocatable"] == {"vcpus": 3.92, "memory_gib": 13621 / 1024}
    parse_spec(doc, "Shape")  # the document is a valid Shape
    [docker] = load_shapes(path, backend="docker")
    assert "allocatable" not in docker
    override = {"allocatable": {"vcpus": 3.8, "memory_gib": 14.5}, "kueue_queue": "ml"}
    [doc] = load_shapes(path, backend="kubernetes", overrides={"m5.xlarge": override})
    assert doc["allocatable"] == override["allocatable"] and doc["kueue_queue"] == "ml"
    with pytest.raises(CatalogError, match="override for shape 'm5.2xlarge'"):
        load_shapes(path, backend="kubernetes", overrides={"m5.2xlarge": override})
