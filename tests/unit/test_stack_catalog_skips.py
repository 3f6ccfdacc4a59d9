"""The stack program says which rows of its price catalog yielded no shape, by reason."""

from __future__ import annotations

import pulumi

from tests.unit.test_stack_program import run_program  # noqa: F401  (the fixture)

CATALOG = """InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region,AvailabilityZone
m5.large,,,2,8,0.096,,us-east-1,us-east-1a
m5.xlarge,,,4,16,0,,us-east-1,us-east-1a
m5.xlarge,,,4,16,,,us-east-1,us-east-1b
"""


def test_the_catalogs_skip_counts_are_logged(run_program, tmp_path, monkeypatch):  # noqa: F811
    prices = tmp_path / "prices.csv"
    prices.write_text(CATALOG)
    said: list[str] = []
    monkeypatch.setattr(pulumi.log, "info", lambda message, *a, **k: said.append(message))
    mocks = run_program({"backends": ["kubernetes"], "shapes": ["m5.*"], "prices": str(prices),
                         "image": "registry.example.com/x:1"})
    assert set(mocks.of_type("ComputeShape")) == {"m5.large"}
    line = next(m for m in said if "rows skipped by reason" in m)
    assert str(prices) in line and line.endswith("no_price 2")  # a zero price and an empty one
