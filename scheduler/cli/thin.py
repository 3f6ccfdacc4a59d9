"""The commands' thin paths (a daemon is up: ask its API, client.py) and what both paths share: the
job's output lines while `run --wait` follows it, and the check that an artifact changed on disk since
it was applied (`--sync` re-applies it first)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from .app import console, emit, print_run
from .client import DaemonClient, segment, view


def line_printer(as_json: bool, quiet: bool):
    """Where a followed run's output lines go: stdout, or stderr when stdout is for JSON; None with --quiet."""
    if quiet:
        return None
    out = sys.stderr if as_json else sys.stdout

    def show(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    return show


# -- artifacts changed since apply ------------------------------------------------------------------
def changed_artifacts(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries ({job, artifact, artifact_hash}) whose artifact on disk no longer hashes as applied."""
    from ..store.artifacts import content_hash

    changed = []
    for entry in entries:
        path = Path(entry["artifact"])
        if not entry.get("artifact_hash") or not path.exists():
            continue  # gone: the stored copy still runs, as before
        try:
            fresh = content_hash(path)
        except Exception:  # noqa: BLE001 - unreadable now: the stored copy runs; apply would say why
            continue
        if fresh != entry["artifact_hash"]:
            changed.append(entry)
    return changed


def check_artifacts(entries: list[dict[str, Any]], sync: bool, app_ctx_factory) -> None:
    """One line per changed artifact; with ``sync`` re-apply those jobs first (through the catalog)."""
    changed = changed_artifacts(entries)
    if not changed:
        return
    if not sync:
        for entry in changed:
            typer.echo(f"note: job {entry['job']!r}: its artifact {entry['artifact']} changed on disk since it was "
                       f"applied; this run uses the applied copy (--sync re-applies it first)", err=True)
        return
    reapply(app_ctx_factory(), [entry["job"] for entry in changed])


def reapply(app_ctx, jobs: list[str]) -> None:
    from ..store.catalog import Document, apply_documents

    documents = []
    for name in jobs:
        spec = app_ctx.store.require("Job", name)
        body = {"kind": "Job", **spec.model_dump(mode="json", exclude={"artifact_hash"}, exclude_none=True)}
        documents.append(Document(body, Path(spec.artifact).parent, f"--sync {name}"))
    for result in apply_documents(documents, app_ctx.store, app_ctx.settings):
        typer.echo(f"synced: job {result['name']!r} re-applied from its changed artifact ({result['result']})", err=True)


def job_artifacts(app_ctx, job: str) -> list[dict[str, Any]]:
    spec = app_ctx.store.require("Job", job)
    return [{"job": spec.name, "artifact": spec.artifact, "artifact_hash": spec.artifact_hash}]


def pipeline_artifacts(app_ctx, pipeline: str) -> list[dict[str, Any]]:
    from ..daemon.api_follow import job_artifact, pipeline_jobs

    spec = app_ctx.store.require("Pipeline", pipeline)
    return [job_artifact(app_ctx.store.require("Job", name)) for name in pipeline_jobs(spec)]


# -- the thin paths ---------------------------------------------------------------------------------
def run(client: DaemonClient, body: dict[str, Any], wait: bool, quiet: bool, as_json: bool) -> None:
    record = client.call("POST", "/runs", {k: v for k, v in body.items() if v not in (None, [], {})})
    if not wait:
        return print_run(record, as_json)
    try:
        final = client.follow_run(record["id"], lines=not quiet, on_line=line_printer(as_json, quiet))
    except KeyboardInterrupt:
        client.call("POST", f"/runs/{record['id']}/cancel", {})
        raise
    print_run(final, as_json)
    raise typer.Exit(0 if final["state"] == "SUCCEEDED" else 1)


def pipeline_run(client: DaemonClient, name: str, body: dict[str, Any], wait: bool, as_json: bool, progress) -> None:
    record = client.call("POST", f"/pipelines/{segment(name)}/runs", body)
    if wait:
        try:
            record = client.follow_pipeline_run(record["id"], progress)
        except KeyboardInterrupt:
            client.call("POST", f"/runs/{record['id']}/cancel", {})
            raise
    print_pipeline_record(record, as_json)
    if wait:
        raise typer.Exit(0 if record["state"] == "SUCCEEDED" else 1)


def print_pipeline_record(record: dict[str, Any], as_json: bool) -> None:
    """A pipeline run from the API: its steps in the order the record lists them (the DAG view needs the
    pipeline's spec, so the catalog's path draws that one)."""
    if as_json:
        return emit(record)
    from rich.tree import Tree

    from ..reporting.views import STATE_STYLE, _step_label, money

    style = STATE_STYLE.get(record["state"], "")
    root = Tree(f"[bold]{record['pipeline']}[/] {record['id']} [{style}]{record['state']}[/] "
                f"cost {money(record['cost_usd'])} saved {money(record['saved_usd'])}"
                + (f" — {record['reason']}" if record.get("reason") else ""))
    for step in record["steps"]:
        root.add(_step_label(step["step"], step, []))
    console().print(root)


def runs(client: DaemonClient, query: dict[str, Any], as_json: bool, wide: bool = False) -> None:
    records = client.call("GET", "/runs", query=query)
    if as_json:
        return emit(records)
    from ..reporting.views import print_table, runs_table

    print_table(console(), runs_table([view(r) for r in records], wide=wide), wide)


def show(client: DaemonClient, run_id: str, as_json: bool, print_detail) -> None:
    if run_id.startswith("p-"):
        return print_pipeline_record(client.call("GET", f"/pipeline-runs/{segment(run_id)}"), as_json)
    detail = client.call("GET", f"/runs/{segment(run_id)}")
    if as_json:
        return emit(detail)
    record = view({**detail, "extra": {"attempt_log": detail.get("attempt_log", [])}})
    print_detail(record, detail["spend"], detail["events"], sweep_of(client, detail))


def sweep_of(client: DaemonClient, detail: dict[str, Any]):
    """(summary, trials) of a sweep step's run, the trials from its pipeline run's record; else None."""
    if detail.get("sweep") is None or not detail.get("pipeline_run"):
        return None
    prun = client.call("GET", f"/pipeline-runs/{detail['pipeline_run']}")
    step = next((s for s in prun["steps"] if s["step"] == detail.get("step")), {})
    return detail["sweep"], step.get("trials", [])


def cancel(client: DaemonClient, run_id: str, as_json: bool) -> None:
    answer = client.call("POST", f"/runs/{segment(run_id)}/cancel", {})
    if run_id.startswith("p-"):
        return print_pipeline_record(answer, as_json)
    final = answer if answer["state"] not in ("STARTING", "RUNNING") else client.follow_run(run_id, False, None)
    print_run(final, as_json)


def logs(client: DaemonClient, log_path: Path, run_id: str, follow: bool) -> None:
    from ..core.errors import UserError

    if follow:
        client.follow_run(run_id, lines=True, on_line=line_printer(False, False))
        return
    if not log_path.exists():
        record = client.call("GET", f"/runs/{segment(run_id)}")  # a 404 names an unknown run
        if record["state"] in ("QUEUED", "STARTING", "RUNNING"):
            raise UserError(f"run {run_id!r} has no log yet (state {record['state']})")
        return
    with open(log_path, "rb") as handle:
        while chunk := handle.read(65536):
            sys.stdout.buffer.write(chunk)
    sys.stdout.flush()


def shapes(client: DaemonClient, as_json: bool, wide: bool = False) -> None:
    found = client.call("GET", "/shapes")
    if as_json:
        return emit(found)
    from ..reporting.views import print_table, shapes_table

    print_table(console(), shapes_table([view(s) for s in found], wide=wide), wide)


def try_shapes(ctx, as_json: bool) -> bool:
    """`costwise shapes` (the plain catalog listing) from the daemon; False when none answers."""
    from .app import thin_client
    from .client import Unreachable

    client = thin_client(ctx)
    if client is None:
        return False
    try:
        shapes(client, as_json, bool(ctx.params.get("wide")))
    except Unreachable:
        return False
    return True
