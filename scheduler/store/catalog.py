"""Declaring things: documents in, validated specs out, stored all-or-nothing.

Shared by `costwise apply`, the Pulumi provider and the demo. Jobs get their artifact resolved,
content-hashed and copied into the artifact store here, so the catalog never depends on the file
staying put.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .artifacts import (
    ArtifactStore, artifact_kind, check_entrypoint, check_unstored, content_hash, entrypoint_path_problem, resolve_artifact,
)
from ..core.bounds import DOCUMENT_FILE_MAX_BYTES
from ..core.errors import Conflict, NotFound, SpecError
from ..core.placement import unfit_message
from .settings import Settings
from ..core import budgets as _registers_the_budget_kind  # noqa: F401
from ..core.pipelines import PipelineSpec, Step
from ..core.specs import JobSpec, Requirements, ShapeSpec, Spec, parse_spec
from .store import Store
from ..core.yaml_documents import DocumentTextError, parse_documents

KINDS = ("Shape", "Job", "Pipeline", "Budget")


@dataclass(frozen=True)
class Document:
    body: Any
    base_dir: Path
    origin: str  # "file.yaml#2" for messages


def load_documents(paths: Iterable[str | Path]) -> list[Document]:
    """Every YAML / JSON document in the files ('---' separated), with where it came from.

    A file is read up to DOCUMENT_FILE_MAX_BYTES, must be UTF-8, and its documents are bounded in
    depth and size (aliases expanded) before they are built; each refusal is one SpecError line."""
    docs = []
    for raw in paths:
        path = Path(raw)
        name = repr(str(path))
        try:
            with open(path, "rb") as handle:
                data = handle.read(DOCUMENT_FILE_MAX_BYTES + 1)
        except OSError as exc:
            raise SpecError(f"file={name} cannot be read: {exc.strerror}", "file", str(path)) from None
        if len(data) > DOCUMENT_FILE_MAX_BYTES:
            raise SpecError(
                f"file={name} is larger than {DOCUMENT_FILE_MAX_BYTES // 2**20} MiB, the most a document file may be",
                "file", str(path),
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise SpecError(
                f"file={name} line {line} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                "file", str(path),
            ) from None
        try:
            bodies = parse_documents(text)
        except DocumentTextError as exc:
            where = f" line {exc.line}" if exc.line else ""
            raise SpecError(f"file={name}{where} is not valid YAML/JSON: {exc.problem}", "file", str(path)) from None
        for i, body in enumerate(bodies, 1):
            docs.append(Document(body, path.resolve().parent, f"{path}#{i}"))
    return docs


def prepare_job(spec: JobSpec, base_dir: Path, artifacts: ArtifactStore | None) -> JobSpec:
    """Resolve and content-hash the artifact, keep a copy of it, and pin the hash in the spec.
    ``artifacts`` None: hash and check it the same way, storing nothing (`apply --diff`)."""
    path = resolve_artifact(spec.artifact, base_dir)
    kind = artifact_kind(path)
    if kind != "file" and not spec.entrypoint:
        raise SpecError(
            f"Job {spec.name!r}: entrypoint is required for a {kind} artifact ({spec.artifact!r})", "entrypoint", None
        )
    problem = spec.entrypoint and entrypoint_path_problem(spec.entrypoint)  # refused before anything is stored
    if not problem:
        digest = content_hash(path)
        if artifacts is None:
            problem = check_unstored(path, digest, spec.entrypoint)
        else:
            stored = artifacts.put(path, digest)
            problem = spec.entrypoint and check_entrypoint(stored, spec.entrypoint)
    if problem:
        raise SpecError(
            f"Job {spec.name!r}: entrypoint={spec.entrypoint!r} {problem} ({spec.artifact!r})",
            "entrypoint", spec.entrypoint,
        )
    return spec.model_copy(update={"artifact": str(path), "artifact_hash": digest})


def artifact_name(spec: JobSpec) -> str:
    return Path(spec.artifact).name


def validate_specs(specs: list[Spec], store: Store) -> None:
    """Cross-document checks: duplicates, pinned shapes, and that every job fits some shape."""
    seen = set()
    for spec in specs:
        key = (spec.kind, spec.name)
        if key in seen:
            raise SpecError(f"{spec.kind} {spec.name!r} is declared twice in one apply", "name", spec.name)
        seen.add(key)
    shapes = {s.name: s for s in store.list("Shape")}
    shapes.update({s.name: s for s in specs if isinstance(s, ShapeSpec)})
    new_jobs = {s.name: s for s in specs if isinstance(s, JobSpec)}
    changed_shapes = any(isinstance(s, ShapeSpec) for s in specs)
    jobs = dict(new_jobs)
    if changed_shapes:
        jobs = {**{j.name: j for j in store.list("Job")}, **new_jobs}
    for job in jobs.values():
        check_job_fits(job, list(shapes.values()))
    pipelines = {p.name: p for p in specs if isinstance(p, PipelineSpec)}
    if changed_shapes or new_jobs:
        pipelines = {**{p.name: p for p in store.list("Pipeline")}, **pipelines}
    if pipelines:
        all_jobs = {**{j.name: j for j in store.list("Job")}, **new_jobs}
        for pipeline in pipelines.values():
            check_pipeline(pipeline, all_jobs, list(shapes.values()))


def step_requirements(job: JobSpec, step: Step) -> Requirements:
    """The job's requirements with the step's overrides laid over them."""
    if step.requirements is None:
        return job.requirements
    overrides = step.requirements.model_dump(exclude_none=True)
    return job.requirements.model_copy(update=overrides)


def check_pipeline(pipeline: PipelineSpec, jobs: dict[str, JobSpec], shapes: list[ShapeSpec]) -> None:
    """Every step (or sweep) names a declared job, and some allowed shape fits each step."""
    allowed = [s for s in shapes if pipeline.backends is None or s.backend in pipeline.backends]
    for step in pipeline.steps:
        name = step.job_name  # step.job, or step.sweep.job for a sweep step
        if name is None:
            continue
        job = jobs.get(name)
        if job is None:
            known = ", ".join(sorted(jobs)) or "none"
            field = "sweep.job" if step.sweep is not None else "job"
            raise SpecError(
                f"Pipeline {pipeline.name!r}: step {step.name!r} uses job {name!r}, which is not declared (known: {known})",
                f"steps.{step.name}.{field}", name,
            )
        pinned = step.shape or job.shape
        if pinned is not None and pinned not in {s.name for s in allowed}:
            raise SpecError(
                f"Pipeline {pipeline.name!r}: step {step.name!r} pins shape {pinned!r}, which is not a declared "
                f"shape{' on backends ' + ', '.join(pipeline.backends) if pipeline.backends else ''}",
                f"steps.{step.name}.shape", pinned,
            )
        message = unfit_message(step_requirements(job, step), allowed, pinned_shape=pinned, has_image=bool(job.image))
        if message:
            raise SpecError(f"Pipeline {pipeline.name!r}: step {step.name!r}: {message}", f"steps.{step.name}.requirements", None)


def check_job_fits(job: JobSpec, shapes: list[ShapeSpec], requirements=None) -> None:
    if job.shape is not None and job.shape not in {s.name for s in shapes}:
        raise SpecError(f"Job {job.name!r}: shape={job.shape!r} is not a declared shape", "shape", job.shape)
    message = unfit_message(
        requirements or job.requirements, shapes, pinned_shape=job.shape, has_image=bool(job.image)
    )
    if message:
        raise SpecError(f"Job {job.name!r}: {message}", "requirements", None)


def planned_specs(docs: list[Document], store: Store, artifacts: ArtifactStore | None) -> list[Spec]:
    """Every document validated as apply takes it; ``artifacts`` None stores no artifact copy."""
    specs: list[Spec] = []
    for doc in docs:
        spec = parse_spec(doc.body)
        if isinstance(spec, JobSpec):
            spec = prepare_job(spec, doc.base_dir, artifacts)
        specs.append(spec)
    validate_specs(specs, store)
    return specs


def apply_documents(docs: list[Document], store: Store, settings: Settings) -> list[dict[str, str]]:
    """Validate every document, then store them all in one transaction (or none)."""
    specs = planned_specs(docs, store, ArtifactStore(settings.artifacts_root))
    outcomes = store.apply(specs)
    return [{"kind": s.kind, "name": s.name, "result": r} for s, r in zip(specs, outcomes)]


def delete_entry(store: Store, kind: str, name: str, cancel_runs: bool = False, engine=None) -> None:
    """Remove one shape / job / pipeline, refusing what would break the rest of the catalog."""
    kind = kind.capitalize()
    if kind not in KINDS:
        raise SpecError(f"kind={kind!r} is not one of {', '.join(KINDS)}", "kind", kind)
    store.require(kind, name)
    if kind == "Shape":
        rest = [s for s in store.list("Shape") if s.name != name]
        for job in store.list("Job"):
            if job.shape == name:
                raise Conflict(f"shape {name!r} is pinned by job {job.name!r}; change or delete the job first")
            if unfit_message(job.requirements, rest, pinned_shape=job.shape, has_image=bool(job.image)):
                raise Conflict(f"deleting shape {name!r} leaves job {job.name!r} with no shape that fits")
    if kind in ("Job", "Pipeline"):
        live = store.count_live_runs(**{kind.lower(): name})
        if live and not cancel_runs:
            raise Conflict(
                f"{kind.lower()} {name!r} has {live} queued or running run(s); cancel them first "
                f"or delete with --cancel-runs"
            )
        if live and engine is not None:
            for run in store.list_runs(**({"job": name} if kind == "Job" else {}), state=("QUEUED", "STARTING", "RUNNING")):
                if kind == "Job" or run.pipeline == name:
                    engine.cancel(run.id, wait=True)
    if kind == "Job":
        for pipeline in store.list("Pipeline"):
            if name in pipeline.job_names():
                raise Conflict(f"job {name!r} is used by pipeline {pipeline.name!r}; change or delete the pipeline first")
    if not store.delete(kind, name):
        raise NotFound(f"{kind.lower()} {name!r} is not in the catalog")
