"""Trace replay: costwise placement against baselines and an oracle on a real GPU-cluster trace.

    python bench/replay.py [--trace CSV] [--prices CSV] [--capacity N] [--max-wait S]
                           [--speed-table CSV] [--speed-noise SIGMA] [--seed N] [--seeds N] [--json]
                           [--spot [--interruptions-per-hour R] [--checkpoint-interval S] [--deadline-factor F]]

Both files default to ../shared/data/trace-openb-pods.csv and ../shared/data/prices-azure.csv when that
folder is there. Any SkyPilot-schema price catalog works, in any of the layouts clouds publish: it is
read by ``provider.prices`` (the loader the stacks use too), and the rows it could not use are
reported by reason (``catalog_skipped``). Bad input -- a trace or catalog without a column it needs, a
value that is not a number, a GPU trace against a catalog with no GPU shape, a bad speed table -- is
one line on stderr and exit 2.

The trace is the Alibaba "openb" GPU cluster trace (alibaba/clusterdata, cluster-trace-gpu-v2023), from
    Qizhen Weng, Lingyun Yang, Yinghao Yu, Wei Wang, Xiaochuan Tang, Guodong Yang, Liping Zhang.
    "Beware of Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent".
    USENIX ATC '23, pp. 995-1008.
Cite that paper wherever these figures are published.

What it is: a discrete-event simulation (heapq, one core) of the trace's pods arriving at their
creation_time onto the shape types of a price list, each type with finite capacity (``--capacity``
concurrent runs per shape type; 0 = unlimited), with a FIFO queue when no fitting shape has room.
The ways to place the same jobs on the same capacity:

* costwise -- the real placement core, ``scheduler.core.placement.place`` over a ``ShapeIndex`` /
  ``Snapshot``, with a per-job history {shape: (median duration, runs) of the last 200 successful runs},
  which the simulator fills from finished runs exactly like ``Store.duration_history`` does. It
  waits up to ``max_wait`` (default 600 s, the example in DESIGN.md and PlacementRequest's default)
  for its cheapest expected shape, then spills over (the core's own semantics; the simulator wakes a
  waiting job when a fitting slot frees, when its class learns something, and at its max_wait).
* oracle -- the same policy told each job's true (billed) duration on every fitting shape, as a
  history of very many runs. ``spend - oracle`` is what learning loses; ``oracle - lower bound`` is
  what contention costs even with perfect knowledge.
* no learning -- the same policy with learning off (``learn=False``: an empty history for ever):
  the cheapest hourly price that fits, waiting up to max_wait for it. The gap to costwise is what
  learning durations is worth.
* price first fit -- the cheapest-hourly fitting shape with a free slot; waits only when every
  fitting shape is full.
* naive first fit (file order) -- the first fitting shape with a free slot in price-file order (order
  of first appearance of the instance type); waits only when every fitting shape is full. A strawman
  on an alphabetical file; kept for comparison with earlier figures.
* naive size match -- the smallest fitting shape by resources (gpus, vcpus, memory), ties by price,
  with a free slot; ignores speed; waits only when every fitting shape is full. The fair baseline: what
  a person picking instance types by hand does.
* lower bound -- every job alone on its truly cheapest fitting shape (known true durations,
  unlimited capacity, no waiting). Per job it is <= any policy's cost, so it bounds every spend.

``--spot`` adds the spot market (``replay_spot``): costwise's runs replayed on-demand only, always on
spot, and by the product's deadline gate, with seeded preemptions (``ondemand_only_usd``,
``spot_policy_usd``, ``always_spot_usd``, ``deadline_misses``, ``always_spot_deadline_misses``,
``preemptions``, ``lost_hours``).

The hidden truth (``replay_truth``): a job's duration on a shape is its trace duration divided by
the shape's relative speed for the job's class: ``--speed-table`` (``type,relative_speed``; default
bench/replay-speeds.csv: datasheet peak ratios for GPUs, Azure ACU for CPU families) times a seeded
log-normal factor per (job class, type) with sigma ``--speed-noise`` (default 0.25), ``--seed``
(default 0). The simulator knows the speeds; the policy does not -- it only sees prices and resources,
carries the product's own prior (scheduler/core/priors.py, which is not this table), and must learn
per-shape durations from finished runs. ``--seeds N`` replays seeds seed .. seed+N-1 and reports
each figure's median (and ``*_min`` / ``*_max`` of the headline ratios).

Where each policy's money goes (``gap_*``; every spend minus the lower bound, job by job at its start):
* shape choice -- its cost on the chosen shape minus on the truly cheapest fitting shape that had a
  free slot at that moment: money lost to not knowing (or not using) which shape is cheapest;
* spill-over -- that shape's cost minus the truly cheapest fitting shape's (busy then): money lost
  to capacity, i.e. to not waiting (longer) for the best shape;
* waiting -- ``gap_waiting_job_hours``: what jobs paid in time in the queue (the simulator bills
  compute only, so waiting costs no money here).

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
  qos LS pods are latency-sensitive services (per the paper): their lifetime is set by their owner,
  not the hardware, so their duration does not scale (``--scale-all`` scales them too). Each class
  carries its qos as a label (``qos: LS``), as a person declaring it as a job might; the product
  pools its prior that a job scales over the jobs sharing its labels (core/fleet_priors.LabelPools),
  learning from their runs what a label is worth -- it is never told what LS means.
* Shapes: one per instance type at its cheapest on-demand price over regions (``PriceCatalog.
  cheapest``; a spot price, and Vast's SpotPrice 0 which means none, is not used). Left out of the
  replay and counted in ``replay_left_out``: accelerators that are not NVIDIA GPUs (AMD Instinct MI*,
  Radeon, Gaudi, Inferentia, Trainium -- the trace's pods are CUDA pods). Every other shape is kept;
  a type the speed table does not list runs at 1.0.
"""

from __future__ import annotations

import argparse
import heapq
import math
import statistics
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA, report  # noqa: E402
from replay_trace import Job, Trace, load_trace  # noqa: E402,F401
from replay_spot import DEFAULT_CHECKPOINT_INTERVAL_S, DEFAULT_DEADLINE_FACTOR, PlacedRun, SpotOptions, replay_markets  # noqa: E402
from replay_truth import DEFAULT_NOISE, DEFAULT_TABLE, Truth, TruthError, check_noise, load_speed_table  # noqa: E402,F401

from provider.prices import PriceCatalog, load_catalog, shape_name  # noqa: E402
from scheduler.core.fleet_priors import LabelPools, fleet_scaling, fleet_slope, history_evidence  # noqa: E402
from scheduler.core.errors import UserError  # noqa: E402
from scheduler.core.instance_families import cpu_family  # noqa: E402
from scheduler.core.placement import PlacementRequest, ShapeIndex, place  # noqa: E402
from scheduler.core.specs import Requirements, ShapeSpec  # noqa: E402,F401
from scheduler.core.waits import shape_wait  # noqa: E402


MAX_RUNTIME_S = 24 * 3600.0  # the daemon's default max_runtime
HISTORY_RUNS = 200  # as scheduler.store.store.HISTORY_RUNS: finished runs per job looked at
UNLIMITED = 10**9
EPOCH = datetime(2023, 1, 1, tzinfo=timezone.utc)
NOT_CUDA = ("MI", "RADEON", "GAUDI", "INFERENTIA", "TRAINIUM")  # accelerator names: not NVIDIA GPUs


class ReplayInputError(UserError):
    """Inputs that load but cannot make an experiment (a GPU trace and no GPU shape)."""


@dataclass(slots=True)
class ShapeType:
    spec: ShapeSpec
    order: int  # first appearance in the price file
    instance_type: str
    gpu_type: str | None
    cpu_family: str | None


def shape_types(catalog: PriceCatalog, capacity: int) -> tuple[list[ShapeType], Counter]:
    """The replay's shape types (see the module docstring) and what it left out, by reason."""
    cap = capacity if capacity > 0 else UNLIMITED
    out, left_out = [], Counter()
    for offer in catalog.cheapest():
        if offer.gpu_type and offer.gpu_type.upper().startswith(NOT_CUDA):
            left_out["not_an_nvidia_gpu"] += 1
            continue
        spec = ShapeSpec(name=shape_name(offer.instance_type), vcpus=offer.vcpus, memory_gib=offer.memory_gib,
                         gpus=offer.gpus, gpu_type=offer.gpu_type, gpu_memory_gib=offer.gpu_memory_gib,
                         price_per_hour=offer.price_per_hour, spot_price_per_hour=offer.spot_price_per_hour,
                         capacity=cap)
        out.append(ShapeType(spec, offer.order, offer.instance_type, offer.gpu_type, cpu_family(offer.host)))
    return out, left_out


class World:
    """Shapes, the truth about speeds, and per-class fit lists (shared by every policy)."""

    def __init__(self, shapes: list[ShapeType], trace: Trace, truth: Truth):
        self.shapes = shapes
        self.index = ShapeIndex([s.spec for s in shapes])  # sorted by (price, name)
        n = len(self.index.shapes)
        by_name = {s.spec.name: s for s in shapes}
        self.types = [by_name[s.name] for s in self.index.shapes]  # index order
        self.price = np.array([s.price_per_hour for s in self.index.shapes], dtype=float)
        self.capacity = [s.capacity for s in self.index.shapes]
        self.capacity_array = np.array(self.capacity, dtype=float)
        self.trace = trace
        self.fit: dict[int, list[int]] = {}  # class -> fitting positions, index (price) order
        self.fit_array: dict[int, np.ndarray] = {}
        self.first_fit: dict[int, list[int]] = {}
        self.size_match: dict[int, list[int]] = {}
        self.speed: dict[int, np.ndarray] = {}  # class -> true speed on each fitting position
        self.fitting_classes: list[set[int]] = [set() for _ in range(n)]
        vcpus = np.array([s.vcpus for s in self.index.shapes])
        memory = np.array([s.memory_gib for s in self.index.shapes])
        gpus = np.array([s.gpus for s in self.index.shapes])
        for job in trace.jobs:
            if job.klass in self.fit:
                continue
            r = job.req
            fit = np.flatnonzero((vcpus >= r.cpus) & (memory >= r.memory_gib) & (gpus >= r.gpus))
            pos = fit.tolist()
            self.fit[job.klass], self.fit_array[job.klass] = pos, fit
            self.first_fit[job.klass] = sorted(pos, key=lambda i: self.types[i].order)
            shapes = self.index.shapes
            self.size_match[job.klass] = sorted(
                pos, key=lambda i: (shapes[i].gpus, shapes[i].vcpus, shapes[i].memory_gib, self.price[i], i))
            key = trace.class_keys[job.klass]
            self.speed[job.klass] = np.array([
                truth.speed(key, job.gpu, self.types[i].gpu_type, self.types[i].cpu_family, self.types[i].instance_type)
                for i in pos], dtype=float)
            for i in pos:
                self.fitting_classes[i].add(job.klass)
        self.where = {k: {p: j for j, p in enumerate(pos)} for k, pos in self.fit.items()}

    def true_seconds(self, job: Job, pos: int) -> float:
        """The true duration of the job on that shape (uncapped) -- the truth the policy never sees."""
        if not job.scales:
            return job.base_s
        return job.base_s / float(self.speed[job.klass][self.where[job.klass][pos]])

    def costs(self, job: Job) -> np.ndarray:
        """The job's true cost on each of its fitting positions (``fit_array`` order), billed up to 24 h."""
        seconds = job.base_s / self.speed[job.klass] if job.scales else np.full(len(self.fit[job.klass]), job.base_s)
        return self.price[self.fit_array[job.klass]] * np.minimum(seconds, MAX_RUNTIME_S) / 3600.0

    def cost(self, job: Job, pos: int) -> float:
        return float(self.price[pos]) * min(self.true_seconds(job, pos), MAX_RUNTIME_S) / 3600.0


@dataclass
class Outcome:
    spend: float = 0.0
    waits: list[float] = field(default_factory=list)
    placed: int = 0
    spilled: int = 0
    timed_out: int = 0
    failed: int = 0
    per_class_shape: dict = field(default_factory=dict)
    gap_shape_choice: float = 0.0  # chosen shape vs the truly cheapest one with a free slot then
    gap_spill_over: float = 0.0  # that one vs the truly cheapest fitting shape (busy then)
    placed_runs: list = field(default_factory=list)  # PlacedRun of each start, when asked (--spot)


def lower_bound(world: World) -> float:
    return sum(float(world.costs(job).min()) for job in world.trace.jobs if world.fit[job.klass])


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

    def expected_s(self, job: Job, pos: int) -> float | None:
        """What the policy expected this run to take when it placed it (None: it keeps no estimate)."""
        return None

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
        self.scaling: dict[int, float] = {}  # job class -> posterior weight that it scales (jobs that can tell)
        self.slopes: dict[int, tuple[float, float]] = {}  # job class -> (weight, its runs' slope)
        self.pools = LabelPools()  # the same weights, pooled by the classes' labels

    def _request(self, job: Job) -> PlacementRequest:
        req = self.requests.get(job.idx)
        if req is None:
            name = self.world.trace.class_names[job.klass]
            req = self.requests[job.idx] = PlacementRequest(
                job=name, requirements=job.req, max_wait_s=self.max_wait_s,
                queued_at=EPOCH + timedelta(seconds=job.arrival), in_flight=self.flying.setdefault(job.klass, {}),
                # the scaling share among the classes alike by labels (the trace's qos), shrunk to the fleet's;
                # the slope: None (the core's default) until a job's runs spoke
                scaling_prior=self.pools.scaling(name, self.world.trace.class_labels[job.klass],
                                                 fleet_scaling(self.scaling.values())),
                slope_prior=fleet_slope(self.slopes.values()))
        return req

    def _expected_waits(self, job: Job, now: float) -> None:
        cap, used, wait_s = self.world.capacity, self.in_use, self.snapshot.wait_s
        mine = self.waiting_for.get(job.idx)
        for pos in self.world.fit[job.klass]:
            if used[pos] < cap[pos]:
                continue
            running = [(now - start, expected) for start, expected in self.running.get(pos, {}).values()]
            wait_s[pos] = shape_wait(int(cap[pos] - used[pos]), running, self.waiters[pos] - (mine == pos))

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

    def expected_s(self, job: Job, pos: int) -> float | None:
        return self.running.get(pos, {}).get(job.idx, (None, None))[1]

    def _forget_waiting(self, job: Job) -> None:
        target = self.waiting_for.pop(job.idx, None)
        if target is not None:
            self.waiters[target] -= 1

    def _set(self, pos: int, delta: int) -> None:
        name = self.world.index.shapes[pos].name
        self.in_use[pos] += delta
        if delta > 0:
            self.snapshot.take(name, delta)
        else:
            self.snapshot.release(name, -delta)

    def started(self, pos: int) -> None:
        self._set(pos, +1)

    def finished(self, job: Job, pos: int, seconds: float, ok: bool) -> None:
        self._set(pos, -1)
        req = self.requests.pop(job.idx, None)
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
        # the fleet's priors (core/fleet_priors.py, as the daemon's): what each job whose runs can tell says
        evidence = history_evidence(req, self.world.index, self.history[job.klass]) if req else None
        if evidence is not None:
            self.scaling[job.klass] = evidence.scaling
            trace = self.world.trace
            self.pools.set(trace.class_names[job.klass], trace.class_labels[job.klass], evidence.scaling)
            if evidence.slope is not None:
                self.slopes[job.klass] = evidence.slope

    def wake_at(self, job: Job) -> float | None:
        return job.arrival + self.max_wait_s


class OraclePolicy(CostwisePolicy):
    """The product policy told the truth: each job's true billed duration on every fitting shape, as
    the median of a very long history. What perfect learning would reach; its gap is contention."""

    name = "oracle"
    KNOWN_RUNS = 10**6

    def __init__(self, world: World, max_wait_s: float):
        super().__init__(world, max_wait_s, learn=False)
        self.known: dict[int, dict[str, tuple[float, int]]] = {}

    def choose(self, job: Job, now: float) -> int | None:
        truth = self.known.get(job.idx)
        if truth is None:
            world = self.world
            seconds = job.base_s / world.speed[job.klass] if job.scales else np.full(len(world.fit[job.klass]), job.base_s)
            names = [world.index.shapes[p].name for p in world.fit[job.klass]]
            runs = self.KNOWN_RUNS
            truth = self.known[job.idx] = {n: (s, runs) for n, s in zip(names, np.minimum(seconds, MAX_RUNTIME_S).tolist())}
        self.history[job.klass] = truth
        return super().choose(job, now)

    def finished(self, job: Job, pos: int, seconds: float, ok: bool) -> None:
        self.known.pop(job.idx, None)
        super().finished(job, pos, seconds, ok)


def simulate(world: World, policy: Policy, record: bool = False) -> Outcome:
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
    used = np.zeros(len(world.types))  # slots in use, for the gap decomposition (whatever the policy keeps)

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
        fit, costs = world.fit_array[job.klass], world.costs(job)
        free = used[fit] < world.capacity_array[fit]
        used[pos] += 1
        chosen = float(costs[world.where[job.klass][pos]])
        best_free = min(float(costs[free].min()) if free.any() else chosen, chosen)
        out.gap_shape_choice += chosen - best_free
        out.gap_spill_over += best_free - float(costs.min())
        policy.started(pos)
        true = world.true_seconds(job, pos)
        runtime = min(true, MAX_RUNTIME_S)
        out.spend += float(world.price[pos]) * runtime / 3600.0
        out.waits.append(now - job.arrival)
        out.placed += 1
        timed_out = true > MAX_RUNTIME_S
        out.timed_out += timed_out
        out.failed += job.failed
        key = (job.klass, pos)
        out.per_class_shape[key] = out.per_class_shape.get(key, 0) + 1
        if record:
            spec = world.index.shapes[pos]
            out.placed_runs.append(PlacedRun(job.idx, job.arrival, now, runtime, policy.expected_s(job, pos),
                                             spec.price_per_hour, spec.spot_price_per_hour, spec.gpus))
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
            used[pos] -= 1
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


@dataclass
class Inputs:
    trace: Trace
    catalog: PriceCatalog
    shapes: list[ShapeType]
    left_out: Counter


def load_inputs(trace_path: Path, prices_path: Path, capacity: int, scale_all: bool = False) -> Inputs:
    """The trace and the replay's shapes; ReplayInputError when they cannot make an experiment."""
    trace = load_trace(trace_path, scale_all)
    catalog = load_catalog(prices_path)
    shapes, left_out = shape_types(catalog, capacity)
    skipped = ", ".join(f"{k} {v}" for k, v in sorted((catalog.skipped + left_out).items())) or "nothing"
    if not shapes:
        raise ReplayInputError(f"--prices {prices_path}: no usable shape types (rows skipped: {skipped})")
    gpu_pods = sum(1 for job in trace.jobs if job.gpu)
    if gpu_pods and not any(s.spec.gpus > 0 for s in shapes):
        raise ReplayInputError(f"--prices {prices_path}: the trace asks for GPUs ({gpu_pods} pods) but the catalog "
                               f"yielded no GPU shape ({len(shapes)} CPU shapes; rows skipped: {skipped})")
    return Inputs(trace, catalog, shapes, left_out)


def unplaceable_reasons(world: World) -> Counter:
    """Per job no shape fits: the first of gpus, cpus, memory_gib that no shape meeting the ones
    before it has (a 64-CPU 8-GPU pod on a catalog whose 8-GPU shapes have 32 vCPUs: cpus)."""
    shapes = world.index.shapes
    have = {"gpus": np.array([s.gpus for s in shapes]), "cpus": np.array([s.vcpus for s in shapes]),
            "memory_gib": np.array([s.memory_gib for s in shapes])}
    reasons: Counter = Counter()
    for job in world.trace.jobs:
        if world.fit[job.klass]:
            continue
        left = np.arange(len(shapes))
        for dim, need in (("gpus", job.req.gpus), ("cpus", job.req.cpus), ("memory_gib", job.req.memory_gib)):
            left = left[have[dim][left] >= need]
            if not left.size:
                reasons[dim] += 1
                break
    return reasons


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def replay(inputs: Inputs, capacity: int, max_wait_s: float, truth: Truth, spot: SpotOptions | None = None) -> dict:
    """Every policy over one world (one draw of the truth); the figures of the module docstring."""
    started = time.perf_counter()
    trace, shapes = inputs.trace, inputs.shapes
    world = World(shapes, trace, truth)
    reasons = unplaceable_reasons(world)
    bound = lower_bound(world)
    costwise = CostwisePolicy(world, max_wait_s)
    cw = simulate(world, costwise, record=spot is not None)
    oracle = simulate(world, OraclePolicy(world, max_wait_s))
    nl = simulate(world, CostwisePolicy(world, max_wait_s, learn=False))
    pf = simulate(world, OrderedPolicy(world, world.fit, "price first fit"))
    ff = simulate(world, OrderedPolicy(world, world.first_fit, "naive first fit (file order)"))
    sm = simulate(world, OrderedPolicy(world, world.size_match, "naive size match"))
    ratio = lambda a, b: a / b if b else float("nan")  # noqa: E731
    return {
        "jobs": len(trace.jobs),
        "gpu_jobs": sum(1 for j in trace.jobs if j.gpu),
        "unplaceable": sum(reasons.values()),
        "unplaceable_by_reason": dict(sorted(reasons.items())),
        "placed": cw.placed,
        "skipped_pending": trace.skipped_pending,
        "job_classes": len(trace.class_names),
        "shape_types": len(shapes),
        "gpu_shapes": sum(1 for s in shapes if s.spec.gpus > 0),
        "catalog_skipped": dict(sorted(inputs.catalog.skipped.items())),
        "replay_left_out": dict(sorted(inputs.left_out.items())),
        "capacity_per_shape": capacity if capacity > 0 else "unlimited",
        "max_wait_s": max_wait_s,
        "speed_noise": truth.sigma,
        "seed": truth.seed,
        "spend_usd": cw.spend,
        "oracle_usd": oracle.spend,
        "no_learning_usd": nl.spend,
        "price_first_fit_usd": pf.spend,
        "naive_first_fit_usd": ff.spend,
        "naive_first_fit_order": "file",
        "naive_size_match_usd": sm.spend,
        "lower_bound_usd": bound,
        "spend_over_lower_bound": ratio(cw.spend, bound),
        "oracle_over_lower_bound": ratio(oracle.spend, bound),
        "no_learning_over_lower_bound": ratio(nl.spend, bound),
        "price_first_fit_over_lower_bound": ratio(pf.spend, bound),
        "first_fit_over_lower_bound": ratio(ff.spend, bound),
        "size_match_over_lower_bound": ratio(sm.spend, bound),
        "spend_over_oracle": ratio(cw.spend, oracle.spend),
        "spend_over_first_fit": ratio(cw.spend, ff.spend),
        "spend_over_size_match": ratio(cw.spend, sm.spend),
        "spend_over_no_learning": ratio(cw.spend, nl.spend),
        "saving_vs_size_match": 1 - ratio(cw.spend, sm.spend),
        "saving_vs_no_learning": 1 - ratio(cw.spend, nl.spend),
        "gap_usd": cw.spend - bound,
        "gap_shape_choice_usd": cw.gap_shape_choice,
        "gap_spill_over_usd": cw.gap_spill_over,
        "gap_waiting_job_hours": sum(cw.waits) / 3600.0,
        "learning_loss_usd": cw.spend - oracle.spend,
        "contention_usd": oracle.spend - bound,
        "oracle_gap_shape_choice_usd": oracle.gap_shape_choice,
        "oracle_gap_spill_over_usd": oracle.gap_spill_over,
        "oracle_gap_waiting_job_hours": sum(oracle.waits) / 3600.0,
        "mean_wait_s": _mean(cw.waits),
        "p95_wait_s": percentile(cw.waits, 0.95),
        "mean_wait_over_max_wait": ratio(_mean(cw.waits), max_wait_s),
        "oracle_mean_wait_s": _mean(oracle.waits),
        "no_learning_mean_wait_s": _mean(nl.waits),
        "price_first_fit_mean_wait_s": _mean(pf.waits),
        "naive_first_fit_mean_wait_s": _mean(ff.waits),
        "naive_first_fit_p95_wait_s": percentile(ff.waits, 0.95),
        "naive_size_match_mean_wait_s": _mean(sm.waits),
        "naive_size_match_p95_wait_s": percentile(sm.waits, 0.95),
        "spilled_over": costwise.spills,
        "timed_out": cw.timed_out,
        "failed_in_trace": cw.failed,
        **(replay_markets(cw.placed_runs, interruptions_per_hour=spot.interruptions_per_hour,
                          checkpoint_interval_s=spot.checkpoint_interval_s, deadline_factor=spot.deadline_factor,
                          seed=truth.seed) if spot is not None else {}),
        "replay_s": time.perf_counter() - started,
    }


HEADLINE = ("spend_over_lower_bound", "spend_over_oracle", "saving_vs_size_match", "saving_vs_no_learning",
            "mean_wait_over_max_wait")


def medians(runs: list[dict]) -> dict:
    """Each numeric figure's median over the runs (seeds), the headline ratios' min and max too."""
    out = {}
    for key, value in runs[0].items():
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        out[key] = statistics.median(r[key] for r in runs) if numeric and key != "seed" else value
    out["seed"] = [r["seed"] for r in runs]
    out["replay_s"] = sum(r["replay_s"] for r in runs)
    for key in HEADLINE:
        out[f"{key}_min"] = min(r[key] for r in runs)
        out[f"{key}_max"] = max(r[key] for r in runs)
    return out


def run(trace_path: Path, prices_path: Path, capacity: int = 4, max_wait_s: float = 600.0,
        scale_all: bool = False, speed_table: Path | None = None, speed_noise: float = DEFAULT_NOISE,
        seed: int = 0, seeds: int = 1, spot: SpotOptions | None = None) -> dict:
    """The replay's figures (medians over `seeds` draws of the noise when seeds > 1)."""
    table, sigma = load_speed_table(speed_table or DEFAULT_TABLE), check_noise(speed_noise)
    inputs = load_inputs(trace_path, prices_path, capacity, scale_all)
    runs = [replay(inputs, capacity, max_wait_s, Truth(table, sigma, s), spot) for s in range(seed, seed + seeds)]
    figures = runs[0] if seeds == 1 else medians(runs)
    figures["speed_table"] = str(speed_table or DEFAULT_TABLE)
    return figures


def printable(figures: dict) -> dict:
    """`name: value` lines for people: a dict figure becomes its total and one line per entry."""
    out = {}
    for key, value in figures.items():
        if isinstance(value, dict):
            out[key] = sum(value.values())
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's usage block is not one line
        fail(message)


def fail(message: str):
    print(f"replay: {message}", file=sys.stderr)
    raise SystemExit(2)


def _check(flag: str, value: float, low: float, high: float) -> None:
    if not (math.isfinite(value) and low <= value <= high):
        fail(f"{flag} {value!r}: must be a number in [{low:g}, {high:g}]")


def main(argv: list[str] | None = None) -> dict:
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trace", type=Path, default=default_path("trace-openb-pods.csv"))
    parser.add_argument("--prices", type=Path, default=default_path("prices-azure.csv"))
    parser.add_argument("--capacity", type=int, default=4, help="concurrent runs per shape type (0 = unlimited)")
    parser.add_argument("--max-wait", type=float, default=600.0, help="costwise max_wait, seconds")
    parser.add_argument("--scale-all", action="store_true", help="scale LS (service) pods' durations too")
    parser.add_argument("--speed-table", type=Path, default=None,
                        help=f"type,relative_speed CSV: the hidden truth (default {DEFAULT_TABLE.name})")
    parser.add_argument("--speed-noise", type=float, default=DEFAULT_NOISE,
                        help=f"sigma of the per-class log-normal speed factor (default {DEFAULT_NOISE:g})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the speed noise (default 0)")
    parser.add_argument("--seeds", type=int, default=1, help="replay this many seeds from --seed; report medians")
    parser.add_argument("--spot", action="store_true",
                        help="also replay the runs on spot: on-demand only, always spot, costwise's deadline gate")
    parser.add_argument("--interruptions-per-hour", type=float, default=None,
                        help="the spot market's preemption rate (default: the product's documented default by shape)")
    parser.add_argument("--checkpoint-interval", type=float, default=DEFAULT_CHECKPOINT_INTERVAL_S,
                        help=f"seconds of progress between a run's checkpoints (default {DEFAULT_CHECKPOINT_INTERVAL_S:g})")
    parser.add_argument("--deadline-factor", type=float, default=DEFAULT_DEADLINE_FACTOR,
                        help=f"deadline = this x the run's true duration after queueing (default {DEFAULT_DEADLINE_FACTOR:g})")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.trace is None or args.prices is None:
        fail("--trace and --prices are required when ../shared/data is not there")
    for flag, path in (("--trace", args.trace), ("--prices", args.prices), ("--speed-table", args.speed_table)):
        if path is not None and not path.is_file():
            fail(f"{flag} {path}: no such file")
    _check("--capacity", args.capacity, 0, 10**6)
    _check("--max-wait", args.max_wait, 0, 30 * 86400)
    _check("--seed", args.seed, 0, 2**32 - 1)
    _check("--seeds", args.seeds, 1, 100)
    if args.interruptions_per_hour is not None:
        _check("--interruptions-per-hour", args.interruptions_per_hour, 0, 60)
    _check("--checkpoint-interval", args.checkpoint_interval, 0, 30 * 86400)
    _check("--deadline-factor", args.deadline_factor, 1, 1000)
    spot = SpotOptions(args.interruptions_per_hour, args.checkpoint_interval, args.deadline_factor) if args.spot else None
    try:
        figures = run(args.trace, args.prices, args.capacity, args.max_wait, args.scale_all, args.speed_table,
                      args.speed_noise, args.seed, args.seeds, spot)
    except UserError as error:
        fail(str(error))
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read an input: {error}")
    report(figures if args.json else printable(figures), args.json)
    return figures


if __name__ == "__main__":
    main()
