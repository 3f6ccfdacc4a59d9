"""What each of the web page's views shows, read from the store (bounded queries only) and the run's
folders (read as the daemon reads anything a job could have written: no link followed, regular files
only, a bounded number of bytes). Each builder returns a template's name and its context."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from ..core.budgets import period_start
from ..core.costs import spend_summary
from ..core.pipelines import PipelineSpec
from ..runtime.pipeline_records import pipeline_run_record
from ..store import metrics_queries, safefs, web_queries
from .web_models import NoQuery, RunsPageQuery, SpendQuery, cursor_text, parse_web_query
from .web_views import bars, layout_dag

LOG_TAIL_BYTES = 64 << 10
LOG_TAIL_LINES = 200
RESULTS_MAX_BYTES = 256 << 10
UNPLACED = "(not placed yet)"


def runs_view(daemon, query: str) -> tuple[str, dict[str, Any]]:
    wanted = parse_web_query(RunsPageQuery, query, "runs page")
    page = web_queries.runs_page(daemon.store, wanted.filter(daemon.clock.now()), wanted.cursor(), wanted.limit)
    filters = wanted.model_dump(exclude={"before", "limit"}, exclude_none=True)
    older = None
    if page.next is not None:
        older = "/?" + urlencode({**filters, "before": cursor_text(page.next),
                                  **({"limit": wanted.limit} if wanted.limit != 50 else {})})
    return "runs.html", {
        "runs": page.runs, "filters": filters, "older": older, "first_page": wanted.before is None,
        "newest": "/?" + urlencode(filters) if filters else "/", "states": _states(),
        "pipeline_runs": web_queries.pipeline_runs_page(daemon.store, wanted.pipeline, limit=10),
    }


def _states():
    from ..core.runs import ALL_STATES

    return list(ALL_STATES)


def run_view(daemon, query: str, run_id: str) -> tuple[str, dict[str, Any]]:
    parse_web_query(NoQuery, query, "run page")
    store = daemon.store
    run = store.get_run(run_id)
    shape = store.get("Shape", run.shape) if run.shape else None
    placement = run.placement or {}
    return "run.html", {
        "run": run, "spend": spend_summary(run, shape), "placement": placement,
        "alternatives": placement.get("alternatives") or [],
        "events": web_queries.latest_events(store, run_id),
        "log": _log_tail(daemon.settings.run_dir(run_id)),
        "results": _results(run.artifacts_dir),
    }


def _log_tail(run_dir) -> dict[str, Any]:
    """The last lines of a run's log (its stdout and stderr), or why there are none to show."""
    try:
        dir_fd = safefs.open_dir(run_dir)
    except FileNotFoundError:
        return {"missing": "no log yet"}
    except (OSError, safefs.UnsafeFile) as exc:
        return {"missing": f"not shown: {exc}"}
    try:
        fd = safefs.open_regular("run.log", dir_fd)
    except FileNotFoundError:
        return {"missing": "no log yet"}
    except (OSError, safefs.UnsafeFile) as exc:
        return {"missing": f"not shown: {exc}"}
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        handle.seek(max(0, size - LOG_TAIL_BYTES))
        data = handle.read(LOG_TAIL_BYTES)
    lines = data.decode("utf-8", "replace").splitlines()
    if size > LOG_TAIL_BYTES and lines:
        lines = lines[1:]  # the first one is cut
    return {"lines": lines[-LOG_TAIL_LINES:], "size": size}


def _results(artifacts_dir: str | None) -> dict[str, Any]:
    if not artifacts_dir:
        return {"missing": "no artifacts folder"}
    try:
        raw = safefs.read_beneath(artifacts_dir, "results.json", RESULTS_MAX_BYTES)
    except FileNotFoundError:
        return {"missing": "no results.json (yet)"}
    except (OSError, ValueError, safefs.UnsafeFile) as exc:
        return {"missing": f"not shown: {exc}"}
    try:
        return {"text": json.dumps(json.loads(raw), indent=2, sort_keys=True)}
    except (ValueError, RecursionError):
        return {"missing": "results.json is not JSON"}


def pipeline_view(daemon, query: str, prun_id: str) -> tuple[str, dict[str, Any]]:
    parse_web_query(NoQuery, query, "pipeline run page")
    store = daemon.store
    record = pipeline_run_record(store, prun_id)
    spec = PipelineSpec.model_validate(store.pipeline_runs.get(prun_id)["spec"]["pipeline"])
    order = spec.order()
    upstream = {name: sorted(spec.step(name).upstream(), key=order.index) for name in order}
    runs = {step["step"]: step for step in record["steps"]}
    return "pipeline.html", {"prun": record, "dag": layout_dag(order, upstream, runs), "order": order,
                             "upstream": upstream, "runs": runs}


def pipelines_view(daemon, query: str) -> tuple[str, dict[str, Any]]:
    parse_web_query(NoQuery, query, "pipeline runs page")
    return "pipelines.html", {"pipeline_runs": web_queries.pipeline_runs_page(daemon.store, limit=100)}


def spend_view(daemon, query: str) -> tuple[str, dict[str, Any]]:
    from ..store.report_queries import known_label_keys  # (pandas: imported when the page is first asked for)

    wanted = parse_web_query(SpendQuery, query, "spend page")
    store, now = daemon.store, daemon.clock.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - timedelta(days=wanted.days - 1)
    found = {d.day: d for d in web_queries.spend_by_day(store, since)}
    days = [(since + timedelta(days=i)).date() for i in range(wanted.days)]
    per_day = [found.get(d) or web_queries.DaySpend(d, 0.0, 0.0, 0) for d in days]
    keys = known_label_keys(store)
    key = wanted.key or (keys[0] if keys else "team")
    return "spend.html", {
        "days": wanted.days, "per_day": per_day, "key": key, "keys": keys,
        "chart": bars([(d.day.isoformat(), d.cost_usd) for d in per_day]),
        "by_label": web_queries.spend_by_label(store, key, since),
        "budgets": _budgets(daemon, now), "total": sum(d.cost_usd for d in per_day),
    }


def _budgets(daemon, now) -> list[dict[str, Any]]:
    ledger = daemon.engine.ledger
    out = []
    for budget in ledger.budgets():
        spent = ledger.spent(budget, period_start(budget.period, now))
        out.append({"budget": budget, "spent": spent, "share": spent / budget.limit_usd,
                    "meter": min(spent, budget.limit_usd)})
    return out


def shapes_view(daemon, query: str) -> tuple[str, dict[str, Any]]:
    parse_web_query(NoQuery, query, "shapes page")
    counts = metrics_queries.live_counts(daemon.store, UNPLACED)
    return "shapes.html", {"shapes": daemon.store.list("Shape"), "in_use": counts.in_use_by_shape,
                           "queued": counts.queued_by_shape, "unplaced": counts.queued_by_shape.get(UNPLACED, 0)}
