"""A pipeline run as the contract prints it, read back from the store."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..core.clock import iso
from ..core.pipelines import PipelineSpec
from ..core.runs import RunRecord


def pipeline_run_record(store, prun_id: str) -> dict[str, Any]:
    """The pipeline run as the contract prints it: one run record per declared step. A sweep
    step's record is its best trial's (or, when none succeeded, its FAILED result), with
    ``trials`` (every trial's record, with its ``trial`` parameters and ``objective``) and
    ``best_trial``; while the sweep runs, its latest trial stands for it."""
    prun = store.pipeline_runs.get(prun_id)
    spec = PipelineSpec.model_validate(prun["spec"]["pipeline"])
    by_step: dict[str, RunRecord] = {}
    trials: dict[str, list[RunRecord]] = defaultdict(list)
    for run in store.list_runs(pipeline_run=prun_id, newest_first=False):
        if "trial" in run.extra:
            trials[run.step].append(run)
        if "trial" not in run.extra or "sweep" in run.extra:
            by_step[run.step] = run
    steps = []
    for step in spec.steps:
        run = by_step.get(step.name) or (trials[step.name][-1] if trials.get(step.name) else None)
        if run is None:
            continue
        out = run.public()
        if step.sweep is not None:
            out.update(_sweep_fields(run, trials.get(step.name, [])))
        steps.append(out)
    return {
        "id": prun["id"], "pipeline": prun["pipeline"], "state": prun["state"], "reason": prun["reason"],
        "started_at": iso(prun["started_at"]), "ended_at": iso(prun["ended_at"]),
        "cost_usd": prun["cost_usd"], "saved_usd": prun["saved_usd"], "parameters": prun["parameters"],
        "steps": steps,
    }


def _trial_public(run: RunRecord) -> dict[str, Any]:
    return {**run.public(), "trial": run.extra.get("trial"), "objective": run.extra.get("objective")}


def _sweep_fields(run: RunRecord, trials: list[RunRecord]) -> dict[str, Any]:
    """What a sweep step's entry adds to its run record in the pipeline run record."""
    summary = run.extra.get("sweep") or {}
    out: dict[str, Any] = {}
    if "trial" in run.extra:
        out.update(trial=run.extra["trial"], objective=run.extra.get("objective"))
    ordered = sorted(trials, key=lambda t: t.extra.get("trial_index", 0))
    out.update(trials=[_trial_public(t) for t in ordered], best_trial=summary.get("best_trial"), sweep=summary)
    return out


def _step_cost(record: RunRecord) -> float:
    """What a step cost: a sweep step's is all its trials' (its record is only the best one)."""
    summary = record.extra.get("sweep")
    return float(summary.get("cost_usd") or 0.0) if summary is not None else record.cost_usd
