"""Copying a Kubernetes run's log: each pod of its Job followed in turn into the run's log.

The log half of ``KubernetesExecutor``, as a base class: one thread per run lists the Job's pods and
follows each one's log (with timestamps, so ``logcopy`` drops what was copied before a restart)
until the Job has ended and every pod's log is copied. It reads ``self.api``, ``self.poll_s`` and
``self._warnings``.
"""

from __future__ import annotations

import time
from typing import Any

from .base import TrackedRuns
from .k8s_manifest import CONTAINER
from .k8s_status import container_started, container_terminated


class PodLogCopying(TrackedRuns):
    def _pods(self, tracked) -> list[dict]:
        from kubernetes import client

        pods = client.CoreV1Api(self.api).list_namespaced_pod(tracked.namespace, label_selector=f"job-name={tracked.name}")
        items = [p.to_dict() for p in pods.items or []]
        return sorted(items, key=lambda p: (str(p["metadata"].get("creation_timestamp") or ""), p["metadata"]["name"]))

    def _newest_pod(self, tracked) -> dict | None:
        pods = self._pods(tracked)
        return pods[-1] if pods else None

    def _copy_logs(self, tracked) -> None:
        """Follow each pod's log in turn until the Job has ended and every pod's log is copied."""
        copied: set[str] = set()
        try:
            while True:
                finished = tracked.finished.is_set()
                try:
                    pods = self._pods(tracked)
                except Exception as exc:  # noqa: BLE001 - API server briefly unreachable: list again
                    self._warnings.warn("pods", f"kubernetes: cannot list the pods of Job {tracked.name} "
                                                f"({type(exc).__name__}: {exc})")
                    pods = []
                for pod in pods:
                    name = pod["metadata"]["name"]
                    if name in copied or not container_started(pod):
                        continue
                    self._follow(tracked, name)
                    if container_terminated(pod) or finished:
                        copied.add(name)
                if finished:
                    return
                tracked.finished.wait(self.poll_s)
        finally:
            tracked.log.close()

    def _follow(self, tracked, pod: str) -> None:
        from kubernetes import client

        kwargs: dict[str, Any] = {"follow": True, "timestamps": True, "_preload_content": False}
        since = tracked.log.since_epoch()
        if since is not None:
            kwargs["since_seconds"] = max(int(time.time() - since) + 2, 1)
        try:
            # a client of its own: a long-lived stream must not share a connection pool with the polls
            with client.ApiClient(self.api.configuration) as api:
                resp = client.CoreV1Api(api).read_namespaced_pod_log(pod, tracked.namespace, container=CONTAINER, **kwargs)
                # chunk by chunk as they arrive (a followed log is chunked), never waiting for a full buffer
                chunks = resp.stream(65536) if resp.chunked else iter(lambda: resp.read1(65536), b"")
                for chunk in chunks:
                    tracked.log.feed(chunk)
                resp.release_conn()
        except Exception as exc:  # the pod went away (deleted, or never started): nothing more to copy  # noqa: BLE001
            if getattr(exc, "status", None) not in (400, 404):  # 404 gone, 400 not started yet
                self._warnings.warn("logs", f"kubernetes: log of pod {pod} ended early ({type(exc).__name__}: {exc})")
