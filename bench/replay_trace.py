"""The replay's jobs: pods of an openb-style trace CSV (alibaba/clusterdata cluster-trace-gpu-v2023).

Columns are found by name in any order; extra columns are ignored. Required: cpu_milli,
memory_mib, num_gpu, creation_time, deletion_time. Optional: scheduled_time (without it every pod
counts as scheduled at creation), gpu_milli (default a whole GPU), qos, pod_phase, name.
A missing column or a value that is not a finite number >= 0 is a ``TraceError`` of one line.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from scheduler.core.errors import UserError
from scheduler.core.specs import Requirements

REQUIRED = ("cpu_milli", "memory_mib", "num_gpu", "creation_time", "deletion_time")


class TraceError(UserError):
    """The trace file is not one the replay can read."""


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
    class_keys: list[str]  # the requirement signature: what seeds a class's speed noise
    class_labels: list[dict[str, str]]  # what a person declaring the class as a job would label it: its qos
    skipped_pending: int


def _number(path: Path, line: int, column: str, text: str | None, default: float | None = None) -> float:
    if text is None or not text.strip():
        if default is not None:
            return default
        raise TraceError(f"--trace {path} line {line}: {column} is empty")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise TraceError(f"--trace {path} line {line}: {column}={text!r} is not a finite number >= 0")
    return value


def load_trace(path: Path, scale_all: bool = False) -> Trace:
    jobs, classes, names, keys, labels, pending = [], {}, [], [], [], 0
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        header = [h for h in (reader.fieldnames or []) if h]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise TraceError(f"--trace {path}: missing column {missing[0]!r} (columns found: "
                             f"{', '.join(header) or 'none'}); an openb pod list has {', '.join(REQUIRED)}")
        has_scheduled = "scheduled_time" in header
        for line, row in enumerate(reader, start=2):
            sched = row.get("scheduled_time") or ""
            if has_scheduled and not sched.strip():
                pending += 1  # never ran in the source cluster
                continue
            num = lambda column, default=None: _number(path, line, column, row.get(column), default)  # noqa: E731
            created, deleted = num("creation_time"), num("deletion_time")
            start = num("scheduled_time") if has_scheduled else created
            cpu_milli, mem_mib = int(num("cpu_milli")), int(num("memory_mib"))
            num_gpu = int(num("num_gpu"))
            gpu_milli = int(num("gpu_milli", 1000.0 if num_gpu else 0.0))
            qos = (row.get("qos") or "").strip()
            gpus = float(num_gpu)
            if num_gpu == 1 and 0 < gpu_milli < 1000:
                gpus = gpu_milli / 1000
            sig = (cpu_milli, mem_mib, num_gpu, gpu_milli, qos)
            if sig not in classes:
                classes[sig] = len(classes)
                names.append(f"c{len(names)}-{cpu_milli / 1000:g}cpu-{mem_mib / 1024:.3g}g-{gpus:g}gpu-{qos or 'na'}")
                keys.append("/".join(map(str, sig)))
                labels.append({"qos": qos} if qos else {})
            try:
                req = Requirements(cpus=cpu_milli / 1000, memory_gib=mem_mib / 1024, gpus=gpus)
            except ValidationError as error:
                problem = error.errors()[0]
                raise TraceError(f"--trace {path} line {line}: requirements.{problem['loc'][0]}="
                                 f"{problem['input']!r}: {problem['msg']}") from None
            jobs.append(Job(len(jobs), row.get("name") or str(len(jobs)), classes[sig], created,
                            max(deleted - start, 1.0), scale_all or qos != "LS",
                            (row.get("pod_phase") or "") == "Failed", num_gpu > 0, req))
    jobs.sort(key=lambda j: (j.arrival, j.idx))
    return Trace(jobs, names, keys, labels, pending)
