"""`costwise demo`: the main job on the embedded default, end to end in well under a minute.

Declares local shapes and the example retraining pipeline, runs it, changes one training
hyper-parameter and runs it again (prepare is reused, the rest reruns, and the saved dollars
show), runs a job past its max runtime, then prints the runs and writes a cost report.
"""

from __future__ import annotations

import json
import sys
from ..store.catalog import Document, apply_documents
from ..runtime.context import AppContext
from .examples import ASSETS, RETRAIN, retrain_documents

RUNAWAY = {"kind": "Job", "name": "runaway", "artifact": "runaway.py", "max_runtime": "2s", "stop_grace": "1s",
           "requirements": {"cpus": 1, "memory_gib": 1}, "labels": {"team": "platform", "project": "demo"}}


def declare(app: AppContext) -> list[dict]:
    docs = []
    for body in retrain_documents(include_shapes=True):
        if body.get("name") == "register":  # keep model versions under this catalog's home
            body["env"] = {"MODEL_REGISTRY": str(app.settings.home / "models" / "abalone")}
        docs.append(Document(body, RETRAIN, "retrain example"))
    docs.append(Document(RUNAWAY, ASSETS, "demo"))
    return apply_documents(docs, app.store, app.settings)


def run_demo(app: AppContext, as_json: bool = False) -> int:
    from rich.console import Console

    from ..runtime.pipeline_runner import PipelineRunner
    from ..reporting.views import money, pipeline_tree, runs_table

    out = Console(stderr=as_json, width=None if sys.stdout.isatty() else 170)
    out.print(f"[bold]costwise demo[/] — catalog {app.settings.db_url}")
    declare(app)
    out.print("declared 4 local shapes, the retraining pipeline (prepare → train → evaluate → register | reject) "
              "and a runaway job")
    runner = PipelineRunner(app.engine)
    first = runner.execute(runner.submit("retrain", force_all=True, trigger="demo")["id"])
    out.print("\n[bold]1. full run[/] (every step runs on its own cheapest fitting shape)")
    out.print(pipeline_tree(runner, first))
    rate = _new_learning_rate(runner)
    second = runner.execute(runner.submit("retrain", {"learning_rate": rate}, trigger="demo")["id"])
    out.print(f"\n[bold]2. learning_rate 0.05 → {rate}[/]: prepare is reused, train / evaluate / register rerun")
    out.print(pipeline_tree(runner, second))
    runaway = app.engine.run_to_completion(app.engine.submit("runaway", message="queued by the demo"))
    out.print(f"\n[bold]3. max runtime[/]: runaway (ignores SIGTERM) → {runaway.state} after "
              f"{runaway.duration_s:.1f}s ({runaway.reason})")
    records = [*app.store.list_runs(pipeline_run=first["id"], newest_first=False),
               *app.store.list_runs(pipeline_run=second["id"], newest_first=False), runaway]
    out.print(runs_table(records, title="demo runs"))
    spend = sum(r.cost_usd for r in records)
    saved = sum(r.saved_usd for r in records)
    out.print(f"spend {money(spend)}, saved by reuse {money(saved)}")
    report_path = _write_report(app, out)
    if as_json:
        json.dump({"pipeline_runs": [first, second], "runaway": runaway.public(), "spend_usd": spend,
                   "saved_usd": saved, "report": report_path}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    ok = (first["state"], second["state"], runaway.state) == ("SUCCEEDED", "SUCCEEDED", "TIMED_OUT")
    reused = [s["step"] for s in second["steps"] if s["state"] == "CACHED"]
    return 0 if ok and reused == ["prepare"] else 1


def _new_learning_rate(runner) -> str:
    """0.1 the first time; a value no earlier demo in this catalog used after that (else it is cached)."""
    demo_runs = [p for p in runner.runs.list(pipeline="retrain", limit=None) if p.get("trigger") == "demo"]
    earlier_demos = (len(demo_runs) - 1) // 2  # each demo runs it twice; this one's first run is in the list
    return f"{0.1 + 0.001 * earlier_demos:.3f}".rstrip("0")


def _write_report(app: AppContext, out) -> str | None:
    try:
        from ..reporting.report import write_report
    except ImportError:
        return None
    path = app.settings.home / "reports" / "demo-costs.html"
    write_report(app.store, "html", path)
    out.print(f"cost report: {path}")
    return str(path)
