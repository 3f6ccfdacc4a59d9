"""A step's files: private verified copies of its inputs in, regular files only out, and the step
cache's entries read and written — the one place outputs are taken and published."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

from ..core.pipelines import Step
from ..core.runs import RunRecord
from ..core.step_plan import CacheLookup, ConditionDocument, RunSoFar
from ..store import safefs
from ..store.outputs import CorruptObject, OutputStore, declared_output_problem


class StepFiles:
    def __init__(self, home: Path):
        self.outputs = OutputStore(home / "store")
        self.inputs_root = home / "step-inputs"

    def condition_document(self, step: Step, so_far: RunSoFar) -> ConditionDocument | None:
        """The document a step's ``when`` reads (None for a step without one)."""
        if step.when is None:
            return None
        try:
            source = so_far.outputs[step.when.step][step.when.output]
            return ConditionDocument(value=self.outputs.read_json(source))
        except (KeyError, ValueError, OSError) as exc:
            return ConditionDocument(error=str(exc))

    def lookup(self, pipeline: str, step: str, key: str) -> CacheLookup:
        """The cache's answer for ``key`` (a broken entry is removed and reported as the problem)."""
        entry, problem = self.outputs.lookup(key)
        if entry is not None:
            return CacheLookup(entry=entry)
        return CacheLookup(problem=problem, last_parts=self.outputs.last_parts(pipeline, step))

    def materialize(self, inputs: dict[str, dict[str, Any]]) -> tuple[Path | None, str | None]:
        """A fresh folder of verified copies of a step's inputs, filled before its run is queued
        (so a dispatcher cannot start it half-filled); or why not."""
        folder = self.inputs_root / secrets.token_hex(8)
        try:
            self.outputs.materialize(inputs, folder)
        except CorruptObject as exc:
            shutil.rmtree(folder, ignore_errors=True)
            return None, str(exc)
        return folder, None

    def drop_inputs(self, run: RunRecord) -> None:
        """A finished step's input copies go (the store keeps the bytes, results.json their hashes)."""
        folder = run.extra.get("dirs", {}).get("input")
        if folder and Path(folder).parent == self.inputs_root:
            shutil.rmtree(folder, ignore_errors=True)  # rmtree does not follow links the job planted

    def publish(
        self, out_dir: Path, step: Step, pipeline: str, key: str | None, parts: dict[str, Any] | None,
        meta: dict[str, Any],
    ) -> tuple[dict[str, Any], str | None]:
        """Take the step's declared outputs into the store and, for a cached step, record them under
        its key with ``meta``; (the outputs' references, None) or ({}, why they cannot be taken)."""
        published, problem = self._take_outputs(out_dir, step.outputs)
        if problem:
            return {}, problem
        if step.cache and key:
            self.outputs.publish(key, published, {**meta, "pipeline": pipeline, "step": step.name})
            if parts:
                self.outputs.save_parts(pipeline, step.name, parts)
        return published, None

    def _take_outputs(self, out_dir: Path, names: list[str]) -> tuple[dict[str, Any], str | None]:
        """The declared outputs copied into the store, or why they cannot be (nothing is taken
        that is not a regular file right inside COSTWISE_OUTPUT_DIR)."""
        problem = declared_output_problem(out_dir, names)
        if problem:
            return {}, problem
        try:
            return {name: self.outputs.put_file(out_dir / name) for name in names}, None
        except (safefs.UnsafeFile, FileNotFoundError) as exc:  # swapped after the check
            return {}, f"declared output {exc}, not a regular file: not followed, not stored"


def run_meta(run: RunRecord, cost_usd: float | None = None) -> dict[str, Any]:
    """What a cache entry remembers of the run whose outputs it holds."""
    return {
        "run_id": run.id, "cost_usd": run.cost_usd if cost_usd is None else cost_usd, "shape": run.shape,
        "backend": run.backend, "artifacts_dir": run.artifacts_dir,
    }
