"""Per-run spend arithmetic shared by `costwise show`, the metrics and the reports (pure, no pandas).

Utilization of a run is the share of what was paid for that it used: the GPU's when the run had a
GPU sampled (the GPU dominates the price of a GPU shape), else the CPU's share of the shape's vCPUs.
Idle spend is cost × (1 − utilization); a run whose utilization was not measured has no idle spend.
A run whose attempts were billed at different prices (spot, then on-demand once its deadline's slack
ran out) is summed per market and price from its attempt log, not shown at its last attempt's price.
"""

from __future__ import annotations

from typing import Any

from .attempts import LOG_KEY as ATTEMPT_LOG_KEY
from .money import usd, usd_price

GIB = 2**30


def utilization(cpu_util: float | None, gpu_util: float | None) -> float | None:
    """The share of the paid shape a run used, clipped to [0, 1]; None when not measured."""
    value = gpu_util if gpu_util is not None else cpu_util
    if value is None:
        return None
    return min(max(float(value), 0.0), 1.0)


def idle_cost(cost_usd: float, cpu_util: float | None, gpu_util: float | None) -> float | None:
    """cost × (1 − utilization): the money paid for capacity the run did not use."""
    used = utilization(cpu_util, gpu_util)
    return None if used is None else (cost_usd or 0.0) * (1.0 - used)


def spend_summary(run: Any, shape: Any | None = None) -> dict[str, Any]:
    """What one run cost and how much of its shape it used (for `costwise show`)."""
    hours = (run.duration_s or 0.0) / 3600.0 if run.started_at else 0.0
    price = run.price_per_hour
    # an ended run's log holds every attempt: it was billed for their time, not for the gaps while
    # it was queued again (a live run's log lacks the current attempt)
    mix = price_mix((run.extra or {}).get(ATTEMPT_LOG_KEY) or []) if run.ended_at else []
    if mix:
        hours = sum(part["seconds"] for part in mix) / 3600.0
        price = mix[0]["price_per_hour"] if len(mix) == 1 else price
    mem_share = None
    if shape is not None and run.mem_peak_bytes is not None and shape.memory_gib:
        mem_share = run.mem_peak_bytes / (shape.memory_gib * GIB)
    return {
        "cost_usd": run.cost_usd,
        "saved_usd": run.saved_usd,
        "price_per_hour": price,
        "billed_hours": hours,
        "utilization": utilization(run.cpu_util_avg, run.gpu_util_avg),
        "cpu_util_avg": run.cpu_util_avg,
        "gpu_util_avg": run.gpu_util_avg,
        "mem_peak_bytes": run.mem_peak_bytes,
        "mem_share_of_shape": mem_share,
        "idle_usd": idle_cost(run.cost_usd, run.cpu_util_avg, run.gpu_util_avg),
        "attempts": sum(part["attempts"] for part in mix) if mix else None,
        "price_mix": mix if len(mix) > 1 else None,
    }


def price_mix(attempt_log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run's attempts summed per (market, price), in the order first used."""
    parts: dict[tuple, dict[str, Any]] = {}
    for a in attempt_log:
        part = parts.setdefault((a["market"], a["price_per_hour"]), {
            "market": a["market"], "price_per_hour": a["price_per_hour"], "attempts": 0, "seconds": 0.0,
            "cost_usd": 0.0})
        part["attempts"] += 1
        part["seconds"] += a["seconds"]
        part["cost_usd"] += a["cost_usd"]
    return list(parts.values())


def spend_line(summary: dict[str, Any]) -> str:
    """One human line from ``spend_summary``."""

    def pct(v):
        return "-" if v is None else f"{v * 100:.0f}%"

    price, mix = summary["price_per_hour"], summary.get("price_mix")
    rate = f" at {usd_price(price)}/h" if price is not None else ""
    if mix:
        rate = f" over {summary['attempts']} attempts: " + ", ".join(
            f"{p['seconds']:.1f}s {p['market'].replace('_', '-')} at {usd_price(p['price_per_hour'])}/h" for p in mix)
    parts = [
        f"spend {usd(summary['cost_usd'])} ({summary['billed_hours'] * 3600:.1f}s{rate})",
        f"utilization {pct(summary['utilization'])} (cpu {pct(summary['cpu_util_avg'])}, "
        f"gpu {pct(summary['gpu_util_avg'])}, memory peak {pct(summary['mem_share_of_shape'])} of the shape)",
    ]
    if summary["idle_usd"] is not None:
        parts.append(f"idle {usd(summary['idle_usd'])}")
    if summary["saved_usd"]:
        parts.append(f"saved {usd(summary['saved_usd'])}")
    return "; ".join(parts)
