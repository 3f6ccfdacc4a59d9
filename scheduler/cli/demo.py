"""`costwise demo`: the main job on the embedded default, end to end in well under a minute.

Declares shapes priced from the public catalog shipped in the package (demo_assets/prices: AWS
on-demand list prices, run here as local slices of this machine) and the example retraining
pipeline, prints what each step is expected to cost, runs it, changes one training
hyper-parameter and runs it again (prepare is reused), runs a job past its max runtime, then
replays a month of nightly retraining in simulated time (demo_month.py) and tells the money
story: spend, saved by reuse, and saved against running every step on the shape the largest step
needs (what one machine sized for the pipeline would have cost).
"""

from __future__ import annotations

import json
import sys

from ..runtime.context import AppContext
from ..store.catalog import Document, apply_documents
from .examples import ASSETS, RETRAIN, retrain_documents

PRICES = ASSETS / "prices" / "public-on-demand.csv"
SHAPES = ("t3.medium", "m5.large", "m5.xlarge", "r5.2xlarge")  # recognisable general-purpose sizes
TRAIN_NEEDS = {"cpus": 4, "memory_gib": 16}  # the demo's training asks for a bigger machine than the rest
RUNAWAY = {"kind": "Job", "name": "runaway", "artifact": "runaway.py", "max_runtime": "2s", "stop_grace": "1s",
           "requirements": {"cpus": 1, "memory_gib": 1}, "labels": {"team": "platform", "project": "demo"}}


def catalog_shapes() -> list[dict]:
    """The demo's shapes: catalog instance types by name, size and list price, run as local processes."""
    from ..core.price_catalog import parse_catalog

    offers = {o.instance_type: o for o in parse_catalog(PRICES.read_text().splitlines()).offers}
    return [{"kind": "Shape", "name": name, "backend": "local", "vcpus": offers[name].vcpus,
             "memory_gib": offers[name].memory_gib, "price_per_hour": offers[name].price_per_hour, "capacity": 2}
            for name in SHAPES]


def documents(settings) -> list[Document]:
    docs = [Document(body, PRICES.parent, "public price catalog") for body in catalog_shapes()]
    for body in retrain_documents():
        if body.get("name") == "register":  # keep model versions under this catalog's home
            body["env"] = {"MODEL_REGISTRY": str(settings.home / "models" / "abalone")}
        if body.get("name") == "train":
            body["max_runtime"] = "6h"  # the month's nights run in simulated hours
        if body.get("kind") == "Pipeline":
            for step in body["steps"]:
                if step["name"] == "train":
                    step["requirements"] = dict(TRAIN_NEEDS)
        docs.append(Document(body, RETRAIN, "retrain example"))
    docs.append(Document(RUNAWAY, ASSETS, "demo"))
    return docs


def declare(app: AppContext) -> list[dict]:
    return apply_documents(documents(app.settings), app.store, app.settings)


def run_demo(app: AppContext, as_json: bool = False) -> int:
    from rich.console import Console

    from ..runtime.pipeline_runner import PipelineRunner
    from ..reporting.views import pipeline_tree, runs_table
    from ..runtime.estimates import estimate_pipeline_run
    from .demo_story import money_story, month_lines

    out = Console(stderr=as_json, width=None if sys.stdout.isatty() else 170)
    out.print(f"[bold]costwise demo[/] — catalog {app.settings.db_url}")
    declare(app)
    out.print(f"declared {len(SHAPES)} shapes priced from the public catalog ({', '.join(SHAPES)}; AWS us-east-1 "
              "on-demand list prices, run here as local processes), the retraining pipeline "
              "(prepare → train → evaluate → register | reject) and a runaway job")
    runner = PipelineRunner(app.engine)
    out.print("\n[bold]estimate[/] before the first run (what `costwise pipeline run retrain --estimate` prints):")
    _estimate(out, estimate_pipeline_run(app.engine, "retrain", force_all=True))
    first = runner.execute(runner.submit("retrain", force_all=True, trigger="demo")["id"])
    out.print("\n[bold]1. full run[/] (every step runs on its own cheapest fitting shape)")
    out.print(pipeline_tree(runner, first))
    rate = _new_learning_rate(runner)
    out.print(f"\n[bold]estimate[/] before the second run (learning_rate {rate}: durations from the first run, "
              "prepare's cache hit foreseen):")
    _estimate(out, estimate_pipeline_run(app.engine, "retrain", {"learning_rate": rate}))
    second = runner.execute(runner.submit("retrain", {"learning_rate": rate}, trigger="demo")["id"])
    out.print(f"\n[bold]2. learning_rate 0.05 → {rate}[/]: prepare is reused, train / evaluate / register rerun")
    out.print(pipeline_tree(runner, second))
    runaway = app.engine.run_to_completion(app.engine.submit("runaway", message="queued by the demo"))
    out.print(f"\n[bold]3. max runtime[/]: runaway (ignores SIGTERM) → {runaway.state} after "
              f"{runaway.duration_s:.1f}s ({runaway.reason})")
    records = [*app.store.list_runs(pipeline_run=first["id"], newest_first=False),
               *app.store.list_runs(pipeline_run=second["id"], newest_first=False), runaway]
    out.print(runs_table(records, title="demo runs"))
    story = money_story(records)
    out.print(story.line())
    report_path = _write_report(app, out)
    month = _month(app, out)
    month_story = money_story(month.records)
    _lines(out, month_lines(month, month_story))
    if as_json:
        json.dump({"pipeline_runs": [first, second], "runaway": runaway.public(), "spend_usd": story.spend_usd,
                   "saved_usd": story.saved_usd, "report": report_path,
                   "month": {"nights": len(month.nights), "report": month.report, **month_story.as_dict(),
                             "states": [p["state"] for p in month.nights]}}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    ok = (first["state"], second["state"], runaway.state) == ("SUCCEEDED", "SUCCEEDED", "TIMED_OUT")
    ok = ok and all(p["state"] == "SUCCEEDED" for p in month.nights)
    reused = [s["step"] for s in second["steps"] if s["state"] == "CACHED"]
    return 0 if ok and reused == ["prepare"] else 1


def _estimate(out, est) -> None:
    from .estimates import pipeline_estimate_view

    table, lines = pipeline_estimate_view(est)
    out.print(table)
    _lines(out, lines)


def _lines(out, lines: list[str]) -> None:
    for line in lines:
        out.print(line, markup=False, highlight=False)


def _month(app: AppContext, out):
    from .demo_month import NIGHTS, SCALE, replay_month

    out.print(f"\n[bold]4. a month of nightly retraining[/]: {NIGHTS} nights at 03:00 in simulated time through the "
              f"real engine (1 s of a step here stands for {SCALE / 3600:g} h of a real night's work); the learning "
              "rate changes weekly and the data is re-split twice")
    return replay_month(app.settings, lambda store, settings: apply_documents(documents(settings), store, settings))


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
