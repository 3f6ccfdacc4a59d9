"""How a run's Job ended, read from the Job's conditions and its newest pod's container state, and
whether its pod was taken away (disrupted, evicted, its node lost or the pod deleted) (pure)."""

from __future__ import annotations

from .base import ExitStatus
from .k8s_manifest import CONTAINER

# The condition the control plane sets on a pod it is about to take away (preemption by a higher
# priority pod, a taint, the eviction API, the kubelet's node pressure / shutdown); pod status
# reasons of a pod evicted or on a node that stopped answering.
DISRUPTION_TARGET = "DisruptionTarget"
TAKEN_AWAY_REASONS = ("Evicted", "NodeLost")


def job_verdict(job) -> tuple[str, str | None] | None:
    """("Complete" | "Failed", reason) once the Job has ended, else None."""
    for cond in (job.status.conditions if job.status else None) or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return cond.type, cond.reason
    return None


def exit_status(verdict: tuple[str, str | None], pod: dict | None) -> ExitStatus:
    kind, why = verdict
    code = exit_code(pod)
    if kind == "Complete":
        return ExitStatus(0 if code is None else code)
    term = terminated(pod) or {}
    if term.get("reason") == "OOMKilled":
        return ExitStatus(code, "OOMKilled")
    why_taken = disruption(pod)
    if why_taken:
        return ExitStatus.preempted(f"pod {why_taken}", code if code is not None else 1)
    parts = [why or "Failed"] + ([f"exit code {code}"] if code is not None else [])
    return ExitStatus(code if code is not None else 1, ": ".join(parts))


def container(pod: dict | None) -> dict | None:
    statuses = ((pod or {}).get("status") or {}).get("container_statuses") or []
    return next((s for s in statuses if s.get("name") == CONTAINER), statuses[0] if statuses else None)


def terminated(pod: dict | None) -> dict | None:
    return ((container(pod) or {}).get("state") or {}).get("terminated")


def exit_code(pod: dict | None) -> int | None:
    term = terminated(pod)
    return None if term is None else term.get("exit_code")


def container_started(pod: dict) -> bool:
    state = (container(pod) or {}).get("state") or {}
    return bool(state.get("running") or state.get("terminated"))


def container_terminated(pod: dict) -> bool:
    return terminated(pod) is not None


def disruption(pod: dict | None) -> str | None:
    """How the pod was taken from the run (not the job's own failure), e.g. "disrupted:
    PreemptionByScheduler" or "Evicted"; None while it was not."""
    status = (pod or {}).get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == DISRUPTION_TARGET and cond.get("status") == "True":
            return f"disrupted: {cond.get('reason') or DISRUPTION_TARGET}"
    return status.get("reason") if status.get("reason") in TAKEN_AWAY_REASONS else None


def taken_away(pods: list[dict], seen: set[str]) -> str | None:
    """Why a run whose Job is still active lost its pod: one of its pods disrupted, or a pod seen
    before gone (deleted with its node); None while neither happened."""
    for pod in pods:
        why = disruption(pod)
        if why:
            return f"pod {pod['metadata']['name']} {why}"
    gone = sorted(seen - {pod["metadata"]["name"] for pod in pods})
    return f"pod {gone[0]} deleted while its Job was active (node gone)" if gone else None
