"""How a run's Job ended, read from the Job's conditions and its newest pod's container state (pure)."""

from __future__ import annotations

from .base import ExitStatus
from .k8s_manifest import CONTAINER


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
