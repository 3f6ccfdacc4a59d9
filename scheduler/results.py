"""results.json: the summary every finished run leaves in its artifacts directory (AI Center style)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .artifacts import file_sha256
from .clock import iso
from .costs import idle_cost
from .runs import RunRecord


def files_with_hashes(folder: Path | None) -> dict[str, dict[str, Any]]:
    if folder is None or not folder.is_dir():
        return {}
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        out[path.relative_to(folder).as_posix()] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
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
    }


def write_results(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
