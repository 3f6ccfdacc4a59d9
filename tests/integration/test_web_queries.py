"""The web page's store queries on a real catalog (SQLite, and PostgreSQL where .ci/run starts it):
pages of runs walk the history once, newest first, filtered in SQL; spend per day and per label."""

from datetime import datetime, timedelta, timezone

import pytest

from scheduler.core.clock import FrozenClock
from scheduler.core.runs import RunRecord
from scheduler.store import web_queries
from scheduler.store.store import Store
from scheduler.store.web_queries import RunsFilter

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(catalog_url):
    s = Store.open(catalog_url, FrozenClock(T0 + timedelta(days=3)))
    yield s
    s.close()


def _seed(store, n=25):
    for i in range(n):
        queued = T0 + timedelta(hours=i * 2) if i != 7 else T0 + timedelta(hours=12)  # run 6 and 7 tie on queued_at
        store.create_run(RunRecord(
            id=f"r-{i:04d}", job="train" if i % 2 else "prep", state="SUCCEEDED" if i % 3 else "FAILED",
            pipeline="flow" if i % 5 == 0 else None, queued_at=queued, ended_at=queued + timedelta(minutes=30),
            cost_usd=1.0 + i, saved_usd=0.5 if i % 4 == 0 else 0.0,
            labels={"team": "ml" if i % 2 else "data"} if i != 3 else {},
        ))


def _walk(store, wanted, limit):
    seen, after = [], None
    while True:
        page = web_queries.runs_page(store, wanted, after, limit)
        assert len(page.runs) <= limit
        seen += [r.id for r in page.runs]
        if page.next is None:
            return seen
        after = page.next


def test_pages_of_runs_walk_the_history_once_newest_first(store):
    _seed(store)
    every = [r.id for r in store.list_runs()]
    assert _walk(store, RunsFilter(), 4) == every  # ties on queued_at are broken by id, nothing twice
    assert _walk(store, RunsFilter(), 100) == every
    assert _walk(store, RunsFilter(), 25) == every  # exactly one page: no empty next page


def test_filters_are_applied_in_the_query(store):
    _seed(store)
    assert _walk(store, RunsFilter(job="train"), 3) == [r.id for r in store.list_runs(job="train")]
    ml = _walk(store, RunsFilter(label=("team", "ml")), 5)
    assert ml and all(store.get_run(r).labels == {"team": "ml"} for r in ml) and len(ml) == 11  # odd runs but r-0003
    failed_flow = _walk(store, RunsFilter(pipeline="flow", state="FAILED"), 2)
    assert failed_flow == ["r-0015", "r-0000"]
    window = RunsFilter(since=T0 + timedelta(hours=10), until=T0 + timedelta(hours=20))
    assert _walk(store, window, 2) == ["r-0009", "r-0008", "r-0007", "r-0006", "r-0005"]
    assert _walk(store, RunsFilter(label=("team", "nobody")), 5) == []


def test_spend_per_day_and_per_label(store):
    _seed(store)
    days = web_queries.spend_by_day(store, T0)
    assert [d.day.isoformat() for d in days] == ["2025-03-01", "2025-03-02", "2025-03-03"]
    assert sum(d.runs for d in days) == 25
    assert sum(d.cost_usd for d in days) == pytest.approx(sum(1.0 + i for i in range(25)))
    assert days[0].runs == 12  # 0..11, and 7 (queued at 12:00) lands on the first day too
    by_team = {row.value: row for row in web_queries.spend_by_label(store, "team", T0)}
    assert set(by_team) == {"ml", "data", None}
    assert by_team[None].runs == 1 and by_team[None].cost_usd == pytest.approx(4.0)
    assert list(by_team) == ["data", "ml", None]  # dearest first: $169, $152, $4
    assert web_queries.spend_by_label(store, "team", T0 + timedelta(days=10)) == []


def test_latest_events_are_the_last_ones_oldest_first(store):
    _seed(store, 1)
    for i in range(5):
        store.update_run("r-0000", message=f"note {i}", reason=f"note {i}")
    events = web_queries.latest_events(store, "r-0000", limit=3)
    assert [e["message"] for e in events] == ["note 2", "note 3", "note 4"]
