"""One store contract, run on SQLite and on the real PostgreSQL that .ci/run starts."""

import threading
from datetime import timedelta

import pytest

from scheduler.store import schema as db
from scheduler.core.clock import FrozenClock
from scheduler.core.errors import CatalogTooNew, NotFound
from scheduler.core.runs import RunRecord, new_run_id
from scheduler.core.specs import parse_spec
from scheduler.store.store import Store

SHAPE = {"kind": "Shape", "name": "cpu", "vcpus": 2, "memory_gib": 4, "price_per_hour": 0.1, "capacity": 2}
JOB = {"kind": "Job", "name": "train", "artifact": "/x/train.py", "artifact_hash": "sha256:ab"}


@pytest.fixture
def clock():
    return FrozenClock()


@pytest.fixture
def store(catalog_url, clock):
    s = Store.open(catalog_url, clock)
    yield s
    s.close()


def test_apply_is_an_upsert_with_outcomes(store):
    shape, job = parse_spec(SHAPE), parse_spec(JOB)
    assert store.apply([shape, job]) == ["created", "created"]
    assert store.apply([shape]) == ["unchanged"]
    bigger = parse_spec({**SHAPE, "vcpus": 4})
    assert store.apply([bigger]) == ["updated"]
    assert store.get("Shape", "cpu").vcpus == 4
    assert [s.name for s in store.list("Job")] == ["train"]
    assert store.delete("Job", "train") and store.get("Job", "train") is None
    with pytest.raises(NotFound, match="job 'train' is not in the catalog"):
        store.require("Job", "train")


def test_apply_is_all_or_nothing(store, monkeypatch):
    from scheduler.store import store as store_module

    store.apply([parse_spec(SHAPE)])
    before = store.catalog_version()
    real = store_module.spec_to_doc

    def fail_on_second(spec):
        if spec.name == "boom":
            raise RuntimeError("disk full")
        return real(spec)

    monkeypatch.setattr(store_module, "spec_to_doc", fail_on_second)
    with pytest.raises(RuntimeError):
        store.apply([parse_spec({**SHAPE, "name": "other"}), parse_spec({**SHAPE, "name": "boom"})])
    assert store.names("Shape") == ["cpu"] and store.catalog_version() == before


def make_run(store, job="train", state="QUEUED", **kw):
    run = RunRecord(id=new_run_id(), job=job, state=state, queued_at=store.clock.now(), labels={"team": "ml"}, **kw)
    return store.create_run(run)


def test_run_record_round_trip_keeps_every_field(store, clock):
    run = make_run(store, spec={"name": "train"}, handle={"pid": 1})
    got = store.get_run(run.id)
    assert got.public() == run.public()
    assert got.queued_at.tzinfo is not None and got.handle == {"pid": 1} and got.labels == {"team": "ml"}
    assert set(got.public()) == {
        "id", "job", "pipeline", "pipeline_run", "step", "state", "reason", "shape", "backend", "queued_at",
        "started_at", "ended_at", "duration_s", "exit_code", "cost_usd", "saved_usd", "cache_hit", "reused_from",
        "cpu_util_avg", "mem_peak_bytes", "gpu_util_avg", "artifacts_dir",
        "market", "attempts", "preemptions", "lost_s",
    }
    store.update_run(run.id, mem_peak_bytes=40 * 2**30, cost_usd=0.1234567891)
    got = store.get_run(run.id)
    assert got.mem_peak_bytes == 40 * 2**30 and got.cost_usd == 0.1234567891  # unrounded


def test_compare_and_set_moves(store):
    run = make_run(store)
    assert store.update_run(run.id, expect=["QUEUED"], state="CANCELED")
    assert not store.update_run(run.id, expect=["QUEUED"], state="STARTING")
    states = [e["state"] for e in store.events(run.id)]
    assert states == ["QUEUED", "CANCELED"]


def test_claim_slot_respects_capacity_under_contention(store):
    runs = [make_run(store) for _ in range(6)]
    results = []

    def claim(run):
        results.append(store.claim_slot(run.id, "cpu", 2, backend="local"))

    threads = [threading.Thread(target=claim, args=(r,)) for r in runs]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(results) == [False] * 4 + [True] * 2
    assert store.in_use_by_shape() == {"cpu": 2}
    assert not store.claim_slot(runs[0].id, "other", 5)  # already STARTING: cannot be claimed twice


def test_duration_history_is_per_shape_median(store, clock):
    for shape, seconds in [("a", 10), ("a", 30), ("a", 20), ("b", 5)]:
        clock.advance(1)
        make_run(store, state="SUCCEEDED", shape=shape, duration_s=seconds, ended_at=clock.now())
    make_run(store, state="FAILED", shape="b", duration_s=500, ended_at=clock.now())
    assert store.duration_history("train") == {"a": (20, 3), "b": (5, 1)}


def test_list_runs_filters(store, clock):
    old = make_run(store, state="SUCCEEDED")
    clock.advance(3600)
    new = make_run(store, job="eval", state="FAILED")
    assert [r.id for r in store.list_runs()] == [new.id, old.id]
    assert [r.id for r in store.list_runs(job="train")] == [old.id]
    assert [r.id for r in store.list_runs(state="FAILED")] == [new.id]
    assert [r.id for r in store.list_runs(since=clock.now() - timedelta(minutes=5))] == [new.id]


def test_the_queue_is_read_oldest_first_a_page_at_a_time(store, clock):
    queued = []
    for i in range(7):  # pairs queued in the same instant: the id breaks the tie, nothing is skipped
        queued.append(make_run(store))
        if i % 2:
            clock.advance(1)
    make_run(store, state="RUNNING")
    expected = [r.id for r in sorted(queued, key=lambda r: (r.queued_at, r.id))]
    assert [r.id for r in store.queued_oldest_first(page=2, limit=100)] == expected
    assert [r.id for r in store.queued_oldest_first(page=3, limit=5)] == expected[:5]
    pages = store.queued_oldest_first(page=2)
    first = next(pages)
    assert store.update_run(expected[3], expect=["QUEUED"], state="STARTING")  # started while the round reads on
    assert [first.id, *(r.id for r in pages)] == [*expected[:3], *expected[4:]]


def test_a_newer_catalog_is_refused(catalog_url, clock):
    Store.open(catalog_url, clock).close()
    engine = db.make_engine(catalog_url)
    with engine.begin() as conn:
        conn.execute(db.meta.update().where(db.meta.c.key == "schema_version").values(value="99"))
    engine.dispose()
    with pytest.raises(CatalogTooNew) as refused:
        Store.open(catalog_url, clock)
    message = str(refused.value)
    assert f"has schema version 99, newer than this costwise's schema version {db.SCHEMA_VERSION}" in message
    assert "upgrade costwise" in message and "migrate" not in message


def test_an_older_catalog_gets_missing_columns(catalog_url, clock):
    Store.open(catalog_url, clock).close()
    engine = db.make_engine(catalog_url)
    with engine.begin() as conn:  # simulate a catalog written before `gpu_util_avg` existed
        conn.exec_driver_sql("ALTER TABLE runs DROP COLUMN gpu_util_avg")
        conn.execute(db.meta.update().where(db.meta.c.key == "schema_version").values(value="0"))
    engine.dispose()
    store = Store.open(catalog_url, clock)
    run = make_run(store, gpu_util_avg=0.5)
    assert store.get_run(run.id).gpu_util_avg == 0.5
    store.close()


def test_a_catalog_at_todays_version_still_gets_missing_columns(catalog_url, clock):
    Store.open(catalog_url, clock).close()
    engine = db.make_engine(catalog_url)
    with engine.begin() as conn:  # stamped with today's version, yet a column is missing
        conn.exec_driver_sql("ALTER TABLE runs DROP COLUMN gpu_util_avg")
    engine.dispose()
    store = Store.open(catalog_url, clock)
    run = make_run(store, gpu_util_avg=0.25)
    assert store.get_run(run.id).gpu_util_avg == 0.25
    store.close()
