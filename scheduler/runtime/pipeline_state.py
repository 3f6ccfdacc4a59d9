"""What one pipeline run knows while it executes: its spec and jobs, which steps are pending, and
the record and outputs of each step that ended."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from ..core.pipelines import PipelineSpec
from ..core.runs import RunRecord
from ..core.specs import JobSpec
from ..core.step_plan import OK_STATES, RunSoFar

Progress = Callable[[str, RunRecord], None]


class PipelineRunState:
    def __init__(self, spec: PipelineSpec, prun: dict[str, Any], jobs: dict[str, JobSpec]):
        self.spec = spec
        self.prun_id = prun["id"]
        self.params = prun["parameters"]
        self.jobs = jobs
        self.force_all = bool(prun["force"]["all"])
        self.force_steps = set(prun["force"]["steps"])
        self.order = spec.order()
        self.pending = set(self.order)
        self.records: dict[str, RunRecord] = {}
        self.outputs: dict[str, dict[str, Any]] = {}

    def ready(self, running_names: Iterable[str]) -> list[str]:
        busy = set(running_names)
        ready = [n for n in self.order if n in self.pending and not (self.spec.step(n).upstream() & (self.pending | busy))]
        self.pending -= set(ready)
        return ready

    def finish(self, name: str, record: RunRecord, progress: Progress | None) -> None:
        self.records[name] = record
        self.outputs[name] = record.extra.get("outputs", {}) if record.state in OK_STATES else {}
        if progress:
            progress(name, record)

    def so_far(self, canceled: bool = False) -> RunSoFar:
        """The planner's view of this run now (a snapshot: later steps do not change it)."""
        return RunSoFar(
            params=dict(self.params), states={n: r.state for n, r in self.records.items()},
            outputs={n: dict(o) for n, o in self.outputs.items()}, force_all=self.force_all,
            force_steps=frozenset(self.force_steps), canceled=canceled,
        )
