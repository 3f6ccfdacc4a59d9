"""Right-sizing advice: jobs whose runs use a small share of their shape, and the cheaper shape that fits.

For each (job, shape) in the period, the p95 of the runs' CPU share and memory peak is taken.
When either is under ``threshold`` of the shape, the job's needs are restated as that p95 usage
times ``headroom`` (GPU needs and backend rules stay as the job declares them) and the cheapest
catalog shape that fits them (``placement.fits``) and is cheaper per hour is suggested, with what
the same run hours would have cost there. Durations are assumed unchanged on the smaller shape.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import pandas as pd
from ..core.placement import PlacementRequest, fits
from ..core.runs import CACHED
from ..core.specs import Requirements, ShapeSpec
from ..store.report_queries import job_docs

GIB = 2**30
COLUMNS = ["job", "shape", "runs", "cpu_p95", "mem_p95_bytes", "mem_share_p95", "suggested_shape",
           "price_per_hour", "suggested_price_per_hour", "cost_usd", "would_cost_usd", "savings_usd", "reason"]

JobNeeds = tuple[Requirements, bool]  # the job's declared requirements, and whether it names an image


def job_requirements(store, names: Iterable[str]) -> dict[str, JobNeeds]:
    """Declared requirements of the named jobs, straight from the catalog rows (no full parse)."""
    return {name: (Requirements.model_validate(doc.get("requirements") or {}), bool(doc.get("image")))
            for name, doc in job_docs(store, names).items()}


def usage_by_job_shape(df: pd.DataFrame, shapes: Mapping[str, ShapeSpec], quantile: float) -> pd.DataFrame:
    """Per (job, shape): runs, cost, hours and the p95 CPU share and memory peak of the started runs."""
    ran = df[df["shape"].notna() & df["job"].notna() & (df["state"] != CACHED)]
    if ran.empty:
        return pd.DataFrame(columns=["job", "shape", "runs", "cost_usd", "hours", "cpu_p95", "mem_p95_bytes"])
    work = pd.DataFrame({
        "job": ran["job"], "shape": ran["shape"], "cost_usd": ran["cost_usd"],
        "hours": ran["duration_s"].fillna(0.0) / 3600.0, "cpu": ran["cpu_util_avg"], "mem": ran["mem_peak_bytes"],
    })
    grouped = work.groupby(["job", "shape"], observed=True, sort=False)
    out = grouped.agg(runs=("cost_usd", "size"), cost_usd=("cost_usd", "sum"), hours=("hours", "sum"))
    out["cpu_p95"] = grouped["cpu"].quantile(quantile)
    out["mem_p95_bytes"] = grouped["mem"].quantile(quantile)
    out = out.reset_index()
    out["job"] = out["job"].astype(str)
    out["shape"] = out["shape"].astype(str)
    return out[out["shape"].isin(list(shapes))]


def advise(
    df: pd.DataFrame,
    shapes: Iterable[ShapeSpec],
    lookup_jobs: Callable[[Iterable[str]], Mapping[str, JobNeeds]],
    threshold: float = 0.30,
    headroom: float = 1.25,
    quantile: float = 0.95,
) -> pd.DataFrame:
    """The advice table, biggest savings first (empty when nothing is oversized)."""
    by_name = {s.name: s for s in shapes}
    usage = usage_by_job_shape(df, by_name, quantile)
    if usage.empty:
        return pd.DataFrame(columns=COLUMNS)
    mem_bytes = usage["shape"].map(lambda n: by_name[n].memory_gib * GIB).astype(float)
    usage["mem_share_p95"] = usage["mem_p95_bytes"] / mem_bytes
    low = (usage["cpu_p95"] < threshold) | (usage["mem_share_p95"] < threshold)
    flagged = usage[low & usage["cpu_p95"].notna() & usage["mem_p95_bytes"].notna()]
    if flagged.empty:
        return pd.DataFrame(columns=COLUMNS)
    jobs = lookup_jobs(sorted(set(flagged["job"])))
    ranked = sorted(by_name.values(), key=lambda s: (s.price_per_hour, s.name))
    rows = [row for rec in flagged.itertuples(index=False)
            if (row := _suggestion(rec, by_name[rec.shape], jobs, ranked, headroom)) is not None]
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.DataFrame(rows, columns=COLUMNS)
    return out.sort_values(["savings_usd", "job"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _suggestion(rec, current: ShapeSpec, jobs: Mapping[str, JobNeeds], ranked: list[ShapeSpec],
                headroom: float) -> dict | None:
    """The advice row for one (job, shape): the cheapest shape holding its p95 usage, or None."""
    declared, has_image = jobs.get(rec.job, (None, current.backend != "local"))
    gpu = declared or Requirements(gpus=current.gpus, gpu_type=current.gpu_type, gpu_memory_gib=current.gpu_memory_gib)
    need = Requirements(
        cpus=rec.cpu_p95 * current.vcpus * headroom,
        memory_gib=rec.mem_p95_bytes * headroom / GIB,
        gpus=gpu.gpus, gpu_type=gpu.gpu_type, gpu_memory_gib=gpu.gpu_memory_gib,
    )
    req = PlacementRequest(job=rec.job, requirements=need, has_image=has_image)
    better = next((s for s in ranked if s.price_per_hour < current.price_per_hour and fits(req, s)), None)
    if better is None:
        return None
    would = rec.hours * better.price_per_hour
    return {
        "job": rec.job, "shape": rec.shape, "runs": int(rec.runs), "cpu_p95": float(rec.cpu_p95),
        "mem_p95_bytes": float(rec.mem_p95_bytes), "mem_share_p95": float(rec.mem_share_p95),
        "suggested_shape": better.name, "price_per_hour": current.price_per_hour,
        "suggested_price_per_hour": better.price_per_hour, "cost_usd": float(rec.cost_usd),
        "would_cost_usd": would, "savings_usd": max(float(rec.cost_usd) - would, 0.0),
        "reason": (
            f"p95 CPU {rec.cpu_p95 * 100:.0f}% of {current.vcpus:g} vCPUs, p95 memory "
            f"{rec.mem_p95_bytes / GIB:.2f} GiB of {current.memory_gib:g} GiB; {better.name} "
            f"({better.vcpus:g} vCPUs, {better.memory_gib:g} GiB) fits with {headroom:g}x headroom"
        ),
    }
