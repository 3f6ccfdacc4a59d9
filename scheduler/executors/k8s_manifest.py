"""The Kubernetes Job of a run, as plain data (pure: no client, no I/O).

``job_manifest`` is what the executor posts and what ``--dry-run`` prints; the tests check it with
the official client's models. The rules:

- ``activeDeadlineSeconds`` = the run's max runtime (the engine enforces it too, by deleting the Job),
  ``backoffLimit`` = the job's retries, ``ttlSecondsAfterFinished`` (default 1 h), ``restartPolicy: Never``.
- Requests = the job's requirements, never more than the shape's ``allocatable`` (what a node of it can
  really give once kubelet and system reservations are taken); limits = the shape's vCPUs and memory,
  plus ``nvidia.com/gpu`` when the shape has GPUs. Billing stays per shape.
- Shape labels become the pod's ``nodeSelector``, except labels named ``toleration/<key>`` which become
  tolerations. Their value is ``[VALUE][:EFFECT]``: ``"present:NoSchedule"`` tolerates
  ``<key>=present:NoSchedule``, ``":NoSchedule"`` any value of ``<key>`` with that effect, ``""`` any
  value and effect (operator ``Exists``).
- A shape with ``kueue_queue``: the Job is created suspended with ``kueue.x-k8s.io/queue-name`` and
  Kueue's max-execution-time label from the max runtime; Kueue admits it, costwise chose the flavor.
- Labels ``costwise.io/run-id``, ``costwise.io/job``, ``app.kubernetes.io/managed-by: costwise`` and the
  job's labels that are valid Kubernetes labels (all of them also in the ``costwise.io/labels``
  annotation) link Job and pod to the run.
- Secret env values go into a Secret owned by the Job (``secretKeyRef``), never into the manifest.
- The run's folders are mounted at the same path: ``hostPath`` volumes by default, or one
  PersistentVolumeClaim mounted at COSTWISE_HOME when ``home_claim`` / ``COSTWISE_K8S_HOME_CLAIM`` names
  one. A job mount whose source is ``pvc:NAME`` mounts that claim; other sources are ``hostPath``.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from ..core.errors import CostwiseError
from .base import LaunchSpec

TOLERATION_PREFIX = "toleration/"
RUN_LABEL = "costwise.io/run-id"
JOB_LABEL = "costwise.io/job"
LOG_ANNOTATION = "costwise.io/log"  # where the run's log goes: lets a restart adopt from the Job alone
MANAGED = {"app.kubernetes.io/managed-by": "costwise"}
# Kueue's Job labels (kueue.x-k8s.io/v1beta1): the LocalQueue that admits the Job, and the longest it may run once admitted.
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_MAX_EXEC_LABEL = "kueue.x-k8s.io/max-exec-time-seconds"
GPU_RESOURCE = "nvidia.com/gpu"
CONTAINER = "run"
DEFAULT_TTL_S = 3600
HOST_ONLY_ENV = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR"})
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def job_name(run_id: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", f"costwise-{run_id}".lower()).strip("-")
    return name[:63].rstrip("-")


def job_manifest(spec: LaunchSpec, namespace: str, ttl_s: int = DEFAULT_TTL_S, home_claim: str | None = None) -> dict[str, Any]:
    """The batch/v1 Job for a run, as the API server takes it (camelCase)."""
    if not spec.image:
        raise CostwiseError(f"job {spec.job!r}: a kubernetes shape needs the job's `image`")
    name = job_name(spec.run_id)
    labels = run_labels(spec)
    node_selector, tolerations = scheduling(spec.shape.labels)
    volumes, mounts = volumes_for(spec, home_claim)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{
            "name": CONTAINER,
            "image": spec.image,
            "command": list(spec.argv),
            "workingDir": str(spec.workdir),
            "env": env_for(spec, name),
            "resources": resources_for(spec.shape, spec.requirements),
            "volumeMounts": mounts,
        }],
        "volumes": volumes,
    }
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if tolerations:
        pod_spec["tolerations"] = tolerations
    annotations = {
        RUN_LABEL: spec.run_id, JOB_LABEL: spec.job, "costwise.io/shape": spec.shape.name,
        "costwise.io/labels": json.dumps(spec.labels, sort_keys=True), LOG_ANNOTATION: str(spec.log_path),
    }
    deadline_s = max(math.ceil(spec.max_runtime_s), 1)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": {
            "activeDeadlineSeconds": deadline_s,
            "backoffLimit": spec.retries,
            "ttlSecondsAfterFinished": ttl_s,
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
        },
    }
    if spec.shape.kueue_queue:
        queue_for_kueue(job, spec.shape.kueue_queue, deadline_s)
    return job


def queue_for_kueue(job: dict[str, Any], queue: str, max_exec_s: int) -> None:
    """Created suspended in ``queue``: Kueue unsuspends the Job once its quota admits it. The shape's
    node selector stays, so Kueue can only assign the flavor whose nodeLabels are the shape's: costwise's choice."""
    job["metadata"]["labels"] = {**job["metadata"]["labels"], KUEUE_QUEUE_LABEL: queue, KUEUE_MAX_EXEC_LABEL: str(max_exec_s)}
    job["spec"]["suspend"] = True


def run_labels(spec: LaunchSpec) -> dict[str, str]:
    labels = {k: v for k, v in spec.labels.items()
              if k not in ("costwise-run-id", "costwise-job") and valid_label(k, v)}
    labels.update(MANAGED)
    labels[RUN_LABEL] = spec.run_id
    if valid_label(JOB_LABEL, spec.job):
        labels[JOB_LABEL] = spec.job
    return labels


def valid_label(key: str, value: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return (0 < len(name) <= 63 and bool(_LABEL_NAME.match(name))
            and len(value) <= 63 and bool(_LABEL_VALUE.match(value)))


def scheduling(shape_labels: dict[str, str]) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The shape's labels as a node selector, and its ``toleration/<key>`` labels as tolerations."""
    selector, tolerations = {}, []
    for key, value in sorted(shape_labels.items()):
        if not key.startswith(TOLERATION_PREFIX):
            selector[key] = value
            continue
        taint_value, _, effect = value.partition(":")
        toleration = {"key": key[len(TOLERATION_PREFIX):]}
        if taint_value:
            toleration.update(operator="Equal", value=taint_value)
        else:
            toleration["operator"] = "Exists"
        if effect:
            toleration["effect"] = effect
        tolerations.append(toleration)
    return selector, tolerations


def resources_for(shape, requirements=None) -> dict[str, dict[str, str]]:
    """Requests: the job's requirements (the whole shape without them), never more than a node of the
    shape can give pods (its ``allocatable``, else its size), so the pod is schedulable on such a node.
    Limits: the shape, as billed; GPUs as ``nvidia.com/gpu`` limits (Kubernetes requests them alike)."""
    room = shape.allocatable or shape
    cpus = requirements.cpus if requirements is not None else shape.vcpus
    memory_gib = requirements.memory_gib if requirements is not None else shape.memory_gib
    requests = {"cpu": cpu_quantity(min(cpus, room.vcpus), down=True),
                "memory": memory_quantity(min(memory_gib, room.memory_gib), down=True)}
    limits = {"cpu": cpu_quantity(shape.vcpus), "memory": memory_quantity(shape.memory_gib)}
    if shape.gpus > 0:
        limits[GPU_RESOURCE] = str(math.ceil(shape.gpus))
    return {"requests": requests, "limits": limits}


def env_for(spec: LaunchSpec, secret_name: str) -> list[dict[str, Any]]:
    at = {m.source: m.path for m in spec.mounts}
    env = []
    for key, value in sorted(spec.env.items()):
        if key in HOST_ONLY_ENV:
            continue
        if key in spec.secret_names:
            env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}})
            continue
        if key.startswith("COSTWISE_MOUNT_") and value in at:
            value = at[value]
        env.append({"name": key, "value": value})
    return env


def volumes_for(spec: LaunchSpec, home_claim: str | None) -> tuple[list[dict], list[dict]]:
    """The run's folders at the same path (hostPath, or one claim at COSTWISE_HOME) and the job's mounts."""
    folders = [str(spec.workdir), *(str(spec.dirs[k]) for k in ("artifacts", "input", "output", "checkpoint") if k in spec.dirs)]
    volumes, mounts = [], []

    def add(source: dict, path: str, read_only: bool = False) -> None:
        name = f"v{len(volumes)}"
        volumes.append({"name": name, **source})
        mount = {"name": name, "mountPath": path}
        if read_only:
            mount["readOnly"] = True
        mounts.append(mount)

    if home_claim:
        add({"persistentVolumeClaim": {"claimName": home_claim}}, os.path.commonpath(folders))
    else:
        for folder in dict.fromkeys(folders):
            add({"hostPath": {"path": folder, "type": "DirectoryOrCreate"}}, folder)
    for mount in spec.mounts:
        if mount.source.startswith("pvc:"):
            add({"persistentVolumeClaim": {"claimName": mount.source[4:], "readOnly": mount.read_only}}, mount.path, mount.read_only)
        else:
            add({"hostPath": {"path": mount.source}}, mount.path, mount.read_only)
    return volumes, mounts


def parse_quantity(text: str) -> float:
    """A Kubernetes quantity ("250m", "1.5", "128974848", "129Mi", "1G") as a plain number."""
    units = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", text.strip())
    if not match:
        raise ValueError(f"quantity {text!r} is not understood")
    return float(match.group(1)) * units.get(match.group(2), 1.0)


def cpu_quantity(vcpus: float, down: bool = False) -> str:
    """Whole millicores (rounded down for a request, which must stay within what a node gives)."""
    milli = math.floor(round(vcpus * 1000, 6)) if down else int(round(vcpus * 1000))
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def memory_quantity(gib: float, down: bool = False) -> str:
    """Whole MiB, at least 1 (rounded down for a request)."""
    mib = math.floor(round(gib * 1024, 6)) if down else int(round(gib * 1024))
    return f"{max(mib, 1)}Mi"
