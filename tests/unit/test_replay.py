"""bench/replay.py: the trace-replay simulator's invariants on small synthetic traces and price lists."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
CONTRACT_KEYS = {"spend_usd", "lower_bound_usd", "naive_first_fit_usd", "naive_size_match_usd", "no_learning_usd",
                 "oracle_usd", "price_first_fit_usd", "mean_wait_s", "p95_wait_s", "max_wait_s", "jobs", "unplaceable",
                 "unplaceable_by_reason", "gpu_shapes", "catalog_skipped", "gap_shape_choice_usd", "gap_spill_over_usd",
                 "gap_waiting_job_hours"}
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "catalogs"
TRACE_COLUMNS = ["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec", "qos", "pod_phase",
                 "creation_time", "deletion_time", "scheduled_time"]
# Lambda's column order: the loader must pick columns by name
PRICE_COLUMNS = ["InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB", "Price", "Region",
                 "GpuInfo", "SpotPrice"]


@pytest.fixture(scope="module")
def replay():
    spec = importlib.util.spec_from_file_location("costwise_bench_replay", BENCH / "replay.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def default_speed(replay, gpu: str) -> float:
    return replay.load_speed_table(replay.DEFAULT_TABLE).exact[gpu.upper()]


def write_trace(path: Path, pods: list[dict]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, TRACE_COLUMNS)
        writer.writeheader()
        for i, pod in enumerate(pods):
            start = pod.get("at", 0)
            row = {"name": f"pod-{i}", "cpu_milli": pod.get("cpu", 2000), "memory_mib": pod.get("mem", 4096),
                   "num_gpu": pod.get("gpus", 0), "gpu_milli": pod.get("gpu_milli", 1000 if pod.get("gpus") else 0),
                   "gpu_spec": "", "qos": pod.get("qos", "BE"), "pod_phase": pod.get("phase", "Succeeded"),
                   "creation_time": start, "deletion_time": start + pod.get("dur", 600), "scheduled_time": start}
            writer.writerow(row)
    return path


def write_prices(path: Path, shapes: list[tuple]) -> Path:
    """shapes: (name, gpu or "", gpu count, vcpus, memory GiB, price)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PRICE_COLUMNS)
        for name, gpu, count, vcpus, mem, price in shapes:
            writer.writerow([name, gpu, count if gpu else "", vcpus, mem, price, "r1", "", ""])
            writer.writerow([name, gpu, count if gpu else "", vcpus, mem, price * 1.5, "r2", "", ""])  # dearer region
    return path


SAME_SPEED = [  # every GPU shape a T4, every CPU shape speed 1.0 (non-Azure names)
    ("t4_big", "T4", 1, 16, 64, 2.0),
    ("t4_small", "T4", 1, 8, 32, 1.0),
    ("cpu_big", "", 0, 16, 64, 0.8),
    ("cpu_small", "", 0, 4, 16, 0.2),
]


def mixed_pods(n: int = 40) -> list[dict]:
    pods = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            pods.append({"cpu": 2000, "mem": 8192, "dur": 300 + 97 * i, "at": 30 * i})
        elif kind == 1:
            pods.append({"cpu": 12000, "mem": 40960, "dur": 1200 + 13 * i, "at": 30 * i})
        else:
            pods.append({"cpu": 6000, "mem": 16384, "gpus": 1, "gpu_milli": 1000, "dur": 900 + 41 * i, "at": 30 * i})
    return pods


def test_lower_bound_is_below_every_policy(replay, tmp_path):
    trace = write_trace(tmp_path / "trace.csv", mixed_pods())
    prices = write_prices(tmp_path / "prices.csv", SAME_SPEED + [("h100_pcie", "H100", 1, 26, 200, 3.29)])
    for capacity in (1, 2, 0):
        f = replay.run(trace, prices, capacity=capacity, max_wait_s=120)
        for key in ("spend_usd", "naive_first_fit_usd", "naive_size_match_usd", "no_learning_usd"):
            assert f["lower_bound_usd"] <= f[key] + 1e-9, (capacity, key, f)
        assert f["jobs"] == 40 and f["placed"] == 40 and f["unplaceable"] == 0


def test_unlimited_capacity_same_speeds_costwise_meets_the_lower_bound(replay, tmp_path):
    pods = [{"cpu": 2000, "mem": 8192, "dur": 600 + 10 * i, "at": 100 * i} for i in range(20)]
    pods += [{"cpu": 6000, "mem": 16384, "gpus": 1, "dur": 1000 + 7 * i, "at": 100 * i + 5} for i in range(20)]
    trace = write_trace(tmp_path / "trace.csv", pods)
    prices = write_prices(tmp_path / "prices.csv", SAME_SPEED)
    f = replay.run(trace, prices, capacity=0, speed_noise=0)
    assert f["spend_usd"] == pytest.approx(f["lower_bound_usd"], rel=1e-9)
    assert f["mean_wait_s"] == 0 and f["p95_wait_s"] == 0
    # the lower bound is the cheaper region's price x duration on the cheapest fitting shape
    t4 = default_speed(replay, "T4")  # the same on every GPU shape here, but not 1.0: the trace's reference is a V100
    expected = sum(0.2 * (600 + 10 * i) / 3600 + 1.0 * (1000 + 7 * i) / t4 / 3600 for i in range(20))
    assert f["lower_bound_usd"] == pytest.approx(expected)
    assert f["naive_first_fit_usd"] > f["lower_bound_usd"]  # file order puts the dear t4_big first


def test_capacity_one_makes_jobs_wait(replay, tmp_path):
    pods = [{"cpu": 2000, "mem": 4096, "dur": 1000, "at": 0} for _ in range(10)]
    trace = write_trace(tmp_path / "trace.csv", pods)
    prices = write_prices(tmp_path / "prices.csv", [("cpu_only", "", 0, 4, 16, 0.2)])
    f = replay.run(trace, prices, capacity=1, max_wait_s=600, speed_noise=0)
    assert f["mean_wait_s"] == pytest.approx(sum(range(10)) * 1000 / 10)
    assert f["p95_wait_s"] == 9000
    assert f["naive_first_fit_mean_wait_s"] > 0 and f["naive_size_match_mean_wait_s"] > 0
    assert f["spend_usd"] == pytest.approx(f["lower_bound_usd"])  # one shape: same cost, only later
    unlimited = replay.run(trace, prices, capacity=0)
    assert unlimited["mean_wait_s"] == 0


def test_a_job_no_shape_fits_is_unplaceable(replay, tmp_path):
    pods = mixed_pods(9) + [{"cpu": 512000, "mem": 4096, "at": 5}, {"cpu": 1000, "mem": 1024, "gpus": 8, "at": 6}]
    trace = write_trace(tmp_path / "trace.csv", pods)
    prices = write_prices(tmp_path / "prices.csv", SAME_SPEED)
    f = replay.run(trace, prices, capacity=2)
    assert f["jobs"] == 11 and f["unplaceable"] == 2 and f["placed"] == 9


def test_pending_pods_are_skipped_and_long_runs_capped(replay, tmp_path):
    trace = write_trace(tmp_path / "trace.csv", [{"dur": 10 * 86400}, {"dur": 600}])
    with open(trace) as handle:
        rows = list(csv.DictReader(handle))
    rows[1]["scheduled_time"], rows[1]["pod_phase"] = "", "Pending"
    with open(trace, "w", newline="") as handle:
        writer = csv.DictWriter(handle, TRACE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    prices = write_prices(tmp_path / "prices.csv", [("cpu_only", "", 0, 4, 16, 0.5)])
    f = replay.run(trace, prices, capacity=1, speed_noise=0)
    assert f["jobs"] == 1 and f["skipped_pending"] == 1 and f["timed_out"] == 1
    assert f["spend_usd"] == pytest.approx(0.5 * 24)  # killed at the default max_runtime of 24 h


def test_fractional_gpu_pods_use_fractional_shapes(replay, tmp_path):
    pods = [{"cpu": 4000, "mem": 8192, "gpus": 1, "gpu_milli": 300, "dur": 3600},
            {"cpu": 4000, "mem": 8192, "gpus": 1, "gpu_milli": 500, "dur": 3600, "at": 1}]
    trace = write_trace(tmp_path / "trace.csv", pods)
    prices = write_prices(tmp_path / "prices.csv", [
        ("Standard_NV12ads_A10_v5", "A10", 0.333, 12, 110, 0.9),
        ("Standard_NC8ads_A10_v4", "A10", 1, 8, 100, 1.1),
    ])
    f = replay.run(trace, prices, capacity=0, speed_noise=0)
    speed = default_speed(replay, "A10")  # both pods are BE: they run faster than on the V100 reference
    assert f["lower_bound_usd"] == pytest.approx((0.9 + 1.1) / speed)
    assert f["spend_usd"] == pytest.approx(f["lower_bound_usd"])


def test_costwise_learns_a_faster_dearer_shape(replay, tmp_path):
    # one BE job class; a slow cheap T4 and a ~6.8x faster, 3.3x dearer H100 PCIe; one slot each
    # a job every 700 s: the T4 is busy for ~6,200 s per run, the H100 for ~530 s
    pods = [{"cpu": 4000, "mem": 16384, "gpus": 1, "dur": 3600, "at": 700 * i} for i in range(40)]
    trace = write_trace(tmp_path / "trace.csv", pods)
    prices = write_prices(tmp_path / "prices.csv", [
        ("gpu_1x_t4", "T4", 1, 8, 32, 1.0),
        ("gpu_1x_h100_pcie", "H100", 1, 26, 200, 3.3),
    ])
    f = replay.run(trace, prices, capacity=1, max_wait_s=300)
    assert f["spilled_over"] > 0
    assert f["spend_usd"] < f["naive_size_match_usd"]
    assert f["spend_usd"] < f["no_learning_usd"]
    assert f["lower_bound_usd"] <= f["spend_usd"]


def test_json_output_has_the_contract_keys(replay, tmp_path, capsys):
    trace = write_trace(tmp_path / "trace.csv", mixed_pods(12))
    prices = write_prices(tmp_path / "prices.csv", SAME_SPEED)
    replay.main(["--trace", str(trace), "--prices", str(prices), "--capacity", "1", "--json"])
    out = capsys.readouterr().out
    figures = json.loads(out)
    assert CONTRACT_KEYS <= figures.keys()
    assert figures["jobs"] == 12
    replay.main(["--trace", str(trace), "--prices", str(prices)])
    lines = capsys.readouterr().out.splitlines()
    assert {line.split(": ", 1)[0] for line in lines} >= CONTRACT_KEYS


def test_vast_spot_zero_and_gpu_info_are_read(replay, tmp_path):
    prices = tmp_path / "vast.csv"
    with open(prices, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB", "GpuInfo",
                         "Price", "SpotPrice", "Region"])
        info = ("{'Gpus': [{'Name': 'L40S', 'Count': 1, 'MemoryInfo': {'SizeInMiB': 46068}}], "
                "'TotalGpuMemoryInMiB': 46068}")
        writer.writerow(["1x-L40S-32-65536", "L40S", 1, 32, 64.0, info, 0.60, 0.00, "Japan, JP, AS"])
        writer.writerow(["1x-MYSTERY-8-8192", "MYSTERY", 1, 8, 8.0, "", 0.01, 0.00, "Nowhere"])  # kept: runs at 1.0
        writer.writerow(["8x-MI300X-96-2048", "MI300X", 8, 96, 2048.0, "", 12.0, 0.00, "Nowhere"])  # not CUDA
    shapes, left_out = replay.shape_types(replay.load_catalog(prices), capacity=3)
    assert [s.spec.name for s in shapes] == ["1x-L40S-32-65536", "1x-MYSTERY-8-8192"]
    assert left_out == {"not_an_nvidia_gpu": 1}
    spec = shapes[0].spec
    assert spec.price_per_hour == 0.60 and spec.spot_price_per_hour is None and spec.capacity == 3
    assert spec.gpu_memory_gib == pytest.approx(46068 / 1024, abs=0.01)


def bad_input(replay, capsys, argv: list[str]) -> str:
    """main() on bad input: exit 2 and exactly one line on stderr, nothing on stdout."""
    with pytest.raises(SystemExit) as caught:
        replay.main(argv)
    assert caught.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_a_trace_of_unknown_columns_is_one_line_and_exit_2(replay, tmp_path, capsys):
    trace = tmp_path / "jobs.csv"
    trace.write_text("job_id,submit,cpus,gpus,runtime\nj1,0,4,1,600\n")
    prices = write_prices(tmp_path / "prices.csv", SAME_SPEED)
    line = bad_input(replay, capsys, ["--trace", str(trace), "--prices", str(prices)])
    assert "missing column 'cpu_milli'" in line and "job_id, submit, cpus, gpus, runtime" in line
    rows = write_trace(tmp_path / "trace.csv", mixed_pods(3)).read_text().replace(",2000,", ",lots,", 1)
    (tmp_path / "bad-value.csv").write_text(rows)
    line = bad_input(replay, capsys, ["--trace", str(tmp_path / "bad-value.csv"), "--prices", str(prices)])
    assert "line 2: cpu_milli='lots'" in line


def test_a_gpu_trace_against_a_cpu_only_catalog_is_one_line_and_exit_2(replay, tmp_path, capsys):
    trace = write_trace(tmp_path / "trace.csv", mixed_pods(6))  # a third of them ask for a GPU
    prices = write_prices(tmp_path / "prices.csv", [("cpu_big", "", 0, 16, 64, 0.8), ("cpu_small", "", 0, 4, 16, 0.2)])
    line = bad_input(replay, capsys, ["--trace", str(trace), "--prices", str(prices), "--json"])
    assert "asks for GPUs (2 pods)" in line and "no GPU shape" in line
    line = bad_input(replay, capsys, ["--trace", str(trace), "--prices", str(FIXTURES / "missing-price.csv")])
    assert "missing column 'Price'" in line
    line = bad_input(replay, capsys, ["--trace", str(trace), "--prices", str(prices), "--speed-noise", "nan"])
    assert "--speed-noise" in line


def test_the_speed_table_is_the_truth(replay, tmp_path):
    pods = [{"cpu": 4000, "mem": 8192, "gpus": 1, "dur": 3600, "at": 10 * i} for i in range(5)]
    pods += [{"cpu": 2000, "mem": 4096, "dur": 1800, "at": 10 * i + 5} for i in range(5)]
    trace = write_trace(tmp_path / "trace.csv", pods)
    prices = write_prices(tmp_path / "prices.csv", [("gpu_1x_a10", "A10", 1, 8, 32, 1.0),
                                                    ("Standard_D4s_v5", "", 0, 4, 16, 0.2)])
    table = tmp_path / "speeds.csv"
    table.write_text("type,relative_speed\nA10,4.0\nDsv5,2.0\n")  # a GPU model and a CPU family
    f = replay.run(trace, prices, capacity=0, speed_table=table, speed_noise=0)
    assert f["lower_bound_usd"] == pytest.approx(5 * 1.0 * 3600 / 4.0 / 3600 + 5 * 0.2 * 1800 / 2.0 / 3600)
    table.write_text("type,relative_speed\nT4,9.0\n")  # neither type listed: both run at 1.0
    f = replay.run(trace, prices, capacity=0, speed_table=table, speed_noise=0)
    assert f["lower_bound_usd"] == pytest.approx(5 * 1.0 + 5 * 0.2 * 0.5)
    assert f["spend_usd"] == pytest.approx(f["lower_bound_usd"]) == pytest.approx(f["oracle_usd"])
    table.write_text("kind,speed\nA10,4\n")
    with pytest.raises(replay.TruthError, match="missing column 'type'"):
        replay.run(trace, prices, speed_table=table)


def test_speed_noise_is_seeded_per_class_and_type(replay, tmp_path):
    pods = [{"cpu": 2000 + 1000 * (i % 4), "mem": 4096, "gpus": 1, "dur": 3600, "at": 60 * i} for i in range(40)]
    trace = write_trace(tmp_path / "trace.csv", pods)
    prices = write_prices(tmp_path / "prices.csv", [("gpu_1x_a10", "A10", 1, 8, 32, 1.0)])
    plain = replay.run(trace, prices, capacity=0, speed_noise=0)["lower_bound_usd"]
    a = replay.run(trace, prices, capacity=0, speed_noise=0.5, seed=1)["lower_bound_usd"]
    assert a == replay.run(trace, prices, capacity=0, speed_noise=0.5, seed=1)["lower_bound_usd"]
    assert a != plain and a != replay.run(trace, prices, capacity=0, speed_noise=0.5, seed=2)["lower_bound_usd"]
    truth = replay.Truth(replay.load_speed_table(replay.DEFAULT_TABLE), sigma=0.5, seed=3)
    speeds = {truth.speed(f"class-{k}", True, "A10", None, "gpu_1x_a10") for k in range(20)}
    assert len(speeds) == 20  # every class draws its own factor
    assert truth.speed("class-0", True, "A10", None, "x") == truth.speed("class-0", True, "a10", None, "y")
    many = replay.run(trace, prices, capacity=0, speed_noise=0.5, seeds=3)
    assert many["seed"] == [0, 1, 2] and "spend_over_lower_bound_max" in many


def test_baselines_oracle_and_gap_decomposition(replay, tmp_path):
    trace = write_trace(tmp_path / "trace.csv", mixed_pods(60))
    prices = write_prices(tmp_path / "prices.csv", SAME_SPEED + [("gpu_1x_h100_pcie", "H100", 1, 26, 200, 3.29)])
    for capacity in (0, 1, 2):
        f = replay.run(trace, prices, capacity=capacity, max_wait_s=120)
        for key in ("oracle_usd", "price_first_fit_usd", "no_learning_usd"):
            assert f["lower_bound_usd"] <= f[key] + 1e-9, (capacity, key)
        assert f["gap_shape_choice_usd"] + f["gap_spill_over_usd"] == pytest.approx(f["gap_usd"])
        assert f["learning_loss_usd"] + f["contention_usd"] == pytest.approx(f["gap_usd"])
        assert min(f["gap_shape_choice_usd"], f["gap_spill_over_usd"], f["oracle_gap_shape_choice_usd"]) >= -1e-9
        if capacity == 0:  # nothing is ever full: no spill-over, and the truth told is the lower bound
            assert f["gap_spill_over_usd"] == 0 and f["gap_waiting_job_hours"] == 0
            assert f["oracle_usd"] == pytest.approx(f["lower_bound_usd"], rel=1e-6)
            assert f["price_first_fit_usd"] == pytest.approx(f["no_learning_usd"])
    assert f["naive_first_fit_order"] == "file"


def test_unplaceable_jobs_are_counted_by_reason(replay, tmp_path):
    pods = mixed_pods(6) + [{"cpu": 512000, "mem": 4096, "at": 5}, {"cpu": 1000, "mem": 1024, "gpus": 8, "at": 6},
                            {"cpu": 1000, "mem": 10**7, "at": 7}, {"cpu": 64000, "mem": 1024, "gpus": 1, "at": 8}]
    trace = write_trace(tmp_path / "trace.csv", pods)
    prices = write_prices(tmp_path / "prices.csv", SAME_SPEED + [("cpu_huge", "", 0, 96, 384, 4.0)])
    f = replay.run(trace, prices, capacity=2)
    assert f["unplaceable"] == 4
    assert f["unplaceable_by_reason"] == {"cpus": 2, "gpus": 1, "memory_gib": 1}  # 64 CPUs fit, not with a GPU
    assert f["gpu_shapes"] == 2


def test_every_catalog_layout_replays_and_reports_its_skips(replay, tmp_path, capsys):
    pods = [{"cpu": 2000, "mem": 4096, "gpus": 1, "dur": 3600, "at": 30 * i} for i in range(8)]
    pods += [{"cpu": 2000, "mem": 4096, "dur": 600, "at": 30 * i} for i in range(4)]
    trace = write_trace(tmp_path / "trace.csv", pods)
    for name in ("gcp-accelerator-rows.csv", "lambda-vm-rows.csv", "azure-vm-rows.csv", "aws-family-names.csv"):
        f = replay.main(["--trace", str(trace), "--prices", str(FIXTURES / name), "--capacity", "2", "--json"])
        figures = json.loads(capsys.readouterr().out)
        assert figures["gpu_shapes"] > 0 and figures["unplaceable"] == 0 and figures["placed"] == 12, name
        assert figures["catalog_skipped"] == f["catalog_skipped"] and sum(figures["catalog_skipped"].values()) > 0
    assert figures["catalog_skipped"] == {"unmapped_accelerator_family": 1}  # the AWS file: inf2.xlarge
    replay.main(["--trace", str(trace), "--prices", str(FIXTURES / "gcp-accelerator-rows.csv")])
    lines = capsys.readouterr().out.splitlines()
    assert "catalog_skipped.tpu: 2" in lines and "catalog_skipped: 7" in lines


def test_spot_replay_saves_where_spot_is_sold_and_reports_its_figures(replay, tmp_path, capsys):
    pods = [{"cpu": 6000, "mem": 16384, "gpus": 1, "gpu_milli": 1000, "dur": 6 * 3600 + 60 * i, "at": 600 * i}
            for i in range(30)]
    trace = write_trace(tmp_path / "trace.csv", pods)
    prices = tmp_path / "prices.csv"
    with prices.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PRICE_COLUMNS)
        writer.writerow(["t4_spot", "T4", 1, 8, 32, 1.0, "r1", "", 0.25])
    args = ["--trace", str(trace), "--prices", str(prices), "--capacity", "0", "--json", "--spot",
            "--interruptions-per-hour", "0.5", "--checkpoint-interval", "900"]
    figures = replay.main(args)
    keys = {"ondemand_only_usd", "spot_policy_usd", "always_spot_usd", "deadline_misses",
            "always_spot_deadline_misses", "preemptions", "lost_hours"}
    assert keys <= json.loads(capsys.readouterr().out).keys()
    assert figures["ondemand_only_usd"] == pytest.approx(figures["spend_usd"])
    assert figures["spot_policy_usd"] < 0.6 * figures["ondemand_only_usd"]
    assert figures["deadline_misses"] == 0 and figures["preemptions"] > 0
    with pytest.raises(SystemExit) as refused:
        replay.main(args + ["--deadline-factor", "0.5"])
    assert refused.value.code == 2 and "--deadline-factor" in capsys.readouterr().err
