"""The price-catalog loader on small catalogs in every layout clouds publish (tests/fixtures/catalogs)."""

from __future__ import annotations

import csv

import pytest

from provider.prices import CatalogError, load_catalog, load_shapes
from scheduler.core.instance_families import cpu_family, implied_gpus
from scheduler.core.price_catalog import SKIP_REASONS, parse_catalog
from scheduler.core.specs import parse_spec
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "catalogs"


def by_name(catalog, region=None) -> dict:
    return {o.instance_type: o for o in catalog.cheapest(region)}


def test_gpu_rows_without_an_instance_type_attach_to_hosts_in_the_same_zone():
    catalog = load_catalog(FIXTURES / "gcp-accelerator-rows.csv")
    offers = by_name(catalog)
    t4 = offers["n1-standard-4_2xT4"]
    assert (t4.gpus, t4.gpu_type, t4.gpu_memory_gib, t4.layout) == (2, "T4", 16, "attached")
    assert t4.price_per_hour == pytest.approx(0.19 + 0.70) and t4.spot_price_per_hour == pytest.approx(0.04 + 0.14)
    assert t4.zone == "us-central1-a" and t4.host == "n1-standard-4"
    assert offers["n1-standard-4_4xT4"].price_per_hour == pytest.approx(0.19 + 1.40)
    # V100 is priced for one GPU only in us-east1-b: N GPUs cost N x that, on the host of that zone
    for n in (1, 2, 4, 8):
        assert offers[f"n1-standard-4_{n}xV100"].price_per_hour == pytest.approx(0.20 + n * 2.48)
        assert offers[f"n1-standard-4_{n}xV100"].zone == "us-east1-b"
    # GCP limits the host's size per GPU count: a 64-vCPU host takes 4 T4s, not 1 or 2
    assert "n1-highmem-64_4xT4" in offers and "n1-highmem-64_1xT4" not in offers
    assert not any(name.startswith("n2-standard-4_") for name in offers)  # N2 takes no attached GPUs
    assert offers["n1-standard-4"].gpus == 0 and offers["n1-standard-4"].price_per_hour == 0.19


def test_gpu_families_implied_by_the_name_add_their_gpu_rows():
    offers = by_name(load_catalog(FIXTURES / "gcp-accelerator-rows.csv"))
    a2 = offers["a2-highgpu-1g"]
    assert (a2.gpus, a2.gpu_type, a2.gpu_memory_gib, a2.layout) == (1, "A100", 40, "family")
    assert a2.price_per_hour == pytest.approx(0.73948 + 2.93)
    g2 = offers["g2-standard-4"]
    assert (g2.gpus, g2.gpu_type) == (1, "L4") and g2.price_per_hour == pytest.approx(0.22 + 0.56)
    assert "a2-highgpu-2g" not in offers  # no A100 row in us-west3-b: not offered at a CPU price
    assert "a3-edgegpu-8g" not in offers  # a GPU family the table does not map: not a CPU VM either


def test_skips_are_counted_by_reason():
    catalog = load_catalog(FIXTURES / "gcp-accelerator-rows.csv")
    assert dict(catalog.skipped) == {
        "duplicate": 1,  # n2-standard-4 twice in one zone
        "accelerator_price_missing": 1,  # a2-highgpu-2g
        "unmapped_accelerator_family": 1,  # a3-edgegpu-8g
        "no_price": 1,  # K80 at 0
        "tpu": 2,
        "accelerator_without_host": 1,  # P4 in a zone with no N1 host
    }
    assert set(catalog.skipped) <= set(SKIP_REASONS)

    lam = load_catalog(FIXTURES / "lambda-vm-rows.csv")
    assert dict(lam.skipped) == {"duplicate": 1, "no_price": 2, "no_resources": 1}  # 0.0 and nan prices
    assert sorted(by_name(lam)) == ["cpu_4x_generalx", "gpu_1x_a10", "gpu_8x_h100_sxm5"]


def test_gpu_columns_on_the_vm_row():
    lam = by_name(load_catalog(FIXTURES / "lambda-vm-rows.csv"))
    assert lam["gpu_1x_a10"].price_per_hour == 0.75 and lam["gpu_1x_a10"].region == "us-east-1"
    assert lam["gpu_8x_h100_sxm5"].gpu_memory_gib == 80  # from GpuInfo's MiB
    assert lam["gpu_1x_a10"].spot_price_per_hour is None

    azure = load_catalog(FIXTURES / "azure-vm-rows.csv")
    offers = by_name(azure)
    assert offers["Standard_NC40ads_H100_v5"].gpu_memory_gib == 94  # the NVL part
    assert offers["Standard_ND96isr_H100_v5"].gpu_memory_gib == 80
    assert offers["Standard_NV6ads_A10_v5"].gpus == pytest.approx(0.167)
    assert by_name(azure, region="westeurope")["Standard_D2s_v5"].price_per_hour == 0.105
    assert offers["Standard_D2s_v5"].price_per_hour == 0.096
    assert dict(azure.skipped) == {"unnamed_accelerator": 1, "unmapped_accelerator_family": 1, "no_price": 1}


def test_aws_families_in_an_unknown_column_order():
    catalog = load_catalog(FIXTURES / "aws-family-names.csv")
    offers = by_name(catalog)
    assert (offers["p3.2xlarge"].gpus, offers["p3.2xlarge"].gpu_type, offers["p3.2xlarge"].gpu_memory_gib) == (1, "V100", 16)
    assert offers["p3.2xlarge"].price_per_hour == 3.06  # AWS prices include the GPUs
    assert (offers["g5.12xlarge"].gpus, offers["g5.12xlarge"].gpu_type) == (4, "A10G")
    assert offers["m5.large"].gpus == 0
    assert dict(catalog.skipped) == {"unmapped_accelerator_family": 1}  # inf2.xlarge


def test_column_order_and_extra_columns_do_not_matter(tmp_path):
    source = FIXTURES / "gcp-accelerator-rows.csv"
    with open(source, newline="") as handle:
        rows = list(csv.reader(line for line in handle if not line.startswith("#")))
    order = list(reversed(range(len(rows[0]))))
    shuffled = tmp_path / "shuffled.csv"
    with open(shuffled, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([rows[0][i].upper() for i in order] + ["Extra"])  # spelling of the case differs too
        writer.writerows([row[i] for i in order] + ["x"] for row in rows[1:])
    a, b = load_catalog(source), load_catalog(shuffled)
    assert by_name(a) == by_name(b) and a.skipped == b.skipped
    with_bom = tmp_path / "bom.csv"
    with_bom.write_text("\ufeff" + shuffled.read_text())  # as spreadsheets save UTF-8
    assert by_name(load_catalog(with_bom)) == by_name(a)


def test_a_missing_required_column_is_one_line_naming_it_and_the_columns_found():
    with pytest.raises(CatalogError) as caught:
        load_catalog(FIXTURES / "missing-price.csv")
    message = str(caught.value)
    assert "'Price'" in message and "InstanceType, vCPUs, MemoryGiB, OnDemandUSD, Region" in message
    assert "missing-price.csv" in message and "\n" not in message
    with pytest.raises(CatalogError, match="empty"):
        parse_catalog(["# only a comment\n"])


def test_shape_documents_from_every_layout_are_valid_shapes():
    for path in sorted(FIXTURES.glob("*.csv")):
        if path.name == "missing-price.csv":
            continue
        docs = load_shapes(path, backend="kubernetes")
        assert docs, path
        for doc in docs:
            parse_spec({**doc, "kind": "Shape"})
    attached = next(d for d in load_shapes(FIXTURES / "gcp-accelerator-rows.csv") if d["name"] == "n1-standard-4_1xT4")
    assert attached["labels"] == {"node.kubernetes.io/instance-type": "n1-standard-4"}  # the node is the host VM


def test_family_table_and_cpu_families():
    assert implied_gpus("a2-ultragpu-4g").model == "A100-80GB" and implied_gpus("a2-ultragpu-4g").count == 4
    assert implied_gpus("a3-highgpu-8g").count == 8 and implied_gpus("a3-megagpu-8g").priced_as == "H100-MEGA"
    assert implied_gpus("g2-standard-48").count == 4 and implied_gpus("g2-standard-8").count == 1
    assert implied_gpus("p4d.24xlarge").model == "A100" and not implied_gpus("p4d.24xlarge").billed_apart
    assert implied_gpus("m5.large") is None and implied_gpus("n1-standard-4") is None
    assert cpu_family("Standard_D4ads_v5") == "Dadsv5" and cpu_family("Standard_E16-4ds_v5") == "Edsv5"
    assert cpu_family("Standard_F4") == "F" and cpu_family("m5.2xlarge") == "m5"
    assert cpu_family("n2-standard-8") == "n2" and cpu_family("cpu_4x_generalx") is None
