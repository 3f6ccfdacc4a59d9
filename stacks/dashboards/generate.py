"""Writes the Grafana dashboards (JSON) and provisioning files in this folder.

The JSON files are what Grafana loads (provisioning/ points at this folder); this script is how
they are kept consistent: edit here, run `python stacks/dashboards/generate.py`, commit both.
`tests/unit/test_metrics_dashboards.py` fails when the JSON is out of date with this script.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL_JOB = 'job_name=~"$job_name"'
SEL_TEAM = 'team=~"$team"'
SEL_SHAPE = 'shape=~"$shape"'
# Spend so far = finished runs' cost (a counter) + what runs still going have cost (a gauge): one selector over
# both names, summed, rises while a long run runs and does not jump when it ends (the money moves across).
SPENT = '{{__name__=~"costwise_spend_dollars_total|costwise_running_spend_dollars",{sel}}}'
BURN = "costwise_running_burn_dollars_per_hour"  # $/h of the runs running now
# Preempted attempts so far: finished runs' (a counter) + runs not finished yet (a gauge), as with spend.
PREEMPTED = '{{__name__=~"costwise_preemptions_total|costwise_running_preemptions",{sel}}}'
SPOT = 'market="spot"'


def spent(by: str, sel: str) -> str:
    return f"sum{f' by ({by})' if by else ''} ({SPENT.format(sel=sel)})"


def spent_in_range(by: str, sel: str) -> str:
    """Spend in the dashboard's range: how much spend so far grew (a subquery over the summed series, so a
    run's money moving from the gauge to the counter when it ends is no change)."""
    return f"delta(({spent(by, sel)})[$__range:])"


def variables() -> list[dict]:
    def query_var(name: str, label: str, metric: str) -> dict:
        definition = f"label_values({metric}, {name})"
        return {
            "name": name, "label": label, "type": "query", "datasource": DS,
            "definition": definition, "query": {"query": definition, "refId": f"{name}-values"},
            "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2, "sort": 1,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        }

    return [
        {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
         "current": {"selected": True, "text": "Prometheus", "value": "prometheus"}, "hide": 0},
        query_var("team", "Team", "costwise_spend_dollars_total"),
        query_var("job_name", "Job", "costwise_runs_total"),
        query_var("shape", "Shape", "costwise_shape_slots_total"),
    ]


class Panels:
    def __init__(self):
        self.items: list[dict] = []
        self.x = self.y = 0
        self.row_h = 0

    def add(self, kind: str, title: str, targets: list[tuple[str, str]], w: int = 12, h: int = 8,
            unit: str | None = None, description: str = "", **options) -> None:
        if self.x + w > 24:
            self.x, self.y = 0, self.y + self.row_h
            self.row_h = 0
        panel = {
            "id": len(self.items) + 1, "type": kind, "title": title, "description": description, "datasource": DS,
            "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h},
            "targets": [
                {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend,
                 **({"instant": True, "range": False, "format": "table"} if kind in ("table", "bargauge", "piechart") else {})}
                for i, (expr, legend) in enumerate(targets)
            ],
            "fieldConfig": {"defaults": {**({"unit": unit} if unit else {})}, "overrides": []},
            "options": options,
        }
        self.items.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def dashboard(uid: str, title: str, panels: Panels, description: str) -> dict:
    return {
        "uid": uid, "title": title, "description": description, "tags": ["costwise"], "editable": True,
        "schemaVersion": 39, "version": 1, "refresh": "30s", "time": {"from": "now-24h", "to": "now"},
        "timezone": "utc", "graphTooltip": 1, "templating": {"list": variables()}, "annotations": {"list": []},
        "panels": panels.items,
        "links": [{"title": "costwise dashboards", "type": "dashboards", "tags": ["costwise"], "asDropdown": True}],
    }


def overview() -> dict:
    p = Panels()
    p.add("stat", "Spend in range", [(f"sum({spent_in_range('', f'{SEL_TEAM},{SEL_JOB}')})", "spend")],
          w=6, h=4, unit="currencyUSD", description="Runs still going count as they go.")
    p.add("stat", "Saved by the step cache in range",
          [(f"sum(increase(costwise_saved_dollars_total{{{SEL_JOB}}}[$__range]))", "saved")], w=6, h=4, unit="currencyUSD")
    p.add("stat", "Cache hit ratio in range",
          [('sum(increase(costwise_cache_lookups_total{result="hit"}[$__range])) / '
            "sum(increase(costwise_cache_lookups_total[$__range]))", "hit ratio")], w=6, h=4, unit="percentunit")
    p.add("stat", "Runs active now", [("sum by (state) (costwise_runs_active)", "{{state}}")], w=6, h=4)
    p.add("timeseries", "Runs finished, by final state",
          [(f"sum by (state) (increase(costwise_runs_total{{{SEL_JOB}}}[$__rate_interval]))", "{{state}}")],
          description="Runs that ended in each interval, by the state they ended in.")
    p.add("timeseries", "Spend rate",
          [(f"sum({BURN}{{{SEL_TEAM},{SEL_JOB}}}) or vector(0)", "spend $/h"),
           (f"sum(rate(costwise_saved_dollars_total{{{SEL_JOB}}}[$__rate_interval])) * 3600", "saved $/h")],
          unit="currencyUSD", description="Dollars per hour the runs running now cost (and saved by reused steps).")
    p.add("bargauge", "Cache hit ratio by pipeline step",
          [('sum by (pipeline, step) (increase(costwise_cache_lookups_total{result="hit"}[$__range])) / '
            "sum by (pipeline, step) (increase(costwise_cache_lookups_total[$__range]))", "{{pipeline}}/{{step}}")],
          unit="percentunit")
    p.add("bargauge", "Savings by pipeline step",
          [(f"sum by (pipeline, step) (increase(costwise_saved_dollars_total{{{SEL_JOB}}}[$__range]))", "{{pipeline}}/{{step}}")],
          unit="currencyUSD")
    p.add("stat", "Failed, timed-out or canceled runs in range",
          [(f'sum(increase(costwise_runs_total{{state=~"FAILED|TIMED_OUT|CANCELED",{SEL_JOB}}}[$__range]))', "runs")], w=12, h=4)
    p.add("stat", "Spend all time (runs still going included)",
          [(spent("", f"{SEL_TEAM},{SEL_JOB}"), "spend")], w=12, h=4, unit="currencyUSD")
    return dashboard("costwise-overview", "costwise — overview", p,
                     "Runs by state, spend rate, savings and cache hit ratio.")


def spend() -> dict:
    p = Panels()
    p.add("timeseries", "Spend rate by team",
          [(f"sum by (team) ({BURN}{{{SEL_TEAM}}})", "{{team}}")],
          unit="currencyUSD", description="Dollars per hour the runs running now cost.")
    p.add("timeseries", "Spend so far by team",
          [(spent("team", SEL_TEAM), "{{team}}")], unit="currencyUSD",
          description="Finished runs' cost plus what runs still going have cost: rises while a long run runs.")
    p.add("piechart", "Spend by shape in range",
          [(spent_in_range("shape", f"{SEL_SHAPE},{SEL_TEAM}"), "{{shape}}")], unit="currencyUSD")
    p.add("bargauge", "Top 10 jobs by spend in range",
          [(f"topk(10, {spent_in_range('job_name', f'{SEL_TEAM},{SEL_JOB}')})", "{{job_name}}")], unit="currencyUSD")
    p.add("table", "Spend by team and shape (all time)",
          [(spent("team, shape", f"{SEL_TEAM},{SEL_SHAPE}"), "")], unit="currencyUSD")
    p.add("stat", "Spot share of spend in range",
          [(f"sum({spent_in_range('', f'{SPOT},{SEL_TEAM},{SEL_JOB}')}) / sum({spent_in_range('', f'{SEL_TEAM},{SEL_JOB}')})",
            "spot share")], w=6, unit="percentunit",
          description="Spend on spot attempts as a share of all spend (each attempt counts on its own market).")
    p.add("stat", "Spot savings in range",
          [(f"sum(increase(costwise_spot_savings_dollars_total{{{SEL_TEAM},{SEL_JOB}}}[$__range]))", "saved")], w=6,
          unit="currencyUSD", description="What finished runs' spot attempts would have cost on on-demand, less their cost.")
    p.add("bargauge", "Preemptions by job in range",
          [(f"topk(10, delta((sum by (job_name) ({PREEMPTED.format(sel=f'{SEL_TEAM},{SEL_JOB}')}))[$__range:]))",
            "{{job_name}}")], w=6, description="Spot attempts the market ended (runs still going included).")
    p.add("bargauge", "Spot savings by job in range",
          [(f"topk(10, sum by (job_name) (increase(costwise_spot_savings_dollars_total{{{SEL_TEAM},{SEL_JOB}}}[$__range])))",
            "{{job_name}}")], w=6, unit="currencyUSD")
    p.add("timeseries", "Idle spend rate by team",
          [(f"sum by (team) (rate(costwise_idle_spend_dollars_total{{{SEL_TEAM}}}[$__rate_interval])) * 3600", "{{team}}")],
          unit="currencyUSD", description="cost × (1 − utilization): money paid for capacity runs did not use.")
    p.add("stat", "Idle share of measured spend in range",
          [(f"sum(increase(costwise_idle_spend_dollars_total{{{SEL_TEAM},{SEL_JOB}}}[$__range])) / "
            f'sum(increase(costwise_spend_dollars_total{{{SEL_TEAM},{SEL_JOB},shape!=""}}[$__range]))', "idle share")],
          unit="percentunit")
    p.add("timeseries", "CPU utilization of runs (p50, p90) by shape",
          [(f"histogram_quantile(0.5, sum by (le, shape) (rate(costwise_run_cpu_utilization_ratio_bucket{{{SEL_SHAPE},{SEL_JOB}}}[$__rate_interval])))", "p50 {{shape}}"),
           (f"histogram_quantile(0.9, sum by (le, shape) (rate(costwise_run_cpu_utilization_ratio_bucket{{{SEL_SHAPE},{SEL_JOB}}}[$__rate_interval])))", "p90 {{shape}}")],
          unit="percentunit")
    p.add("bargauge", "Mean CPU utilization by job in range",
          [(f"sum by (job_name) (increase(costwise_run_cpu_utilization_ratio_sum{{{SEL_JOB}}}[$__range])) / "
            f"sum by (job_name) (increase(costwise_run_cpu_utilization_ratio_count{{{SEL_JOB}}}[$__range]))", "{{job_name}}")],
          unit="percentunit", description="Jobs low here are right-sizing candidates (`costwise report`).")
    p.add("bargauge", "Memory peak p90 by job in range",
          [(f"histogram_quantile(0.9, sum by (le, job_name) (increase(costwise_run_memory_peak_bytes_bucket{{{SEL_JOB}}}[$__range])))",
            "{{job_name}}")], unit="bytes")
    p.add("timeseries", "GPU utilization of runs (p50) by shape",
          [(f"histogram_quantile(0.5, sum by (le, shape) (increase(costwise_run_gpu_utilization_ratio_bucket{{{SEL_SHAPE}}}[$__range])))",
            "{{shape}}")], unit="percentunit")
    return dashboard("costwise-spend", "costwise — spend and utilization", p,
                     "Spend by team, job and shape; utilization and idle spend.")


def operations() -> dict:
    p = Panels()
    p.add("timeseries", "Queue depth by shape",
          [('sum by (shape) (costwise_queue_depth{shape=~"$shape|none"})', "{{shape}}")],
          description="'none': queued runs not placed on a shape yet.")
    p.add("timeseries", "Queue wait (p50, p95)",
          [(f"histogram_quantile(0.5, sum by (le) (rate(costwise_queue_wait_seconds_bucket{{{SEL_JOB}}}[$__rate_interval])))", "p50"),
           (f"histogram_quantile(0.95, sum by (le) (rate(costwise_queue_wait_seconds_bucket{{{SEL_JOB}}}[$__rate_interval])))", "p95")],
          unit="s")
    p.add("timeseries", "Slots in use / total by shape",
          [(f"sum by (shape) (costwise_shape_slots_in_use{{{SEL_SHAPE}}})", "in use {{shape}}"),
           (f"sum by (shape) (costwise_shape_slots_total{{{SEL_SHAPE}}})", "total {{shape}}")])
    p.add("stat", "Slot occupancy now",
          [(f"sum(costwise_shape_slots_in_use{{{SEL_SHAPE}}}) / sum(costwise_shape_slots_total{{{SEL_SHAPE}}})", "occupancy")],
          w=6, unit="percentunit")
    p.add("stat", "Metrics collection time", [("max(costwise_metrics_collect_seconds)", "collect")], w=3, unit="s")
    p.add("stat", "Leaders", [("sum(costwise_leader)", "leaders")], w=3,
          description="Daemons holding the leader lock: 1. Only the leader exports the catalog's figures.")
    p.add("timeseries", "Scheduler lag (p50, p99)",
          [("histogram_quantile(0.5, sum by (le) (rate(costwise_scheduler_lag_seconds_bucket[$__rate_interval])))", "p50"),
           ("histogram_quantile(0.99, sum by (le) (rate(costwise_scheduler_lag_seconds_bucket[$__rate_interval])))", "p99")],
          unit="s", description="How late the daemon acts on due schedules and dispatch ticks.")
    p.add("timeseries", "Run duration p50 by job",
          [(f"histogram_quantile(0.5, sum by (le, job_name) (rate(costwise_run_duration_seconds_bucket{{{SEL_JOB}}}[$__rate_interval])))",
            "{{job_name}}")], unit="s")
    p.add("table", "Shape prices", [(f"max by (shape, backend) (costwise_shape_price_dollars_per_hour{{{SEL_SHAPE}}})", "")],
          unit="currencyUSD")
    return dashboard("costwise-operations", "costwise — queue and scheduler health", p,
                     "Queue depth and wait, slot occupancy, scheduler lag, run durations, prices.")


DASHBOARDS = {"costwise-overview.json": overview, "costwise-spend.json": spend, "costwise-operations.json": operations}

DATASOURCE_YAML = """\
# Grafana provisioning: the Prometheus that scrapes the costwise daemon's /metrics.
apiVersion: 1
datasources:
  - name: Prometheus
    uid: prometheus
    type: prometheus
    access: proxy
    url: ${COSTWISE_PROMETHEUS_URL:-http://prometheus:9090}
    isDefault: true
    jsonData:
      timeInterval: 15s
"""

DASHBOARDS_YAML = """\
# Grafana provisioning: load the costwise dashboards from the folder they are mounted at.
apiVersion: 1
providers:
  - name: costwise
    folder: costwise
    type: file
    disableDeletion: false
    allowUiUpdates: false
    updateIntervalSeconds: 60
    options:
      path: /var/lib/grafana/dashboards/costwise
      foldersFromFilesStructure: false
"""

PROMETHEUS_YAML = """\
# A Prometheus scrape job for the costwise daemon (`costwise daemon --metrics-port 9464`).
scrape_configs:
  - job_name: costwise
    scrape_interval: 15s
    static_configs:
      - targets: ["costwise-daemon:9464"]
"""


def render() -> dict[Path, str]:
    files = {HERE / name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}
    files[HERE / "provisioning" / "datasources" / "costwise-prometheus.yaml"] = DATASOURCE_YAML
    files[HERE / "provisioning" / "dashboards" / "costwise.yaml"] = DASHBOARDS_YAML
    files[HERE / "prometheus-scrape.yaml"] = PROMETHEUS_YAML
    return files


def main() -> int:
    check = "--check" in sys.argv
    stale = []
    for path, text in render().items():
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if stale:
        print("out of date (run python stacks/dashboards/generate.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
