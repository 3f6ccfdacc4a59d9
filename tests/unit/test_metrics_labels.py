"""COSTWISE_METRICS_LABELS: which run labels the cost-allocation series carry, refused in one line when bad."""

import pytest

from scheduler.core.errors import SpecError
from scheduler.reporting.metrics_labels import DEFAULT, AllocationLabel, allocation_labels


def test_default_is_team_only():
    assert allocation_labels(None) == allocation_labels("") == allocation_labels("  ") == DEFAULT
    assert DEFAULT == (AllocationLabel("team", "team"),)


def test_names_and_renamed_run_labels():
    assert allocation_labels(" team, project ,cost_center=cost-center") == (
        AllocationLabel("team", "team"), AllocationLabel("project", "project"),
        AllocationLabel("cost_center", "cost-center"))


@pytest.mark.parametrize("text, culprit", [
    ("team,cost-center", "'cost-center'"),  # not a Prometheus label name
    ("9lives", "'9lives'"),
    ("__team", "'__team'"),
    ("team,", "''"),
    ("job", "'job'"),  # Prometheus's own (the scrape target)
    ("shape", "'shape'"),  # the metrics already carry it
    ("team,team", "twice"),
    ("cc=bad key!", "'bad key!'"),
    (",".join(f"l{i}" for i in range(9)), "at most 8"),
])
def test_bad_settings_name_the_culprit(text, culprit):
    with pytest.raises(SpecError) as err:
        allocation_labels(text)
    message = str(err.value)
    assert "COSTWISE_METRICS_LABELS" in message and culprit in message and "\n" not in message
