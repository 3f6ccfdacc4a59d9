"""The three providers: what differs between shapes, jobs and pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scheduler.store.settings import Settings

from .base import CatalogProvider


class ComputeShapeProvider(CatalogProvider):
    kind = "Shape"


class JobProvider(CatalogProvider):
    kind = "Job"
    replace_keys = ("name", "db", "artifact", "artifact_hash")

    def prepare(self, spec, doc: dict[str, Any], settings: Settings) -> dict[str, Any]:
        """Resolve, content-hash and store the artifact, with apply's own checks (entrypoint, ...)."""
        from scheduler.store.artifacts import ArtifactStore
        from scheduler.store.catalog import prepare_job

        prepared = prepare_job(spec, Path.cwd(), ArtifactStore(settings.artifacts_root))
        return {**doc, "artifact_hash": prepared.artifact_hash}

    def comparable(self, doc: dict[str, Any]) -> dict[str, Any]:
        # The file's name and bytes are the artifact; the folder it was found in is not (CI checkouts move).
        return {**doc, "artifact": Path(str(doc.get("artifact", ""))).name}

    def replaced(self, current, props: dict[str, Any]) -> bool:
        # An artifact change is create-then-delete under one catalog name: the old resource's delete
        # must leave the new declaration alone.
        mine = props.get("artifact_hash")
        return bool(mine) and current.artifact_hash != mine

    def computed(self, ctx, spec) -> dict[str, Any]:
        from scheduler.store.artifacts import ArtifactStore

        out = placement_outputs(ctx.store, spec.name, spec.requirements, spec)
        out["artifact_path"] = str(ArtifactStore(ctx.settings.artifacts_root).path_for(spec.artifact_hash))
        return out


class PipelineProvider(CatalogProvider):
    kind = "Pipeline"

    def prepare(self, spec, doc: dict[str, Any], settings: Settings) -> dict[str, Any]:
        """At check time, which is all `pulumi preview` runs: what the next run of this document, as
        changed, is expected to cost (diff compares the document only, so the figure moving with
        the history never makes an update)."""
        from scheduler.runtime.context import AppContext

        ctx = AppContext(settings)
        try:
            return {**doc, **pipeline_cost(ctx.engine, spec)}
        finally:
            ctx.close()

    def computed(self, ctx, spec) -> dict[str, Any]:
        """Each step's cheapest fitting shape (steps that name a declared job), and the next run's cost."""
        return {**self._step_shapes(ctx, spec), **pipeline_cost(ctx.engine, spec)}

    def _step_shapes(self, ctx, spec) -> dict[str, Any]:
        from scheduler.core.specs import Requirements

        shapes = {}
        for step in spec.model_dump(mode="json", exclude_defaults=True).get("steps") or []:
            job = ctx.store.get("Job", step.get("job") or "") if isinstance(step, dict) else None
            if job is None:
                continue
            override = step.get("requirements") or {}
            req = Requirements.model_validate({**job.requirements.model_dump(), **{k: v for k, v in override.items() if v is not None}})
            shapes[step["name"]] = placement_outputs(ctx.store, job.name, req, job)["cheapest_shape"]
        return {"step_shapes": shapes}


def pipeline_cost(engine, spec) -> dict[str, Any]:
    """The next run's estimate (`costwise pipeline run NAME --estimate` with the default parameters):
    cached steps free, the others priced from their history; ``unpriced_steps``: steps without a
    figure (a job not in the catalog yet, or one with neither history nor expected_duration)."""
    from scheduler.runtime.estimates import estimate_spec

    est = estimate_spec(engine, spec)
    return {"expected_cost_usd": est.expected_cost_usd, "expected_cost_range_usd": [est.p10_usd, est.p90_usd],
            "unpriced_steps": list(est.unknown)}


def placement_outputs(store, job_name: str, requirements, job) -> dict[str, Any]:
    """The shapes that fit, cheapest expected cost first, as `costwise shapes --job` ranks them."""
    from scheduler.core.placement import PlacementRequest, explain

    req = PlacementRequest(
        job=job_name, requirements=requirements, pinned_shape=job.shape, has_image=bool(job.image),
        declared_duration_s=job.expected_duration,
    )
    ranked = explain(req, store.list("Shape"), {}, store.duration_history(job_name)).ranked
    best = ranked[0] if ranked else None
    return {
        "fits": [c.shape for c in ranked],
        "cheapest_shape": best.shape if best else None,
        "expected_cost_usd": best.expected_cost_usd if best else None,
    }
