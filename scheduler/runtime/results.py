"""results.json: the summary every finished run leaves in its artifacts directory (AI Center style)."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

from ..store import safefs
from ..core.clock import iso
from ..core.costs import idle_cost
from ..core.runs import RunRecord

log = logging.getLogger(__name__)


def files_with_hashes(folder: Path | None) -> dict[str, dict[str, Any]]:
    """Each regular file below a run's folder with its sha256 and size. The folder is the job's:
    links and special files are listed by kind, never followed or read."""
    if folder is None:
        return {}
    try:
        root = safefs.open_dir(folder)
    except (FileNotFoundError, safefs.UnsafeFile):
        return {}
    out: dict[str, dict[str, Any]] = {}
    try:
        for parts, info, dir_fd in safefs.walk(root):
            if stat.S_ISDIR(info.st_mode):
                continue
            name = "/".join(parts)
            if not stat.S_ISREG(info.st_mode):
                out[name] = {"type": safefs.kind_of(info.st_mode)}
                continue
            try:
                sha, size = safefs.sha256_fd(safefs.open_regular(parts[-1], dir_fd))
            except (OSError, safefs.UnsafeFile) as exc:
                out[name] = {"error": str(exc)}
                continue
            out[name] = {"sha256": sha, "bytes": size}
    except (OSError, safefs.UnsafeFile) as exc:
        out["..."] = {"error": str(exc)}
    finally:
        os.close(root)
    return out


def build_results(run: RunRecord, final: dict[str, Any], dirs: dict[str, Path]) -> dict[str, Any]:
    spec = run.spec
    merged = {**run.public(), **{k: (iso(v) if hasattr(v, "isoformat") else v) for k, v in final.items()}}
    return {
        "run_id": run.id,
        "job": run.job,
        "pipeline": run.pipeline,
        "step": run.step,
        "state": merged["state"],
        "reason": merged["reason"],
        "parameters": {
            "args": spec.get("args", []),
            "overrides": run.overrides,
            **({"pipeline_parameters": run.extra["parameters"]} if "parameters" in run.extra else {}),
        },
        "artifact": {"path": spec.get("artifact"), "sha256": spec.get("artifact_hash")},
        "env_names": sorted(spec.get("env", {})),
        "secret_env_names": sorted(spec.get("secret_env", {})),
        "inputs": files_with_hashes(dirs.get("input")),
        "outputs": files_with_hashes(dirs.get("output")),
        "timings": {
            "queued_at": merged["queued_at"],
            "started_at": merged["started_at"],
            "ended_at": merged["ended_at"],
            "duration_s": merged["duration_s"],
        },
        "shape": {"name": run.shape, "backend": run.backend, "price_per_hour": run.price_per_hour},
        "cost_usd": merged["cost_usd"],
        "idle_usd": idle_cost(merged["cost_usd"], merged["cpu_util_avg"], merged["gpu_util_avg"]),
        "saved_usd": merged["saved_usd"],
        "utilization": {
            "cpu_util_avg": merged["cpu_util_avg"],
            "mem_peak_bytes": merged["mem_peak_bytes"],
            "gpu_util_avg": merged["gpu_util_avg"],
        },
        "exit_code": merged["exit_code"],
        "labels": run.labels,
        "market": {
            "market": merged["market"], "attempts": merged["attempts"], "preemptions": merged["preemptions"],
            "lost_s": merged["lost_s"], "attempt_log": (final.get("extra") or run.extra).get("attempt_log", []),
        },
    }


def write_results(path: Path, results: dict[str, Any]) -> bool:
    """Write results.json into the run's artifacts folder without following anything the job
    planted there (a link named results.json or results.json.tmp is replaced, not written through).
    False, with a warning, when the folder is not a real one or the name is taken by a folder:
    a finished run must still be recorded."""
    data = json.dumps(results, indent=2, sort_keys=True, default=str).encode()
    try:
        try:
            folder = safefs.open_dir(path.parent)
        except FileNotFoundError:  # (made at launch: a mkdir per end only when the job removed it)
            path.parent.mkdir(parents=True, exist_ok=True)
            folder = safefs.open_dir(path.parent)
        try:
            # renamed into place whole, not fsynced: the run's end is durable in the store, and this
            # summary hashes outputs the job wrote without fsync, so a power loss that ate it ate them
            with safefs.atomic_create(folder, path.name, sync=False) as out:
                out.write(data)
        finally:
            os.close(folder)
    except (OSError, safefs.UnsafeFile) as exc:
        log.warning("results of run %s not written to %s: %s", results.get("run_id"), path, exc)
        return False
    return True
