"""Cost reports over a run history written the way the engine and pipeline runner write it."""

from __future__ import annotations

import json
import math
import random
import re
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from scheduler.reporting import report
from scheduler.core.clock import FrozenClock
from scheduler.core.errors import SpecError
from scheduler.reporting.focus import CUSTOM, MANDATORY
from scheduler.core.runs import RunRecord
from scheduler.core.specs import JobSpec, ShapeSpec
from scheduler.store import report_queries
from scheduler.store.store import Store

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
GIB = 2**30
SHAPES = [
    ShapeSpec(name="small", vcpus=2, memory_gib=4, price_per_hour=0.10, capacity=4),
    ShapeSpec(name="big", vcpus=16, memory_gib=64, price_per_hour=1.60, capacity=2),
    ShapeSpec(name="highmem", vcpus=2, memory_gib=64, price_per_hour=0.90, capacity=2),
    ShapeSpec(name="gpu-a10", vcpus=8, memory_gib=32, gpus=1, gpu_type="A10", price_per_hour=1.00, capacity=1),
    ShapeSpec(name="gpu-a100", vcpus=8, memory_gib=32, gpus=1, gpu_type="A100", price_per_hour=3.00, capacity=1),
]


@pytest.fixture
def store(catalog_url):
    s = Store.open(catalog_url, FrozenClock(T0 + timedelta(days=30)))
    jobs = [
        JobSpec(name="etl", artifact="etl.py", requirements={"cpus": 8, "memory_gib": 8}, labels={"team": "data"}),
        JobSpec(name="train", artifact="t.py", requirements={"cpus": 2, "memory_gib": 2, "gpus": 1, "gpu_type": "A10"},
                labels={"team": "ml", "cost-center": "cc1"}),
        JobSpec(name="busy", artifact="b.py", requirements={"cpus": 16, "memory_gib": 32}, labels={"team": "ml"}),
        JobSpec(name="fat", artifact="f.py", requirements={"cpus": 1, "memory_gib": 40}, labels={}),
    ]
    s.apply(SHAPES + jobs)
    yield s
    s.close()


def add_run(store, i, job, shape, minutes, state="SUCCEEDED", cpu=0.5, mem_gib=1.0, gpu=None, labels=None,
            day=0, **extra):
    price = next(s.price_per_hour for s in SHAPES if s.name == shape) if shape else None
    start = T0 + timedelta(days=day, minutes=i)
    duration = minutes * 60.0
    record = RunRecord(
        id=f"r-{i:06d}", job=job, state=state, shape=shape, backend="local" if shape else None,
        queued_at=start - timedelta(seconds=3), started_at=start, ended_at=start + timedelta(seconds=duration),
        duration_s=duration, cost_usd=(price or 0.0) * duration / 3600.0, price_per_hour=price,
        cpu_util_avg=cpu, mem_peak_bytes=int(mem_gib * GIB) if mem_gib is not None else None, gpu_util_avg=gpu,
        labels=labels if labels is not None else {}, **extra,
    )
    return store.create_run(record)


def history(store, n=120, seed=3):
    rng = random.Random(seed)
    for i in range(n):
        kind = rng.choice(["etl", "train", "busy", "fat", "cached"])
        day = rng.randrange(0, 20)
        if kind == "etl":
            add_run(store, i, "etl", "big", rng.uniform(5, 90), cpu=rng.uniform(0.03, 0.1), mem_gib=rng.uniform(0.5, 2),
                    labels={"team": "data"}, day=day, state=rng.choice(["SUCCEEDED", "SUCCEEDED", "FAILED"]))
        elif kind == "train":
            add_run(store, i, "train", "gpu-a10", rng.uniform(10, 60), cpu=0.2, mem_gib=3, gpu=rng.uniform(0.5, 0.9),
                    labels={"team": "ml", "cost-center": "cc1"}, day=day, pipeline="retrain", step="train",
                    extra={"cache": {"result": "miss", "reason": "args changed"}})
        elif kind == "busy":
            add_run(store, i, "busy", "big", rng.uniform(1, 30), cpu=rng.uniform(0.8, 0.95), mem_gib=50,
                    labels={"team": "ml"}, day=day, state=rng.choice(["SUCCEEDED", "TIMED_OUT"]))
        elif kind == "fat":
            add_run(store, i, "fat", "highmem", rng.uniform(1, 30), cpu=0.05, mem_gib=45, labels={}, day=day)
        else:
            add_run(store, i, "train", "gpu-a10", 0.0, state="CACHED", cpu=None, mem_gib=None, labels={"team": "ml"},
                    day=day, pipeline="retrain", step="train", cache_hit=True, saved_usd=rng.uniform(0.1, 1.0),
                    extra={"cache": {"result": "hit"}})
    # live runs have no cost yet and are not in a report
    store.create_run(RunRecord(id="r-live", job="etl", state="RUNNING", shape="big", queued_at=T0, started_at=T0))
    store.create_run(RunRecord(id="r-queued", job="etl", state="QUEUED", queued_at=T0))


def finished(store, since=None, until=None):
    runs = [r for r in store.list_runs() if r.finished]
    return [r for r in runs if (since is None or r.ended_at >= since) and (until is None or r.ended_at < until)]


def test_totals_reconcile_with_run_records_to_the_cent(store):
    history(store)
    rep = report.build_report(store, group_by="team,job")
    runs = finished(store)
    expected = math.fsum(r.cost_usd for r in runs)
    assert rep.totals["runs"] == len(runs) == 120
    assert rep.totals["cost_usd"] == pytest.approx(expected, abs=1e-9)
    assert round(rep.totals["cost_usd"], 2) == round(expected, 2)
    assert rep.totals["saved_usd"] == pytest.approx(math.fsum(r.saved_usd for r in runs), abs=1e-9)
    for table in (rep.groups, rep.daily_by_team, rep.by_shape):
        assert table["cost_usd"].sum() == pytest.approx(expected, abs=1e-9)
    assert rep.groups["runs"].sum() == len(runs)
    none_team = rep.groups[rep.groups["team"] == "(none)"]
    assert set(none_team["job"]) == {"fat"}
    assert none_team["cost_usd"].sum() == pytest.approx(math.fsum(r.cost_usd for r in runs if r.job == "fat"))


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)  # rowid slices: the SQLite columnar reader's
def test_a_big_sqlite_history_is_read_in_parallel_slices_with_the_same_result(store, monkeypatch):
    assert store.dialect == "sqlite"
    history(store)
    serial = report.load_runs(store, labels=["team"], detail=True)
    monkeypatch.setattr(report_queries, "PARALLEL_READ_ROWS", 0)
    monkeypatch.setattr("os.cpu_count", lambda: 3)
    slices = report_queries.rowid_ranges(store)
    assert len(slices) == 3 and slices[0][0] == 1 and all(a[1] + 1 == b[0] for a, b in zip(slices, slices[1:]))
    query = report_queries.runs_query("sqlite", labels=["team"], detail=True)
    assert report_queries.read_columnar(store, query, [c.name for c in query.selected_columns]) is not None  # no fallback
    parallel = report.load_runs(store, labels=["team"], detail=True)
    pd.testing.assert_frame_equal(serial, parallel)


def test_period_is_by_end_time_half_open(store):
    history(store)
    since, until = T0 + timedelta(days=5), T0 + timedelta(days=10)
    rep = report.build_report(store, since=since, until=until, group_by="shape")
    runs = finished(store, since, until)
    assert 0 < len(runs) < 120
    assert rep.totals["runs"] == len(runs)
    assert rep.totals["cost_usd"] == pytest.approx(math.fsum(r.cost_usd for r in runs), abs=1e-9)
    per_shape = {}
    for r in runs:
        per_shape[r.shape or "(none)"] = per_shape.get(r.shape or "(none)", 0.0) + r.cost_usd
    got = dict(zip(rep.groups["shape"], rep.groups["cost_usd"]))
    assert got == pytest.approx(per_shape)


def test_idle_spend_uses_gpu_utilization_when_there_is_one(store):
    add_run(store, 1, "etl", "big", 60, cpu=0.25)  # $1.60, 75% idle
    add_run(store, 2, "train", "gpu-a10", 60, cpu=0.05, gpu=0.9)  # $1.00, 10% idle (the GPU is what's paid for)
    add_run(store, 3, "etl", "big", 30, cpu=None, mem_gib=None)  # not measured: no idle figure
    rep = report.build_report(store, group_by="job")
    assert rep.totals["idle_usd"] == pytest.approx(1.60 * 0.75 + 1.00 * 0.1)
    assert rep.totals["utilization"] == pytest.approx(1 - (1.2 + 0.1) / 2.6)
    etl = rep.groups.set_index("job").loc["etl"]
    assert etl["cost_usd"] == pytest.approx(1.60 * 1.5)
    assert etl["idle_usd"] == pytest.approx(1.2)
    assert etl["utilization"] == pytest.approx(0.25)


def test_group_by_any_label_and_time_buckets(store):
    history(store)
    rep = report.build_report(store, group_by="cost-center,week")
    assert set(rep.groups["cost-center"]) == {"cc1", "(none)"}
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", w) for w in rep.groups["week"])
    assert all(datetime.fromisoformat(w).weekday() == 0 for w in rep.groups["week"])
    monthly = report.build_report(store, group_by="month,state")
    assert set(monthly.groups["month"]) == {"2026-03"}
    assert monthly.groups["cost_usd"].sum() == pytest.approx(rep.totals["cost_usd"])


@pytest.mark.parametrize("value, fragment", [
    ("taem", "'taem' is neither a run field"), ("team,,", None), ("te am", "'te am' is not a field"),
    ("team,team", "repeats"), (",", "names no key"),
])
def test_bad_group_by_names_the_value(store, value, fragment):
    history(store, n=10)
    if fragment is None:
        assert report.parse_group_by(value) == ("team",)
        return
    with pytest.raises(SpecError, match=re.escape(fragment)) as info:
        report.build_report(store, group_by=value)
    assert info.value.field == "group_by"


def test_rightsizing_suggests_the_cheapest_fitting_shape_and_its_savings(store):
    history(store)
    rep = report.build_report(store)
    advice = rep.rightsizing.set_index("job")
    # etl uses <10% of 16 vCPUs and <2 GiB of 64: 'small' (2 vCPUs, 4 GiB) fits with headroom
    etl = advice.loc["etl"]
    runs = [r for r in finished(store) if r.job == "etl"]
    hours = sum(r.duration_s for r in runs) / 3600
    assert etl["shape"] == "big" and etl["suggested_shape"] == "small"
    assert etl["savings_usd"] == pytest.approx(sum(r.cost_usd for r in runs) - hours * 0.10)
    # fat uses 5% CPU but 45 GiB of its 64: nothing cheaper holds 45 GiB x 1.25
    assert "fat" not in advice.index
    # busy uses >80% of its CPU and memory: no advice
    assert "busy" not in advice.index
    # train uses 20% CPU of an A10 shape: the GPU requirement stays, and nothing cheaper has an A10
    assert "train" not in advice.index
    assert rep.totals["rightsizing_savings_usd"] == pytest.approx(rep.rightsizing["savings_usd"].sum())


def test_rightsizing_keeps_the_gpu_type_it_needs(store):
    store.apply([JobSpec(name="train", artifact="t.py", requirements={"cpus": 1, "memory_gib": 1, "gpus": 1,
                                                                      "gpu_type": "A100"})])
    for i in range(5):
        add_run(store, i, "train", "gpu-a100", 30, cpu=0.05, mem_gib=2, gpu=0.1)
    assert report.build_report(store).rightsizing.empty  # low CPU, but only the A100 shape has its GPU
    store.apply([JobSpec(name="train", artifact="t.py", requirements={"cpus": 1, "memory_gib": 1, "gpus": 1})])
    advice = report.build_report(store).rightsizing
    assert list(advice["suggested_shape"]) == ["gpu-a10"]
    assert advice["savings_usd"].iloc[0] == pytest.approx(5 * 0.5 * (3.0 - 1.0))


def test_cache_savings_and_hit_ratio(store):
    history(store)
    rep = report.build_report(store)
    runs = finished(store)
    hits = [r for r in runs if r.state == "CACHED"]
    lookups = [r for r in runs if r.step]
    assert rep.totals["cache_hits"] == len(hits) > 0
    assert rep.totals["cache_lookups"] == len(lookups)
    row = rep.cache.iloc[0]
    assert (row["pipeline"], row["step"], row["hits"]) == ("retrain", "train", len(hits))
    assert row["saved_usd"] == pytest.approx(sum(r.saved_usd for r in hits))


def test_focus_export_has_every_mandatory_column_with_its_type(store, tmp_path):
    history(store)
    path = tmp_path / "focus.csv"
    summary = report.write_report(store, "focus", path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert len(MANDATORY) == 21
    assert set(MANDATORY) <= set(frame.columns)
    focus_names = set(MANDATORY) | {"ChargeFrequency", "ConsumedQuantity", "ConsumedUnit", "ContractedUnitPrice",
                                    "ListUnitPrice", "PricingCategory", "ResourceId", "ResourceName", "ResourceType",
                                    "SkuId", "SkuPriceId", "Tags", "InvoiceId", "ServiceSubcategory"}
    custom = [c for c in frame.columns if c not in focus_names]
    assert custom and all(c.startswith("x_") for c in custom)
    assert set(CUSTOM) <= set(custom)
    iso = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
    for name, (kind, nullable) in MANDATORY.items():
        values = frame[name]
        if not nullable:
            assert (values != "").all(), name
        present = values[values != ""]
        if kind == "Decimal":
            assert pd.to_numeric(present).notna().all(), name
        elif kind == "DateTime":
            assert present.str.match(iso).all(), name
    assert frame["ChargeClass"].eq("").all()
    assert set(frame["ChargeCategory"]) == {"Usage"}
    assert set(frame["ServiceCategory"]) == {"AI and Machine Learning"}
    start = pd.to_datetime(frame["ChargePeriodStart"])
    end = pd.to_datetime(frame["ChargePeriodEnd"])
    assert (start <= end).all()
    assert (pd.to_datetime(frame["BillingPeriodStart"]) <= start).all()
    assert (end <= pd.to_datetime(frame["BillingPeriodEnd"])).all()
    runs = {r.id: r for r in finished(store)}
    assert len(frame) == summary["runs"] == len(runs)
    assert set(frame["ResourceId"]) == set(runs)
    billed = pd.to_numeric(frame["BilledCost"])
    assert round(billed.sum(), 2) == round(math.fsum(r.cost_usd for r in runs.values()), 2)
    assert billed.sum() == pytest.approx(math.fsum(r.cost_usd for r in runs.values()), abs=1e-9)
    row = frame.set_index("x_RunId").loc["r-000001" if "r-000001" in runs else next(iter(runs))]
    rec = runs[row.name]
    assert float(row["BilledCost"]) == pytest.approx(rec.cost_usd)
    assert json.loads(row["Tags"]) == rec.labels
    cached = frame[frame["x_CacheHit"] == "true"]
    assert len(cached) and (pd.to_numeric(cached["x_SavedCost"]) > 0).all()
    assert (pd.to_numeric(cached["PricingQuantity"]) == 0).all()


def add_span(store, i, start, hours, shape="big", cpu=0.25, **extra):
    """A run of `hours` on `shape` from `start` (a datetime), with its cost at the shape's price."""
    price = next(s.price_per_hour for s in SHAPES if s.name == shape)
    return store.create_run(RunRecord(
        id=f"r-{i:06d}", job="etl", state="SUCCEEDED", shape=shape, backend="local", queued_at=start,
        started_at=start, ended_at=start + timedelta(hours=hours), duration_s=hours * 3600.0,
        cost_usd=price * hours, price_per_hour=price, cpu_util_avg=cpu, mem_peak_bytes=GIB, **extra))


@pytest.mark.parametrize("period, parts", [("month", 2), ("day", 4)])
def test_focus_rows_lie_in_one_billing_period_and_add_up_to_the_run(store, tmp_path, period, parts):
    # 60 h from 18:00 on the last day of March: 6 h in March, 54 h in April (2 more midnights)
    crossing = add_span(store, 1, datetime(2026, 3, 31, 18, tzinfo=timezone.utc), 60, cpu=0.25, saved_usd=0.0)
    inside = add_span(store, 2, datetime(2026, 3, 10, 1, tzinfo=timezone.utc), 2)
    path = tmp_path / "focus.csv"
    summary = report.write_report(store, "focus", path, charge_period=period)
    frame = pd.read_csv(path, keep_default_na=False)
    assert (summary["runs"], summary["rows"], len(frame)) == (2, parts + 1, parts + 1)
    rows = frame[frame["x_RunId"] == crossing.id]
    assert len(rows) == parts
    start, end = pd.to_datetime(rows["ChargePeriodStart"]), pd.to_datetime(rows["ChargePeriodEnd"])
    assert (pd.to_datetime(rows["BillingPeriodStart"]) <= start).all()
    assert (end <= pd.to_datetime(rows["BillingPeriodEnd"])).all()
    assert start.iloc[0] == pd.Timestamp("2026-03-31T18:00:00Z") and end.iloc[-1] == pd.Timestamp("2026-04-03T06:00:00Z")
    assert (start.iloc[1:].to_numpy() == end.iloc[:-1].to_numpy()).all()  # back to back, no gap or overlap
    hours = (end - start).dt.total_seconds() / 3600
    assert rows["BilledCost"].to_numpy() == pytest.approx(1.60 * hours.to_numpy())
    assert rows["BilledCost"].sum() == pytest.approx(crossing.cost_usd, abs=1e-12)
    assert rows["PricingQuantity"].sum() == pytest.approx(60.0)
    assert rows["x_IdleCost"].sum() == pytest.approx(crossing.cost_usd * 0.75)
    assert rows["x_DurationSeconds"].sum() == pytest.approx(60 * 3600.0)
    assert set(rows["x_CpuUtilization"]) == {0.25}
    if period == "month":
        assert list(rows["BilledCost"]) == pytest.approx([1.60 * 6, 1.60 * 54])
    assert frame.loc[frame["x_RunId"] == inside.id, "BilledCost"].item() == pytest.approx(inside.cost_usd)


def test_a_bad_charge_period_is_refused_naming_it(store, tmp_path):
    with pytest.raises(SpecError, match="--charge-period 'week'"):
        report.write_report(store, "focus", tmp_path / "f.csv", charge_period="week")
    assert not (tmp_path / "f.csv").exists()


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet", "html"])
def test_every_format_writes_a_file_whose_totals_reconcile(store, tmp_path, fmt):
    history(store)
    path = tmp_path / f"report.{fmt}"
    summary = report.write_report(store, fmt, path, group_by="team")
    expected = math.fsum(r.cost_usd for r in finished(store))
    assert summary["cost_usd"] == pytest.approx(expected, abs=1e-9)
    if fmt == "csv":
        frame = pd.read_csv(path)
        assert list(frame.columns[:2]) == ["team", "runs"]
        assert frame["cost_usd"].sum() == pytest.approx(expected, abs=1e-9)
    elif fmt == "json":
        data = json.loads(path.read_text())
        assert data["totals"]["cost_usd"] == pytest.approx(expected, abs=1e-9)
        assert {"groups", "daily_by_team", "by_shape", "rightsizing", "cache", "top_jobs"} <= set(data)
    elif fmt == "parquet":
        frame = pd.read_parquet(path)
        assert len(frame) == 120 and frame["cost_usd"].sum() == pytest.approx(expected, abs=1e-9)
        assert {"id", "team", "idle_usd", "utilization"} <= set(frame.columns)
    else:
        html = path.read_text()
        for chart in ("chart-daily", "chart-shapes", "chart-utilization"):
            svg = html.split(f'id="{chart}"', 1)[1].split("</svg>", 1)[0]
            assert svg.count('class="bar"') > 0, chart
        assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_empty_history_still_reports(store, tmp_path):
    for fmt in report.FORMATS:
        summary = report.write_report(store, fmt, tmp_path / f"empty.{fmt}")
        assert summary["runs"] == 0 and summary["cost_usd"] == 0
    assert "no runs in the period" in (tmp_path / "empty.html").read_text()


def test_bad_format_and_out_are_refused(store, tmp_path):
    with pytest.raises(SpecError, match="--format 'xlsx'"):
        report.write_report(store, "xlsx", tmp_path / "r.xlsx")
    with pytest.raises(SpecError, match="is a directory"):
        report.write_report(store, "csv", tmp_path)


def test_columnar_and_row_readers_agree(settings, monkeypatch):
    store = Store.open(settings.db_url, FrozenClock(T0 + timedelta(days=30)))  # the columnar path is SQLite's
    store.apply(SHAPES)
    history(store)
    columnar = report.load_runs(store, labels=["team", "project"], detail=True)
    monkeypatch.setattr(report_queries, "read_columnar", lambda *args: None)
    rows = report.load_runs(store, labels=["team", "project"], detail=True)
    assert list(columnar.columns) == list(rows.columns) and columnar.dtypes.equals(rows.dtypes)
    for name in columnar.columns:
        a, b = columnar[name], rows[name]
        if name in ("ended_at", "started_at"):  # julianday arithmetic of two SQLite builds: < 2 ms apart
            assert ((a - b).abs() < pd.Timedelta(milliseconds=2)).all()
        elif isinstance(a.dtype, pd.CategoricalDtype):
            assert a.astype(object).equals(b.astype(object)), name
        else:
            assert a.equals(b), name
    assert len(columnar) > 100
    store.close()


def test_the_html_report_shows_money_as_people_read_it(store, tmp_path):
    add_run(store, 1, "etl", "small", 0.02197)  # 1.3 s at $0.10/h: $0.0000366
    add_span(store, 2, T0 + timedelta(days=2), 700.0)  # 700 h at $1.60/h: $1,120
    path = tmp_path / "report.html"
    report.write_report(store, "html", path)
    html = path.read_text()
    assert "$1,120.00" in html and "$0.000037" in html
    assert not re.search(r"\de-\d", html) and "0.000000" not in html
