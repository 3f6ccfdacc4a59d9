"""The web page's pure parts: the DAG layout, the chart's bars, and what its queries accept."""

from datetime import datetime, timezone

import pytest

from scheduler.core.errors import SpecError
from scheduler.daemon.web_models import RunsPageQuery, SpendQuery, cursor_text, parse_web_query
from scheduler.daemon.web_views import GAP_X, NODE_W, PAD, bars, layout_dag

NOW = datetime(2025, 3, 4, 12, 0, tzinfo=timezone.utc)


def test_steps_are_laid_out_in_columns_by_depth():
    order = ["prepare", "train", "evaluate", "report"]
    upstream = {"train": ["prepare"], "evaluate": ["prepare"], "report": ["train", "evaluate"]}
    dag = layout_dag(order, upstream, {"prepare": {"id": "r-1", "state": "SUCCEEDED"}})
    x = {n.name: n.x for n in dag.nodes}
    assert x == {"prepare": PAD, "train": PAD + NODE_W + GAP_X, "evaluate": PAD + NODE_W + GAP_X,
                 "report": PAD + 2 * (NODE_W + GAP_X)}
    y = {n.name: n.y for n in dag.nodes}
    assert y["train"] < y["evaluate"] and y["prepare"] == y["train"] == y["report"]
    assert sorted((e.source, e.target) for e in dag.edges) == [
        ("evaluate", "report"), ("prepare", "evaluate"), ("prepare", "train"), ("train", "report")]
    assert [n.run for n in dag.nodes if n.run] == [{"id": "r-1", "state": "SUCCEEDED"}]
    assert dag.width == PAD * 2 + 3 * NODE_W + 2 * GAP_X
    assert all(n.x + NODE_W <= dag.width and n.y <= dag.height for n in dag.nodes)


def test_a_lone_step_and_an_empty_pipeline():
    assert [(n.name, n.x) for n in layout_dag(["only"], {}, {}).nodes] == [("only", PAD)]
    assert layout_dag([], {}, {}).nodes == []


def test_bars_scale_to_the_largest_value_and_zero_is_a_line():
    found = bars([("a", 2.0), ("b", 0.0), ("c", 4.0)], width=300, height=100)
    assert [b.height for b in found] == [50.0, 1.0, 100.0]
    assert [b.y for b in found] == [50.0, 99.0, 0.0]
    assert found[1].x == pytest.approx(101.0) and bars([]) == []
    assert [b.height for b in bars([("a", 0.0)], height=10)] == [1.0]


def test_the_runs_query_turns_into_a_filter_and_a_cursor():
    q = parse_web_query(RunsPageQuery, "job=train&state=FAILED&label=team%3Dml&since=2h&pipeline=&before="
                                       "2025-03-04T10%3A00%3A00.5Z~r-ab12&limit=20", "runs page")
    wanted = q.filter(NOW)
    assert (wanted.job, wanted.state, wanted.label, wanted.pipeline) == ("train", "FAILED", ("team", "ml"), None)
    assert wanted.since == datetime(2025, 3, 4, 10, 0, tzinfo=timezone.utc)
    cursor = q.cursor()
    assert cursor.run_id == "r-ab12" and cursor_text(cursor) == "2025-03-04T10:00:00.500000Z~r-ab12"
    assert parse_web_query(RunsPageQuery, "", "runs page").cursor() is None


@pytest.mark.parametrize("query, field", [
    ("state=DONE", "state"), ("label=team", "label"), ("label=%3Dml", "label"), ("limit=0", "limit"),
    ("limit=5000", "limit"), ("job=a%20b", "job"), ("colour=red", "colour"), ("job=a&job=b", "job"),
    ("before=yesterday", "before"), ("before=2025-03-04T10%3A00%3A00~r%20x", "before"),
    ("before=2025-03-04T10%3A00%3A00~r-1", "before"),  # no time zone: not a cursor this page made
    ("since=soon", "since"),
])
def test_bad_queries_are_one_line_naming_the_field(query, field):
    with pytest.raises(SpecError) as refused:
        parsed = parse_web_query(RunsPageQuery, query, "runs page")
        parsed.filter(NOW), parsed.cursor()
    assert refused.value.field == field and "\n" not in str(refused.value)


def test_the_spend_query():
    assert parse_web_query(SpendQuery, "days=30&key=cost-center", "spend page").days == 30
    for bad in ("days=0", "days=400", "key=%24x", "days=1e9"):
        with pytest.raises(SpecError):
            parse_web_query(SpendQuery, bad, "spend page")
