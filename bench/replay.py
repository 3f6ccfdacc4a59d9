"""Trace replay: costwise placement against naive baselines on a real GPU-cluster trace.

    python bench/replay.py --trace CSV --prices CSV [--capacity N] [--max-wait S] [--json]

Both files default to ../shared/data/trace-openb-pods.csv and ../shared/data/prices-azure.csv when that
folder is there. Any of the SkyPilot-schema price CSVs (Azure, Lambda, Vast) works; columns are taken
by name.

The trace is the Alibaba "openb" GPU cluster trace (alibaba/clusterdata, cluster-trace-gpu-v2023), from
    Qizhen Weng, Lingyun Yang, Yinghao Yu, Wei Wang, Xiaochuan Tang, Guodong Yang, Liping Zhang.
    "Beware of Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent".
    USENIX ATC '23, pp. 995-1008.
Cite that paper wherever these figures are published.

What it is: a discrete-event simulation (heapq, one core) of the trace's pods arriving at their
creation_time onto the shape types of a price list, each type with finite capacity (``--capacity``
concurrent runs per shape type; 0 = unlimited), with a FIFO queue when no fitting shape has room.
Four ways to place the same jobs on the same capacity are compared:

* costwise -- the real placement core, ``scheduler.placement.place`` over a ``ShapeIndex`` /
  ``Snapshot``, with a per-job history {shape: (median duration, runs) of the last 200 successful runs},
  which the simulator fills from finished runs exactly like ``Store.duration_history`` does. It
  waits up to ``max_wait`` (default 600 s, the example in DESIGN.md and PlacementRequest's default)
  for its cheapest expected shape, then spills over (the core's own semantics; the simulator wakes a
  waiting job when a fitting slot frees, when its class learns something, and at its max_wait).
* naive first fit -- the first fitting shape with a free slot in price-file order (order of first
  appearance of the instance type); waits only when every fitting shape is full.
* naive size match -- the smallest fitting shape by resources (gpus, vcpus, memory), ties by price,
  with a free slot; ignores speed; waits only when every fitting shape is full.
* no learning -- the same placement core and max_wait with an empty history for ever: plain
  cheapest-price fit. The gap to costwise is what learning durations is worth.
* lower bound -- every job alone on its truly cheapest fitting shape (known true durations,
  unlimited capacity, no waiting). Per job it is <= any policy's cost, so it bounds every spend.

The experiment, not a tautology: the true duration of a job on a shape is its trace duration divided
by the shape's relative speed (tables below). The simulator knows the speeds; the policy does not --
it only sees prices and resources and must learn per-shape durations from finished runs.

Choices (documented, since the trace leaves them open):

* Jobs: one pod = one run. Requirements: cpus = cpu_milli/1000, memory = memory_mib/1024 GiB,
  gpus = num_gpu. A GPU-sharing pod (num_gpu == 1, 0 < gpu_milli < 1000) asks for gpus =
  gpu_milli/1000: it fits a fractional-GPU shape with at least that share (Azure NV*ads_A10_v5:
  1/6, 1/3, 1/2 of an A10) and any whole-GPU shape, i.e. it rounds up to a whole GPU unless the price
  list has a fractional shape that fits. The trace has no GPU type or GPU-memory constraints.
* Durations: deletion_time - scheduled_time (deletion_time - creation_time only where
  scheduled_time is empty), floored at 1 s. Pending pods (no scheduled_time) never ran in the source
  cluster -- their "duration" is time spent queued -- so they are left out (``skipped_pending``).
  Running pods are kept: many were still alive when the trace was taken, so their durations are
  censored; together with the long outliers (max ~145 days) they meet the daemon's default
  max_runtime of 24 h: a run whose true duration on its shape passes 24 h is killed there
  (TIMED_OUT) and billed 24 h. The lower bound applies the same cap.
* Outcomes feeding history: like the daemon, only successful runs teach durations. Pods whose
  trace phase is Failed fail in the replay too (billed, not learned from); timed-out runs are not
  learned from either.
* Job classes ("jobs" for the placement core): pods with the same requirement signature
  (cpu_milli, memory_mib, num_gpu, gpu_milli, qos) are runs of one job. The openb slice has ~150
  such classes; their runs' durations vary widely, which is the noise a real scheduler also sees.
* Speed (the truth, hidden from the policy): a GPU pod's speed on a GPU shape is the GPU model's
  dense FP16 tensor-core throughput (vendor datasheets) relative to a V100 PCIe (112 TFLOPS = 1.0;
  the openb cluster's named GPUs are T4 / P100 / V100, so its durations are read as V100 time).
  Peak ratios are an optimistic model of a compute-bound training job. qos LS pods are
  latency-sensitive services (per the paper): their lifetime is set by their owner, not the hardware,
  so their duration does not scale (``--scale-all`` scales them too). A CPU-only pod's speed is the
  Azure Compute Unit (ACU, Microsoft's published per-vCPU benchmark score) of the VM series relative
  to 175 (Dv3 / Ev3 class); CPU-only pods on GPU shapes and on non-Azure CPU shapes run at 1.0.
* Shape subset: one row per instance type at its cheapest on-demand Price over regions (Price > 0;
  a spot price, and Vast's SpotPrice 0 which means none, is not used). GPU types are kept when the
  GPU model is in the speed table (left out: AMD MI25 / MI300X -- the trace's jobs are CUDA jobs --,
  the M60 VDI boards and consumer/workstation models whose datasheet figures we did not pin down).
  Azure CPU-only types are kept for the series in the ACU table below, without constrained-core
  (E16-4ds...) and Arm (p) sizes. On prices-azure.csv that is ~300 shape types.
"""

from __future__ import annotations

import argparse
import ast
import csv
import heapq
import math
import re
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA, report  # noqa: E402

from scheduler.placement import PlacementRequest, ShapeIndex, expected_remaining, expected_wait, place  # noqa: E402
from scheduler.specs import Requirements, ShapeSpec  # noqa: E402


MAX_RUNTIME_S = 24 * 3600.0  # the daemon's default max_runtime
HISTORY_RUNS = 200  # as scheduler.store.HISTORY_RUNS: finished runs per job looked at
UNLIMITED = 10**9
EPOCH = datetime(2023, 1, 1, tzinfo=timezone.utc)

# Dense FP16 tensor-core TFLOPS per GPU from the vendors' datasheets (no sparsity; FP32 accumulate
# for GeForce parts), divided by V100 PCIe's 112. Keys are GPU models (see gpu_model()).
GPU_TFLOPS = {
    "T4": 65.0,
    "V100": 112.0,  # PCIe (Azure NCv3); SXM2 is 125
    "V100-SXM2": 125.0,
    "A10": 125.0,
    "RTX6000": 130.5,  # Quadro RTX 6000 (Turing)
    "RTXA5000": 111.1,
    "A6000": 154.8,  # RTX A6000
    "RTX3090": 71.0,
    "RTX4090": 165.2,
    "RTX5090": 209.5,
    "L40S": 362.0,
    "RTX6000-Ada": 364.2,
    "A100": 312.0,  # 40 GB and 80 GB, PCIe and SXM alike
    "H100-PCIe": 756.0,
    "H100-NVL": 835.0,  # Azure NC*ads_H100_v5 carry the 94 GB NVL
    "H100": 989.4,  # SXM5
    "GH200": 989.4,
    "H200": 989.4,
    "B200": 2250.0,
}
REFERENCE_TFLOPS = GPU_TFLOPS["V100"]
GPU_SPEED = {k: v / REFERENCE_TFLOPS for k, v in GPU_TFLOPS.items()}

# Azure Compute Unit per vCPU (learn.microsoft.com/azure/virtual-machines/acu), mid-point of the
# published range, keyed by (series, version, AMD?). Relative to Dv3/Ev3 (175).
AZURE_ACU = {
    ("A", "2", False): 100.0,
    ("D", "2", False): 230.0, ("DS", "2", False): 230.0,  # 210-250
    ("F", None, False): 230.0, ("FS", None, False): 230.0,  # 210-250
    ("D", "3", False): 175.0, ("E", "3", False): 175.0,  # 160-190
    ("D", "4", False): 202.5, ("E", "4", False): 202.5,  # 195-210
    ("D", "5", False): 202.5, ("E", "5", False): 202.5,  # 195-210
    ("F", "2", False): 202.5,  # Fsv2 195-210
    ("D", "4", True): 245.0, ("E", "4", True): 245.0,  # Dav4 / Eav4 230-260
}
REFERENCE_ACU = 175.0
AZURE_SIZE = re.compile(r"^Standard_([A-Z]+)(\d+)(-\d+)?([a-z]*)(?:_v(\d+))?$")

GPU_MEMORY_GIB = {"T4": 16, "V100": 16, "V100-SXM2": 32, "A10": 24, "RTX6000": 24, "RTXA5000": 24, "A6000": 48,
                  "RTX3090": 24, "RTX4090": 24, "RTX5090": 32, "L40S": 48, "RTX6000-Ada": 48, "A100": 40,
                  "H100-PCIe": 80, "H100-NVL": 94, "H100": 80, "GH200": 96, "H200": 141, "B200": 180}


def gpu_model(accelerator: str, instance_type: str) -> str | None:
    """The GPU model (a GPU_TFLOPS key) behind a catalog row, or None when we have no speed for it."""
    a, t = accelerator.upper(), instance_type.lower()
    if a.startswith("H100"):
        if "pcie" in t:
            return "H100-PCIe"
        if "nvl" in t or t.startswith("standard_nc"):
            return "H100-NVL"
        return "H100"
    if a.startswith("A100"):
        return "A100"
    if a.startswith("V100"):
        return "V100-SXM2" if ("32GB" in a or "sxm" in t or t.startswith("gpu_")) else "V100"
    aliases = {"RTXA6000": "A6000", "RTX6000-ADA": "RTX6000-Ada"}
    a = aliases.get(a, a)
    for key in GPU_TFLOPS:
        if key.upper() == a:
            return key
    return None


def azure_cpu_speed(instance_type: str) -> float | None:
    m = AZURE_SIZE.match(instance_type)
    if not m:
        return None
    series, _size, constrained, suffix, version = m.groups()
    if constrained or "p" in suffix:
        return None
    acu = AZURE_ACU.get((series, version, "a" in suffix))
    return None if acu is None else acu / REFERENCE_ACU


def _float(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "") else 0.0
    except ValueError:
        return 0.0


@dataclass(slots=True)
class ShapeType:
    spec: ShapeSpec
    order: int  # first appearance in the price file
    gpu_speed: float  # for GPU jobs (0 on CPU-only shapes)
    cpu_speed: float  # for CPU-only jobs


def load_shapes(path: Path, capacity: int) -> list[ShapeType]:
    """One shape type per instance type at its cheapest on-demand price; see the module docstring."""
    best: dict[str, tuple[dict, int]] = {}
    with open(path, newline="") as handle:
        for i, row in enumerate(csv.DictReader(handle)):
            price = _float(row.get("Price"))
            name = row.get("InstanceType") or ""
            if price <= 0 or not name:
                continue
            if name not in best:
                best[name] = (row, i)
            elif price < _float(best[name][0].get("Price")):
                best[name] = (row, best[name][1])
    cap = capacity if capacity > 0 else UNLIMITED
    out = []
    for name, (row, order) in best.items():
        gpus = _float(row.get("AcceleratorCount"))
        accel = (row.get("AcceleratorName") or "").strip()
        vcpus, memory = _float(row.get("vCPUs")), _float(row.get("MemoryGiB"))
        if vcpus <= 0 or memory <= 0:
            continue
        if accel and gpus > 0:
            model = gpu_model(accel, name)
            if model is None:
                continue
            gpu_mem = _gpu_memory(row.get("GpuInfo") or "", model)
            spec = ShapeSpec(name=_safe(name), vcpus=vcpus, memory_gib=memory, gpus=gpus, gpu_type=accel,
                             gpu_memory_gib=gpu_mem, price_per_hour=_float(row["Price"]), capacity=cap)
            out.append(ShapeType(spec, order, GPU_SPEED[model], 1.0))
        else:
            if name.startswith("Standard_"):
                speed = azure_cpu_speed(name)
                if speed is None:
                    continue
            else:
                speed = 1.0
            spec = ShapeSpec(name=_safe(name), vcpus=vcpus, memory_gib=memory, price_per_hour=_float(row["Price"]),
                             capacity=cap)
            out.append(ShapeType(spec, order, 0.0, speed))
    out.sort(key=lambda s: s.order)
    return out


def _gpu_memory(info: str, model: str) -> float:
    """GPU memory per GPU, GiB: Lambda / Vast GpuInfo dicts carry it; Azure's does not (use the model)."""
    if info.startswith("{"):
        try:
            gpus = ast.literal_eval(info).get("Gpus") or []
            return float(gpus[0]["MemoryInfo"]["SizeInMiB"]) / 1024
        except (ValueError, SyntaxError, KeyError, IndexError, TypeError, AttributeError):
            pass
    return float(GPU_MEMORY_GIB.get(model, 0))


def _safe(name: str) -> str:
    """ShapeSpec names are restricted; price-list names are mostly fine already."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)


@dataclass(slots=True)
class Job:
    idx: int
    name: str
    klass: int
    arrival: float
    base_s: float  # trace duration
    scales: bool  # does the duration scale with the hardware (False: LS services)
    failed: bool
    gpu: bool
    req: Requirements


@dataclass
class Trace:
    jobs: list[Job]
    class_names: list[str]
    skipped_pending: int


def load_trace(path: Path, scale_all: bool = False) -> Trace:
    jobs, classes, names, pending = [], {}, [], 0
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            sched = row.get("scheduled_time") or ""
            if not sched.strip():
                pending += 1  # never ran in the source cluster
                continue
            created, deleted = _float(row["creation_time"]), _float(row["deletion_time"])
            base = max(deleted - _float(sched), 1.0)
            cpu_milli, mem_mib = int(_float(row["cpu_milli"])), int(_float(row["memory_mib"]))
            num_gpu, gpu_milli = int(_float(row["num_gpu"])), int(_float(row.get("gpu_milli")))
            qos = (row.get("qos") or "").strip()
            gpus = float(num_gpu)
            if num_gpu == 1 and 0 < gpu_milli < 1000:
                gpus = gpu_milli / 1000
            sig = (cpu_milli, mem_mib, num_gpu, gpu_milli, qos)
            if sig not in classes:
                classes[sig] = len(classes)
                names.append(f"c{len(names)}-{cpu_milli / 1000:g}cpu-{mem_mib / 1024:.3g}g-{gpus:g}gpu-{qos or 'na'}")
            req = Requirements(cpus=cpu_milli / 1000, memory_gib=mem_mib / 1024, gpus=gpus)
            jobs.append(Job(len(jobs), row.get("name") or str(len(jobs)), classes[sig], created, base,
                            scale_all or qos != "LS", (row.get("pod_phase") or "") == "Failed", num_gpu > 0, req))
    jobs.sort(key=lambda j: (j.arrival, j.idx))
    return Trace(jobs, names, pending)


class World:
    """Shapes, the truth about speeds, and per-class fit lists (shared by every policy)."""

    def __init__(self, shapes: list[ShapeType], trace: Trace):
        self.shapes = shapes
        self.index = ShapeIndex([s.spec for s in shapes])  # sorted by (price, name)
        n = len(self.index.shapes)
        by_name = {s.spec.name: s for s in shapes}
        self.types = [by_name[s.name] for s in self.index.shapes]  # index order
        self.price = [s.price_per_hour for s in self.index.shapes]
        self.capacity = [s.capacity for s in self.index.shapes]
        self.trace = trace
        self.fit: dict[int, list[int]] = {}  # class -> fitting positions, index (price) order
        self.first_fit: dict[int, list[int]] = {}
        self.size_match: dict[int, list[int]] = {}
        self.fitting_classes: list[set[int]] = [set() for _ in range(n)]
        for job in trace.jobs:
            if job.klass in self.fit:
                continue
            r = job.req
            pos = [i for i, s in enumerate(self.index.shapes)
                   if s.vcpus >= r.cpus and s.memory_gib >= r.memory_gib and s.gpus >= r.gpus]
            self.fit[job.klass] = pos
            self.first_fit[job.klass] = sorted(pos, key=lambda i: self.types[i].order)
            shapes = self.index.shapes
            self.size_match[job.klass] = sorted(
                pos, key=lambda i: (shapes[i].gpus, shapes[i].vcpus, shapes[i].memory_gib, self.price[i], i))
            for i in pos:
                self.fitting_classes[i].add(job.klass)

    def true_seconds(self, job: Job, pos: int) -> float:
        """The true duration of the job on that shape (uncapped) -- the truth the policy never sees."""
        t = self.types[pos]
        speed = (t.gpu_speed if job.gpu else t.cpu_speed) if job.scales else 1.0
        return job.base_s / speed

    def cost(self, job: Job, pos: int) -> float:
        return self.price[pos] * min(self.true_seconds(job, pos), MAX_RUNTIME_S) / 3600.0


@dataclass
class Outcome:
    spend: float = 0.0
    waits: list[float] = field(default_factory=list)
    placed: int = 0
    spilled: int = 0
    timed_out: int = 0
    failed: int = 0
    per_class_shape: dict = field(default_factory=dict)


def lower_bound(world: World) -> float:
    total = 0.0
    for job in world.trace.jobs:
        pos = world.fit[job.klass]
        if pos:
            total += min(world.cost(job, p) for p in pos)
    return total


class Policy:
    name = "?"

    def __init__(self, world: World):
        self.world = world
        self.in_use = [0] * len(world.types)

    def choose(self, job: Job, now: float) -> int | None:
        """A shape position with a free slot to start on now, or None to keep waiting."""
        raise NotImplementedError

    def started(self, pos: int) -> None:
        self.in_use[pos] += 1

    def finished(self, job: Job, pos: int, seconds: float, ok: bool) -> None:
        self.in_use[pos] -= 1

    def wake_at(self, job: Job) -> float | None:
        return None


class OrderedPolicy(Policy):
    """Take the first shape with a free slot from a fixed per-class preference list."""

    def __init__(self, world: World, orders: dict[int, list[int]], name: str):
        super().__init__(world)
        self.orders, self.name = orders, name

    def choose(self, job: Job, now: float) -> int | None:
        cap, used = self.world.capacity, self.in_use
        for pos in self.orders[job.klass]:
            if used[pos] < cap[pos]:
                return pos
        return None


class CostwisePolicy(Policy):
    """The real placement core with learned history, as the daemon drives it; it also tells the core
    what the daemon knows: this job's runs in flight per shape, and for each full shape the expected
    wait (the runs waiting for it, the running runs' expected remaining time by the core's own
    estimates -- never the simulator's truth)."""

    name = "costwise"

    def __init__(self, world: World, max_wait_s: float, learn: bool = True):
        super().__init__(world)
        self.max_wait_s, self.learn = max_wait_s, learn
        self.snapshot = world.index.snapshot({})  # kept current in place (free / has_free / in_use / wait_s)
        self.runs: dict[int, dict[str, deque]] = {}
        self.order: dict[int, deque] = {}  # shape of each remembered run, oldest first
        self.history: dict[int, dict[str, float]] = {}
        self.requests: dict[int, PlacementRequest] = {}
        self.spills = 0
        self.flying: dict[int, dict[str, int]] = {}  # class -> shape -> runs in flight
        self.running: dict[int, dict[int, tuple[float, float | None]]] = {}  # pos -> job -> (start, expected s)
        self.waiting_for: dict[int, int] = {}  # job -> the full shape it waits for
        self.waiters = [0] * len(world.types)

    def _request(self, job: Job) -> PlacementRequest:
        req = self.requests.get(job.idx)
        if req is None:
            req = self.requests[job.idx] = PlacementRequest(
                job=self.world.trace.class_names[job.klass], requirements=job.req, max_wait_s=self.max_wait_s,
                queued_at=EPOCH + timedelta(seconds=job.arrival), in_flight=self.flying.setdefault(job.klass, {}))
        return req

    def _expected_waits(self, job: Job, now: float) -> None:
        cap, used, wait_s = self.world.capacity, self.in_use, self.snapshot.wait_s
        mine = self.waiting_for.get(job.idx)
        for pos in self.world.fit[job.klass]:
            if used[pos] < cap[pos]:
                continue
            remaining = [expected_remaining(expected, now - start)
                         for start, expected in self.running.get(pos, {}).values()]
            if None in remaining:
                wait_s[pos] = math.nan
                continue
            ahead = self.waiters[pos] - (mine == pos)
            wait_s[pos] = expected_wait(int(cap[pos] - used[pos]), remaining, ahead)

    def choose(self, job: Job, now: float) -> int | None:
        self._expected_waits(job, now)
        decision = place(self._request(job), self.snapshot, self.history.get(job.klass, {}),
                         EPOCH + timedelta(seconds=now))
        self._forget_waiting(job)
        if decision.action != "place":
            if decision.cheapest is not None:
                target = self.waiting_for[job.idx] = self.world.index.position[decision.cheapest.shape]
                self.waiters[target] += 1
            return None
        if decision.cheapest is not None and decision.cheapest.shape != decision.shape:
            self.spills += 1
        pos = self.world.index.position[decision.shape]
        flying = self.flying.setdefault(job.klass, {})
        flying[decision.shape] = flying.get(decision.shape, 0) + 1
        self.running.setdefault(pos, {})[job.idx] = (now, decision.chosen.expected_duration_s)
        return pos

    def _forget_waiting(self, job: Job) -> None:
        target = self.waiting_for.pop(job.idx, None)
        if target is not None:
            self.waiters[target] -= 1

    def _set(self, pos: int, delta: int) -> None:
        name = self.world.index.shapes[pos].name
        self.in_use[pos] += delta
        self.snapshot.in_use[name] = self.in_use[pos]
        self.snapshot.free[pos] -= delta
        self.snapshot.has_free[pos] = self.snapshot.free[pos] > 0

    def started(self, pos: int) -> None:
        self._set(pos, +1)

    def finished(self, job: Job, pos: int, seconds: float, ok: bool) -> None:
        self._set(pos, -1)
        self.requests.pop(job.idx, None)
        name = self.world.index.shapes[pos].name
        self.running.get(pos, {}).pop(job.idx, None)
        self.flying[job.klass][name] -= 1
        if not ok or not self.learn:
            return
        # the last HISTORY_RUNS successful runs of the job over all shapes: (median, runs) per shape
        runs = self.runs.setdefault(job.klass, {})
        order = self.order.setdefault(job.klass, deque())
        runs.setdefault(name, deque()).append(seconds)
        order.append(name)
        if len(order) > HISTORY_RUNS:
            runs[order.popleft()].popleft()
        self.history[job.klass] = {s: (statistics.median(d), len(d)) for s, d in runs.items() if d}

    def wake_at(self, job: Job) -> float | None:
        return job.arrival + self.max_wait_s



def simulate(world: World, policy: Policy) -> Outcome:
    """Replay every placeable job through one policy; FIFO per class, woken by the events that matter."""
    out = Outcome()
    jobs = [j for j in world.trace.jobs if world.fit[j.klass]]
    events: list[tuple] = []  # (time, kind, seq, payload); kind 0 = finish, 1 = arrival, 2 = wake
    seq = 0
    for job in jobs:
        events.append((job.arrival, 1, seq, job))
        seq += 1
    heapq.heapify(events)
    waiting: dict[int, deque] = {}

    def try_class(klass: int, now: float) -> None:
        queue = waiting.get(klass)
        while queue:
            job = queue[0]
            pos = policy.choose(job, now)
            if pos is None:
                return  # later jobs of the class waited less: they wait too
            queue.popleft()
            start(job, pos, now)

    def start(job: Job, pos: int, now: float) -> None:
        nonlocal seq
        policy.started(pos)
        true = world.true_seconds(job, pos)
        runtime = min(true, MAX_RUNTIME_S)
        out.spend += world.price[pos] * runtime / 3600.0
        out.waits.append(now - job.arrival)
        out.placed += 1
        timed_out = true > MAX_RUNTIME_S
        out.timed_out += timed_out
        out.failed += job.failed
        key = (job.klass, pos)
        out.per_class_shape[key] = out.per_class_shape.get(key, 0) + 1
        heapq.heappush(events, (now + runtime, 0, seq, (job, pos, runtime, not (timed_out or job.failed))))
        seq += 1

    while events:
        now, kind, _, payload = heapq.heappop(events)
        if kind == 1:
            job = payload
            queue = waiting.setdefault(job.klass, deque())
            if queue:  # FIFO within the class
                queue.append(job)
            else:
                pos = policy.choose(job, now)
                if pos is not None:
                    start(job, pos, now)
                    continue
                queue.append(job)
            wake = policy.wake_at(job)
            if wake is not None:
                heapq.heappush(events, (wake, 2, seq, job.klass))
                seq += 1
        elif kind == 0:
            job, pos, runtime, ok = payload
            policy.finished(job, pos, runtime, ok)
            classes = world.fitting_classes[pos] | {job.klass}
            heads = sorted((waiting[k][0].arrival, waiting[k][0].idx, k) for k in classes if waiting.get(k))
            for _, _, klass in heads:
                try_class(klass, now)
        else:
            try_class(payload, now)
    assert not any(waiting.values()), "jobs left waiting at the end of the replay"
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


def default_path(name: str) -> Path | None:
    path = SHARED_DATA / name
    return path if path.exists() else None


def run(trace_path: Path, prices_path: Path, capacity: int = 4, max_wait_s: float = 600.0,
        scale_all: bool = False) -> dict:
    started = time.perf_counter()
    trace = load_trace(trace_path, scale_all)
    shapes = load_shapes(prices_path, capacity)
    if not shapes:
        raise SystemExit(f"--prices {prices_path}: no usable shape types")
    world = World(shapes, trace)
    unplaceable = sum(1 for j in trace.jobs if not world.fit[j.klass])
    bound = lower_bound(world)
    costwise = CostwisePolicy(world, max_wait_s)
    results = {
        "costwise": simulate(world, costwise),
        "first_fit": simulate(world, OrderedPolicy(world, world.first_fit, "naive first fit")),
        "size_match": simulate(world, OrderedPolicy(world, world.size_match, "naive size match")),
        "price_order": simulate(world, CostwisePolicy(world, max_wait_s, learn=False)),
    }
    cw, ff, sm, po = results["costwise"], results["first_fit"], results["size_match"], results["price_order"]
    ratio = lambda a, b: a / b if b else float("nan")  # noqa: E731
    return {
        "jobs": len(trace.jobs),
        "unplaceable": unplaceable,
        "placed": cw.placed,
        "skipped_pending": trace.skipped_pending,
        "job_classes": len(trace.class_names),
        "shape_types": len(shapes),
        "capacity_per_shape": capacity if capacity > 0 else "unlimited",
        "max_wait_s": max_wait_s,
        "spend_usd": cw.spend,
        "lower_bound_usd": bound,
        "naive_first_fit_usd": ff.spend,
        "naive_size_match_usd": sm.spend,
        "no_learning_usd": po.spend,
        "spend_over_lower_bound": ratio(cw.spend, bound),
        "first_fit_over_lower_bound": ratio(ff.spend, bound),
        "size_match_over_lower_bound": ratio(sm.spend, bound),
        "spend_over_first_fit": ratio(cw.spend, ff.spend),
        "spend_over_size_match": ratio(cw.spend, sm.spend),
        "spend_over_no_learning": ratio(cw.spend, po.spend),
        "mean_wait_s": statistics.fmean(cw.waits) if cw.waits else 0.0,
        "p95_wait_s": percentile(cw.waits, 0.95),
        "naive_first_fit_mean_wait_s": statistics.fmean(ff.waits) if ff.waits else 0.0,
        "naive_first_fit_p95_wait_s": percentile(ff.waits, 0.95),
        "naive_size_match_mean_wait_s": statistics.fmean(sm.waits) if sm.waits else 0.0,
        "naive_size_match_p95_wait_s": percentile(sm.waits, 0.95),
        "spilled_over": costwise.spills,
        "timed_out": cw.timed_out,
        "failed_in_trace": cw.failed,
        "replay_s": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trace", type=Path, default=default_path("trace-openb-pods.csv"))
    parser.add_argument("--prices", type=Path, default=default_path("prices-azure.csv"))
    parser.add_argument("--capacity", type=int, default=4, help="concurrent runs per shape type (0 = unlimited)")
    parser.add_argument("--max-wait", type=float, default=600.0, help="costwise max_wait, seconds")
    parser.add_argument("--scale-all", action="store_true", help="scale LS (service) pods' durations too")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.trace is None or args.prices is None:
        parser.error("--trace and --prices are required when ../shared/data is not there")
    for flag, path in (("--trace", args.trace), ("--prices", args.prices)):
        if not path.exists():
            parser.error(f"{flag} {path}: no such file")
    if args.capacity < 0:
        parser.error(f"--capacity {args.capacity}: must be >= 0")
    figures = run(args.trace, args.prices, args.capacity, args.max_wait, args.scale_all)
    report(figures, args.json)
    return figures


if __name__ == "__main__":
    main()
