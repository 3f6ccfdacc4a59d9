"""Usage of concurrent local runs is sampled by one thread for all of them (issue 15.3), each run on its
own cadence, while their supervisors only wait for their ends."""

import os
import sys
import threading
import time

from scheduler.core.specs import ShapeSpec
from scheduler.executors.base import LaunchSpec
from scheduler.executors.local import LocalExecutor

SHAPE = ShapeSpec(name="tiny", vcpus=1, memory_gib=1, price_per_hour=0.01, capacity=4)
HOLD = "import time; blob = bytearray({mib} * 2**20); time.sleep(0.8)"


def launch(executor, tmp_path, run_id: str, mib: int) -> dict:
    work = tmp_path / run_id
    work.mkdir()
    spec = LaunchSpec(run_id=run_id, job="hold", argv=[sys.executable, "-c", HOLD.format(mib=mib)], workdir=work,
                      env={"PATH": os.environ["PATH"]}, secret_names=frozenset(), log_path=work / "run.log",
                      shape=SHAPE, max_runtime_s=60)
    return executor.launch(spec)


def samplers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "local-sampler"]


def test_one_thread_samples_every_local_run_on_its_own(tmp_path):
    before = len(samplers())  # other tests' executors keep their own (idle) sampler
    executor = LocalExecutor()
    assert executor.samples_itself
    sizes = {"r-small": 30, "r-mid": 60, "r-large": 120}
    handles = {run_id: launch(executor, tmp_path, run_id, mib) for run_id, mib in sizes.items()}
    ends = {}
    deadline = time.monotonic() + 20
    while len(ends) < len(handles) and time.monotonic() < deadline:
        for run_id, handle in handles.items():
            if run_id not in ends and (status := executor.wait(handle, 0.05)) is not None:
                ends[run_id] = status  # nothing here calls sample(): the supervisor only waits
    assert {run_id: status.exit_code for run_id, status in ends.items()} == dict.fromkeys(sizes, 0)
    assert len(samplers()) == before + 1
    for run_id, mib in sizes.items():
        peak = executor.usage(handles[run_id]).mem_peak_bytes
        assert peak is not None and mib * 2**20 <= peak < (mib + 100) * 2**20, (run_id, peak)
        executor.forget(handles[run_id])
    assert len(samplers()) == before + 1  # idle now: it waits for the next run without a timeout
