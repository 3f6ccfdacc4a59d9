"""Kubernetes: one batch/v1 Job per run, through the official client (kubeconfig or in-cluster).

The Job is ``k8s_manifest.job_manifest``'s (also what ``--dry-run`` prints; its docstring says what it
holds): ``activeDeadlineSeconds`` = the run's max runtime, ``backoffLimit`` = the job's retries
(``retries_itself``), requests = the job's requirements capped at what a node of the shape can give
(``allocatable``), limits = the shape's size, shape labels as ``nodeSelector`` / tolerations, Kueue's
suspend and queue labels for a shape with ``kueue_queue``, secret env in a Secret owned by the Job, the
run's folders as ``hostPath`` volumes or one PersistentVolumeClaim (``COSTWISE_K8S_HOME_CLAIM``).

Status comes from the Job's conditions and its newest pod's container state (exit code, OOMKilled);
a pod taken away (``DisruptionTarget``, evicted, its node lost) ends the run ``preempted``, and for
a spot attempt (``preemptible``) already while the Job is active, the Job then deleted so the run's
next attempt creates a fresh one. Logs are followed from each pod in turn into the run's log;
utilization comes from metrics.k8s.io when the cluster serves it (else it is not reported). Cancel
deletes the Job (foreground, with the grace period) and returns once it is gone. ``adopt`` finds the
Job by name, else by the ``costwise.io/run-id`` label. The namespace is ``namespace`` /
``COSTWISE_K8S_NAMESPACE`` / the kubeconfig context's / ``default``.

Here: launch, polling the Job's status, sampling, cancel and adopt; reaching the API server is
``k8s_client``, reading an end from the Job and its pod ``k8s_status``, the log copy ``k8s_logs``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..core.extras import Extra, require
from .base import DEFAULT_STOP_GRACE_S, ExitStatus, LaunchSpec, Usage
from .k8s_client import KubernetesError, api_client, context_namespace, message
from .k8s_logs import PodLogCopying
from .k8s_manifest import CONTAINER, DEFAULT_TTL_S, LOG_ANNOTATION, RUN_LABEL, job_manifest, job_name, parse_quantity
from .k8s_status import exit_code, exit_status, job_verdict, taken_away
from .logcopy import LogCopier
from .throttled_log import ThrottledWarnings

__all__ = ["KubernetesExecutor", "KubernetesError"]

log = logging.getLogger(__name__)


@dataclass
class _Tracked:
    run_id: str
    namespace: str
    name: str
    vcpus: float
    log: LogCopier
    next_poll: float = 0.0
    final: ExitStatus | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    last_pod: dict | None = None
    cpu_samples: list[float] = field(default_factory=list)
    mem_peak: int = 0
    log_thread: threading.Thread | None = None
    preemptible: bool = False  # a spot attempt: a pod taken away ends it (else the Job controller retries)
    seen_pods: set[str] = field(default_factory=set)


class KubernetesExecutor(PodLogCopying):
    backend = "kubernetes"
    retries_itself = True  # backoffLimit: the Job retries failed pods, the engine must not retry again

    def __init__(self, api_client=None, namespace: str | None = None, poll_s: float = 1.0,
                 ttl_s: int = DEFAULT_TTL_S, home_claim: str | None = None):
        require("kubernetes", Extra.KUBERNETES, "the kubernetes backend")
        self._api = api_client
        self._namespace = namespace or os.environ.get("COSTWISE_K8S_NAMESPACE")
        self.poll_s = poll_s
        self.ttl_s = ttl_s
        self.home_claim = home_claim or os.environ.get("COSTWISE_K8S_HOME_CLAIM")
        super().__init__()
        self._metrics = True
        self._warnings = ThrottledWarnings(log)

    def _quietly(self, what: str, fn, *args) -> None:
        """Best-effort clean-up: a failure is warned about, never raised over the error being handled."""
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001
            self._warnings.warn("cleanup", f"kubernetes: cannot {what} {'/'.join(map(str, args))} "
                                           f"({type(exc).__name__}: {exc})")

    # -- the API -------------------------------------------------------------------------------
    @property
    def api(self):
        if self._api is None:
            self._api = api_client()
        return self._api

    @property
    def namespace(self) -> str:
        if self._namespace is None:
            self._namespace = context_namespace() or "default"
        return self._namespace

    def _batch(self):
        from kubernetes import client

        return client.BatchV1Api(self.api)

    def _core(self):
        from kubernetes import client

        return client.CoreV1Api(self.api)

    # -- manifests -----------------------------------------------------------------------------
    def describe(self, spec: LaunchSpec) -> dict[str, Any]:
        manifest = job_manifest(spec, self.namespace, self.ttl_s, self.home_claim)
        out = {"backend": "kubernetes", "namespace": self.namespace, "manifest": manifest,
               "log": str(spec.log_path), "max_runtime_s": spec.max_runtime_s}
        if spec.secret_names:
            out["secret"] = {"name": manifest["metadata"]["name"], "keys": sorted(spec.secret_names)}
        return out

    # -- launch --------------------------------------------------------------------------------
    def launch(self, spec: LaunchSpec) -> dict[str, Any]:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        ns = self.namespace
        manifest = job_manifest(spec, ns, self.ttl_s, self.home_claim)
        name = manifest["metadata"]["name"]
        core, batch = self._core(), self._batch()
        try:
            if spec.secret_names:
                core.create_namespaced_secret(ns, client.V1Secret.from_dict({
                    "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": name, "labels": manifest["metadata"]["labels"]},
                    "stringData": {k: spec.env[k] for k in sorted(spec.secret_names)},
                }))
            try:
                job = batch.create_namespaced_job(ns, client.V1Job.from_dict(manifest))
            except ApiException:
                if spec.secret_names:
                    self._quietly("delete the secret of", core.delete_namespaced_secret, name, ns)
                raise
            if spec.secret_names:  # the Secret goes when the Job goes
                core.patch_namespaced_secret(name, ns, {"metadata": {"ownerReferences": [{
                    "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job.metadata.uid}]}})
        except ApiException as exc:
            if exc.status == 409:
                raise KubernetesError(f"Job {ns}/{name} already exists; a run is never started twice") from None
            raise KubernetesError(f"the API server refused Job {ns}/{name}: {exc.status} {exc.reason}: {message(exc)}") from None
        except Exception as exc:  # connection refused, TLS  # noqa: BLE001
            raise KubernetesError(f"the API server cannot be reached: {exc}") from None
        handle = {"namespace": ns, "job_name": name, "uid": job.metadata.uid, "run_id": spec.run_id,
                  "log": str(spec.log_path), "vcpus": spec.shape.vcpus, "gpus": spec.shape.gpus,
                  "preemptible": spec.preemptible}
        self._track(handle, name)
        return handle

    def _track(self, handle: dict[str, Any], name: str) -> _Tracked:
        tracked = _Tracked(run_id=handle["run_id"], namespace=handle["namespace"], name=name,
                           vcpus=handle.get("vcpus", 1.0), log=LogCopier(handle["log"]),
                           preemptible=bool(handle.get("preemptible")))
        with self._lock:
            self._runs[tracked.run_id] = tracked
        tracked.log_thread = threading.Thread(target=self._copy_logs, args=(tracked,), daemon=True,
                                              name=f"k8s-logs-{tracked.run_id}")
        tracked.log_thread.start()
        return tracked

    # -- status --------------------------------------------------------------------------------
    def wait(self, handle: dict[str, Any], timeout: float) -> ExitStatus | None:
        tracked = self._tracked(handle)
        if tracked is None:
            return ExitStatus.lost()
        end = time.monotonic() + max(timeout, 0.0)
        while tracked.final is None:
            now = time.monotonic()
            if now >= tracked.next_poll:
                tracked.next_poll = now + self.poll_s
                self._poll(tracked)
                continue
            if now >= end:
                return None
            time.sleep(min(end, tracked.next_poll) - now)
        return tracked.final

    def _poll(self, tracked: _Tracked) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            job = self._batch().read_namespaced_job_status(tracked.name, tracked.namespace)
            pods = self._pods(tracked)
            tracked.last_pod = (pods[-1] if pods else None) or tracked.last_pod
        except ApiException as exc:
            if exc.status == 404:
                self._end(tracked, ExitStatus.lost(exit_code(tracked.last_pod)))
            else:  # e.g. 403 or 5xx: the same outage on every poll, so rate-limited
                self._warnings.warn("poll", f"kubernetes: cannot read Job {tracked.namespace}/{tracked.name} "
                                            f"({exc.status} {message(exc)}); polling again")
            return
        except Exception as exc:  # API server briefly unreachable: poll again later  # noqa: BLE001
            self._warnings.warn("poll", f"kubernetes: cannot read Job {tracked.namespace}/{tracked.name} "
                                        f"({type(exc).__name__}: {exc}); polling again")
            return
        self._warnings.clear("poll")
        verdict = job_verdict(job)
        status = None if verdict is None else exit_status(verdict, tracked.last_pod)
        if status is None and tracked.preemptible:
            why = taken_away(pods, tracked.seen_pods)
            status = None if why is None else ExitStatus.preempted(why, exit_code(tracked.last_pod))
        tracked.seen_pods.update(pod["metadata"]["name"] for pod in pods)
        if status is not None and status.is_preempted and tracked.preemptible:
            self._delete_preempted(tracked)
        if status is not None:
            self._end(tracked, status)

    def _delete_preempted(self, tracked: _Tracked) -> None:
        """A preempted spot attempt's Job goes (with any pod the Job controller started in its place), so
        the run's next attempt creates a fresh Job of the same name."""
        try:
            if not self._delete_job(tracked, DEFAULT_STOP_GRACE_S):
                self._warnings.warn("cleanup", f"kubernetes: preempted Job {tracked.namespace}/{tracked.name} "
                                               "is still there after its deletion")
        except Exception as exc:  # noqa: BLE001 - the attempt ended all the same
            self._warnings.warn("cleanup", f"kubernetes: cannot delete preempted Job {tracked.namespace}/"
                                           f"{tracked.name} ({type(exc).__name__}: {exc})")

    def _end(self, tracked: _Tracked, status: ExitStatus) -> None:
        """Record the end once the pods' last log lines are copied (a lost Job has none to wait for)."""
        tracked.finished.set()
        if tracked.log_thread is not None and not status.is_lost:
            tracked.log_thread.join(timeout=15)
        tracked.final = status

    # -- utilization ---------------------------------------------------------------------------
    def sample(self, handle: dict[str, Any]) -> None:
        """One metrics.k8s.io reading of the run's pod; a cluster without metrics-server gives none."""
        from kubernetes import client

        tracked = self._get(handle)
        if not self._metrics or tracked is None or tracked.final is not None or not tracked.last_pod:
            return
        try:
            metrics = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
                "metrics.k8s.io", "v1beta1", tracked.namespace, "pods", tracked.last_pod["metadata"]["name"])
        except Exception as exc:  # noqa: BLE001
            if getattr(exc, "status", None) in (403, 404) and "metrics" in str(getattr(exc, "body", "") or ""):
                self._metrics = False  # no metrics API in this cluster
            else:
                self._warnings.warn("metrics", f"kubernetes: cannot read pod metrics ({type(exc).__name__}: {exc})")
            return
        for container in metrics.get("containers", []):
            if container.get("name") == CONTAINER:
                usage = container.get("usage", {})
                if "cpu" in usage and tracked.vcpus:
                    tracked.cpu_samples.append(min(parse_quantity(usage["cpu"]) / tracked.vcpus, 1.0))
                if "memory" in usage:
                    tracked.mem_peak = max(tracked.mem_peak, int(parse_quantity(usage["memory"])))

    def usage(self, handle: dict[str, Any]) -> Usage:
        tracked = self._get(handle)
        if tracked is None:
            return Usage()
        cpu = sum(tracked.cpu_samples) / len(tracked.cpu_samples) if tracked.cpu_samples else None
        return Usage(cpu, tracked.mem_peak or None, None)

    def forget(self, handle: dict[str, Any]) -> None:
        with self._lock:
            tracked = self._runs.pop(handle.get("run_id"), None)
        if tracked is not None:
            tracked.finished.set()  # stops its log thread

    # -- stopping ------------------------------------------------------------------------------
    def cancel(self, handle: dict[str, Any], grace_s: float) -> ExitStatus:
        """Delete the Job (foreground: its pods get SIGTERM, SIGKILL after the grace) and wait until it is gone."""
        from kubernetes.client.exceptions import ApiException

        tracked = self._tracked(handle)
        if tracked is None:
            return ExitStatus.lost()
        if tracked.final is not None:
            return tracked.final
        try:
            tracked.last_pod = self._newest_pod(tracked) or tracked.last_pod
        except ApiException as exc:
            if exc.status != 404:
                raise KubernetesError(f"cannot list the pods of Job {tracked.namespace}/{tracked.name}: "
                                      f"{exc.status} {message(exc)}") from None
        if self._delete_job(tracked, grace_s):
            self._end(tracked, ExitStatus(exit_code(tracked.last_pod), "deleted"))
        else:
            self._end(tracked, ExitStatus(None, "did not stop"))
        return tracked.final

    def _delete_job(self, tracked: _Tracked, grace_s: float) -> bool:
        """Delete the Job in the foreground and wait until it is gone (False: still there after the grace + 30 s)."""
        from kubernetes.client.exceptions import ApiException

        batch = self._batch()
        try:
            batch.delete_namespaced_job(tracked.name, tracked.namespace, propagation_policy="Foreground",
                                        grace_period_seconds=math.ceil(grace_s))
        except ApiException as exc:
            if exc.status != 404:
                raise KubernetesError(f"cannot delete Job {tracked.namespace}/{tracked.name}: {exc.status} {message(exc)}") from None
        deadline = time.monotonic() + grace_s + 30
        while time.monotonic() < deadline:
            try:
                batch.read_namespaced_job(tracked.name, tracked.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return True
                self._warnings.warn("cancel", f"kubernetes: cannot see whether Job {tracked.namespace}/{tracked.name} "
                                              f"is gone ({exc.status} {message(exc)}); looking again")
            time.sleep(min(0.5, self.poll_s))
        return False

    # -- restarts ------------------------------------------------------------------------------
    def adopt(self, handle: dict[str, Any]) -> bool:
        """Track the run's Job again (by name, else by run label); a finished Job still counts. What
        the handle lacks (a launch cut short before it was saved) is filled in from the Job."""
        from kubernetes.client.exceptions import ApiException

        if self._get(handle) is not None:
            return True
        if not handle.get("run_id"):
            return False
        batch = self._batch()
        ns = handle.setdefault("namespace", self.namespace)
        name = handle.get("job_name") or job_name(handle["run_id"])
        try:
            job = batch.read_namespaced_job(name, ns)
        except ApiException as exc:
            if exc.status != 404:
                raise KubernetesError(f"cannot read Job {ns}/{name}: {exc.status} {message(exc)}") from None
            found = batch.list_namespaced_job(ns, label_selector=f"{RUN_LABEL}={handle['run_id']}").items or []
            if not found:
                return False
            job = found[0]
        annotations = job.metadata.annotations or {}
        if not (handle.get("log") or annotations.get(LOG_ANNOTATION)):
            return False
        handle.setdefault("log", annotations.get(LOG_ANNOTATION))
        handle["job_name"] = job.metadata.name
        self._track(handle, job.metadata.name)
        return True

