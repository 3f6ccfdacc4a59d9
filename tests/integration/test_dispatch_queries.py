"""What a dispatch round reads from the store (store/dispatch_queries.py) and the fleet's priors cached
from it (runtime/round_inputs.py), on SQLite and on the real PostgreSQL that .ci/run starts."""

from datetime import timedelta

import pytest

from scheduler.core.clock import FrozenClock
from scheduler.core.placement import ShapeIndex
from scheduler.core.runs import FAILED, QUEUED, RUNNING, STARTING, SUCCEEDED, RunRecord, new_run_id
from scheduler.core.specs import ShapeSpec, parse_spec
from scheduler.core.waits import LiveRun
from scheduler.runtime.round_inputs import FLEET_PRIORS_TTL_S, FleetPriorsCache
from scheduler.store import dispatch_queries as q
from scheduler.store.store import Store


@pytest.fixture
def store(catalog_url):
    s = Store.open(catalog_url, FrozenClock())
    yield s
    s.close()


def add(store: Store, job: str, state: str, shape: str | None = None, **kw) -> RunRecord:
    return store.create_run(RunRecord(id=new_run_id(), job=job, state=state, shape=shape,
                                      queued_at=store.clock.now(), **kw))


def test_live_runs_by_job_and_of_full_shapes(store):
    t0 = store.clock.now()
    a = add(store, "train", RUNNING, "cheap", started_at=t0, placement={"reason": "x", "expected_duration_s": 90.0})
    b = add(store, "train", STARTING, "cheap", placement={"reason": "x"})
    add(store, "eval", RUNNING, "dear", started_at=t0)
    add(store, "eval", SUCCEEDED, "dear", duration_s=5.0, ended_at=t0)
    add(store, "eval", QUEUED)
    by_job = q.live_by_job(store)
    assert by_job == {"train": {"cheap": 2}, "eval": {"dear": 1}}
    assert q.in_use(by_job) == store.in_use_by_shape() == {"cheap": 2, "dear": 1}
    live = sorted(q.live_runs(store, ["cheap"]), key=lambda r: r.started_at is None)
    assert live == [LiveRun(a.id, "train", "cheap", t0, 90.0), LiveRun(b.id, "train", "cheap", None, None)]
    assert q.live_runs(store, []) == []


def test_fleet_histories_read_each_jobs_history_as_the_store_does(store, monkeypatch):
    monkeypatch.setattr(q, "HISTORY_RUNS", 3)
    t0 = store.clock.now()
    for i, (shape, seconds) in enumerate([("cheap", 100.0), ("dear", 40.0), ("cheap", 120.0), ("dear", 50.0)]):
        add(store, "train", SUCCEEDED, shape, duration_s=seconds, ended_at=t0 + timedelta(seconds=i))
    add(store, "train", FAILED, "dear", duration_s=1.0, ended_at=t0 + timedelta(seconds=9))
    add(store, "solo", SUCCEEDED, "cheap", duration_s=7.0, ended_at=t0)
    # the last 3: dear 40, cheap 120, dear 50 (the oldest, cheap 100, is past HISTORY_RUNS)
    assert q.fleet_histories(store) == {"train": {"cheap": (120.0, 1), "dear": (45.0, 2)}}
    assert q.fleet_histories(store, min_shapes=1)["solo"] == {"cheap": (7.0, 1)}
    monkeypatch.setattr(q, "FLEET_RUNS", 1)  # the fleet's last successful run alone: one shape cannot tell
    assert q.fleet_histories(store) == {}


def gpu(name, gpu_type, price):
    return ShapeSpec(name=name, vcpus=8, memory_gib=32, gpus=1, gpu_type=gpu_type, price_per_hour=price, capacity=4)


def test_the_fleets_priors_come_from_the_jobs_that_can_tell_and_are_cached(store):
    index = ShapeIndex([gpu("m60", "M60", 1.0), gpu("t4", "T4", 1.5), gpu("a100", "A100", 4.0)])
    store.apply([parse_spec({"kind": "Job", "name": "train", "artifact": "/x/train.py", "artifact_hash": "sha256:ab",
                             "requirements": {"gpus": 1, "cpus": 1, "memory_gib": 1}})])
    cache = FleetPriorsCache(store, store.clock)
    assert cache.get(index).scaling is None  # no history: duration_model's defaults
    t0 = store.clock.now()
    for i, (shape, seconds) in enumerate([("m60", 3000.0), ("t4", 1500.0), ("a100", 500.0)] * 3):
        add(store, "train", SUCCEEDED, shape, duration_s=seconds, ended_at=t0 + timedelta(seconds=i))
    add(store, "gone", SUCCEEDED, "m60", duration_s=10.0, ended_at=t0)  # not declared: left out
    add(store, "gone", SUCCEEDED, "t4", duration_s=10.0, ended_at=t0)
    assert cache.get(index).scaling is None  # cached
    store.clock.advance(FLEET_PRIORS_TTL_S)
    priors = cache.get(index)
    assert priors.scaling > 0.7 and priors.slope > 0.7  # one job that scales steeply moves the fleet


def test_the_cached_priors_pool_jobs_by_their_declared_labels(store):
    index = ShapeIndex([gpu("m60", "M60", 1.0), gpu("t4", "T4", 1.5), gpu("a100", "A100", 4.0)])
    kinds = {"svc-a": "service", "svc-b": "service", "train-a": "training", "train-b": "training"}
    store.apply([parse_spec({"kind": "Job", "name": name, "artifact": "/x/j.py", "artifact_hash": "sha256:ab",
                             "labels": {"kind": kind}, "requirements": {"gpus": 1, "cpus": 1, "memory_gib": 1}})
                 for name, kind in kinds.items()])
    t0 = store.clock.now()
    for name, kind in kinds.items():
        speeds = [("m60", 3000.0), ("t4", 1500.0), ("a100", 500.0)] if kind == "training" else \
            [("m60", 3000.0), ("t4", 3000.0), ("a100", 3000.0)]
        for i, (shape, seconds) in enumerate(speeds * 4):
            add(store, name, SUCCEEDED, shape, duration_s=seconds, ended_at=t0 + timedelta(seconds=i))
    priors = FleetPriorsCache(store, store.clock).get(index)
    service, training = priors.scaling_for("new", {"kind": "service"}), priors.scaling_for("new", {"kind": "training"})
    assert service < priors.scaling < training  # a new service is not expected to gain what training jobs do
    assert priors.scaling_for("new", {"kind": "batch"}) == priors.scaling
