"""Step-cache keys (pure): what could change a step's outputs, and which part did change.

The key is sha256 of canonical JSON (sorted keys) over: the artifact's content hash, entrypoint,
args, non-secret env (names and values), secret env names, image, the parameter values the step
uses, the content hashes of its inputs, its declared outputs and `cache_version` — and for a sweep step the whole sweep definition (job,
parameters and their distributions, trials, parallel, seed, objective, budget). The shape and its
price are deliberately absent: moving a step to a cheaper shape must not force a rerun.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .specs import JobSpec

PART_NAMES = {
    "artifact": "the job's artifact",
    "entrypoint": "the entrypoint",
    "args": "args",
    "env": "env",
    "secret_env_names": "secret env names",
    "image": "the image",
    "parameters": "parameters",
    "inputs": "inputs",
    "outputs": "declared outputs",
    "cache_version": "cache_version",
    "job": "the job",
    "sweep": "the sweep definition",
}


def key_parts(
    job: JobSpec,
    params_used: dict[str, Any],
    input_hashes: dict[str, str],
    outputs: list[str],
    cache_version: str | None,
    sweep: dict[str, Any] | None = None,
) -> dict[str, Any]:
    parts = {
        "job": job.name,
        "artifact": job.artifact_hash,
        "entrypoint": job.entrypoint,
        "args": list(job.args),
        "env": dict(sorted(job.env.items())),
        "secret_env_names": sorted(job.secret_env),
        "image": job.image,
        "parameters": dict(sorted(params_used.items())),
        "inputs": dict(sorted(input_hashes.items())),
        "outputs": sorted(outputs),
        "cache_version": cache_version,
    }
    if sweep is not None:  # only sweep steps carry it, so other steps' keys stay as they were
        parts["sweep"] = sweep
    return parts


def cache_key(parts: dict[str, Any]) -> str:
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def explain_miss(previous: dict[str, Any] | None, current: dict[str, Any]) -> str:
    """Which part of the key changed since the step's last cached run, in one line."""
    if previous is None:
        return "no earlier run of this step"
    changes = []
    for part in [*current, *(p for p in previous if p not in current)]:  # a removed part counts too
        old, new = previous.get(part), current.get(part)
        if old == new:
            continue
        if isinstance(new, dict) and isinstance(old, dict):
            keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            changes.append(f"{PART_NAMES.get(part, part)} changed ({', '.join(keys)})")
        elif part in ("artifact",):
            changes.append(f"{PART_NAMES[part]} changed ({_short(old)} -> {_short(new)})")
        else:
            changes.append(f"{PART_NAMES.get(part, part)} changed ({old!r} -> {new!r})")
    return "; ".join(changes) or "the same key was cached before but is gone"


def _short(digest: Any) -> str:
    return str(digest).split(":")[-1][:12] if digest else "none"
