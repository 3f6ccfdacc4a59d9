"""Tables never cut run ids or states: optional columns go first, the rest wrap; --wide shows all."""

import io

from rich.console import Console

from scheduler.core.runs import RunRecord
from scheduler.reporting.views import pipeline_runs_table, print_table, runs_table

REASON = "max runtime 1m reached after waiting for the large gpu shape behind three other runs of the same job"
RUNS = [
    RunRecord(id="r-0123456789", job="train-a-very-long-job-name", step="featurize-everything", state="TIMED_OUT",
              shape="gpu-a10-large-spot", reason=REASON, cost_usd=1.2345, duration_s=61.0),
    RunRecord(id="r-abcdefabcd", job="j", state="SUCCEEDED"),
]


def render(table, width: int, wide: bool = False) -> str:
    out = Console(width=width, file=io.StringIO(), color_system=None)
    print_table(out, table, wide)
    return out.file.getvalue()


def test_a_narrow_terminal_keeps_run_ids_and_states_whole():
    for width in (60, 80):
        text = render(runs_table(RUNS), width)
        assert all(len(line) <= width for line in text.splitlines())
        for run in RUNS:
            assert f" {run.id} " in text and f" {run.state} " in text, text
    narrow = render(runs_table(RUNS), 60)
    assert "mem peak" not in narrow and "cpu" not in narrow  # optional columns went first
    assert "job" in narrow and "cost" in narrow


def test_a_wide_terminal_drops_nothing():
    text = render(runs_table(RUNS), 240)
    for header in ("step", "duration", "saved", "cpu", "mem peak", "reason"):
        assert header in text


def test_wide_shows_every_column_unshortened_whatever_the_terminal():
    text = render(runs_table(RUNS, wide=True), 60, wide=True)
    assert REASON in text and "train-a-very-long-job-name" in text and "gpu-a10-large-spot" in text
    assert "mem peak" in text
    assert REASON not in render(runs_table(RUNS), 200)  # without --wide a reason is cut at 60 characters


def test_pipeline_runs_keep_ids_and_states():
    records = [{"id": "p-0123456789", "pipeline": "retrain-the-very-long-pipeline", "state": "SUCCEEDED",
                "started_at": "2026-01-01T00:00:00+00:00", "cost_usd": 0.5, "saved_usd": 0.25, "reason": REASON}]
    text = render(pipeline_runs_table(records), 60)
    assert " p-0123456789 " in text and " SUCCEEDED " in text
    assert REASON in render(pipeline_runs_table(records, wide=True), 60, wide=True)


def test_a_reason_with_brackets_is_shown_as_written():
    from io import StringIO

    from rich.console import Console

    from scheduler.core.runs import FAILED, RunRecord
    from scheduler.reporting.views import runs_table

    record = RunRecord(id="r-0123456789", job="train", state=FAILED,
                       reason="launch failed: the docker backend needs costwise[docker]")
    out = StringIO()
    Console(file=out, width=200).print(runs_table([record], wide=True))
    assert "costwise[docker]" in out.getvalue()
