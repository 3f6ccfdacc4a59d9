"""The text exposition (format 0.0.4) of the history totals, written straight from them: a
10,000-job history has ~10^6 samples and prometheus-client's per-sample formatting takes seconds."""

from __future__ import annotations

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily

from .metrics_history import HISTOGRAMS, Totals


def counters(alloc: tuple[str, ...] = ("team",)) -> tuple:
    """(name, doc, label names, Totals attribute) of the history counters; ``alloc``: the cost-allocation labels."""
    return (
        ("costwise_runs", "Finished runs by final state.", ("job_name", "pipeline", "state"), "runs"),
        ("costwise_spend_dollars", "Money spent on finished runs (USD) by market (on_demand / spot, per attempt); "
         "runs still going: costwise_running_spend_dollars.", ("job_name", "pipeline", "step", "shape", "market", *alloc),
         "spend"),
        ("costwise_idle_spend_dollars", "Spend on capacity runs did not use: cost × (1 − utilization).",
         ("job_name", "shape", "market", *alloc), "idle"),
        ("costwise_spot_savings_dollars", "What finished runs' spot attempts would have cost on-demand (the shape's "
         "catalog price) less what they cost (USD).", ("job_name", "shape", *alloc), "spot_saved"),
        ("costwise_preemptions", "Preempted attempts of finished runs; runs not finished yet: costwise_running_preemptions.",
         ("job_name", "shape", *alloc), "preempt"),
        ("costwise_saved_dollars", "Money saved by reusing cached step outputs (USD).", ("job_name", "pipeline", "step"),
         "saved"),
        ("costwise_cache_lookups", "Step cache lookups by result.", ("pipeline", "step", "result"), "cache"),
    )


COUNTERS = counters()


def history_families(t: Totals, alloc: tuple[str, ...] = ("team",)):
    for name, doc, labels, attr in counters(alloc):
        family = CounterMetricFamily(name, doc, labels=labels)
        values = getattr(t, attr)
        for key in sorted(values):
            family.add_metric(list(key), values[key])
        yield family
    for key, spec in HISTOGRAMS.items():
        labels = ["job_name"] if spec.by_job_only else ["job_name", "shape"]
        family = HistogramMetricFamily(spec.name, spec.doc, labels=labels)
        bounds = [_le(b) for b in spec.buckets] + ["+Inf"]
        for label_values in sorted(t.hists[key]):
            n, total, *cumulative = t.hists[key][label_values]
            family.add_metric(list(label_values), list(zip(bounds, cumulative + [n])), total)
        yield family


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value) -> str:
    return repr(float(value))


def render_history(settled: Totals, recent: Totals, cache: dict, alloc: tuple[str, ...] = ("team",)) -> list[str]:
    """Text format 0.0.4 for the history families: settled + recent, label text cached per series."""
    out: list[str] = []
    for name, doc, labels, attr in counters(alloc):
        a, b = getattr(settled, attr), getattr(recent, attr)
        out.append(f"# HELP {name}_total {doc}\n# TYPE {name}_total counter\n")
        for key in sorted(a.keys() | b.keys()) if b else sorted(a):
            text = cache.get((labels, key))
            if text is None:
                text = cache[(labels, key)] = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(labels, key))
            out.append(f"{name}_total{{{text}}} {_num(a.get(key, 0) + b.get(key, 0))}\n")
    for hkey, spec in HISTOGRAMS.items():
        labels = ("job_name",) if spec.by_job_only else ("job_name", "shape")
        bounds = [_le(bound) for bound in spec.buckets]
        a, b = settled.hists[hkey], recent.hists[hkey]
        out.append(f"# HELP {spec.name} {spec.doc}\n# TYPE {spec.name} histogram\n")
        for key in sorted(a.keys() | b.keys()) if b else sorted(a):
            text = cache.get((labels, key))
            if text is None:
                text = cache[(labels, key)] = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(labels, key))
            values = a.get(key)
            extra = b.get(key)
            if values is None:
                values = extra
            elif extra is not None:
                values = [x + y for x, y in zip(values, extra)]
            n, total = values[0], values[1]
            lines = [f'{spec.name}_bucket{{{text},le="{le}"}} {_num(c)}\n' for le, c in zip(bounds, values[2:])]
            lines.append(f'{spec.name}_bucket{{{text},le="+Inf"}} {_num(n)}\n'
                         f"{spec.name}_count{{{text}}} {_num(n)}\n{spec.name}_sum{{{text}}} {_num(total)}\n")
            out.append("".join(lines))
    return out


def render_family(family) -> str:
    """Text format for a small family (gauges): no caching needed."""
    kind = family.type
    out = [f"# HELP {family.name} {family.documentation}\n# TYPE {family.name} {kind}\n"]
    for sample in family.samples:
        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sample.labels.items())
        out.append(f"{sample.name}{{{labels}}} {_num(sample.value)}\n" if labels else f"{sample.name} {_num(sample.value)}\n")
    return "".join(out)


def _le(bound: float) -> str:
    return repr(float(bound))
