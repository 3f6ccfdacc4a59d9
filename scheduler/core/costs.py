"""Per-run spend arithmetic shared by `costwise show`, the metrics and the reports (pure, no pandas).

Utilization of a run is the share of what was paid for that it used: the GPU's when the run had a
GPU sampled (the GPU dominates the price of a GPU shape), else the CPU's share of the shape's vCPUs.
Idle spend is cost × (1 − utilization); a run whose utilization was not measured has no idle spend.
"""

from __future__ import annotations

from typing import Any

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
    mem_share = None
    if shape is not None and run.mem_peak_bytes is not None and shape.memory_gib:
        mem_share = run.mem_peak_bytes / (shape.memory_gib * GIB)
    return {
        "cost_usd": run.cost_usd,
        "saved_usd": run.saved_usd,
        "price_per_hour": run.price_per_hour,
        "billed_hours": hours,
        "utilization": utilization(run.cpu_util_avg, run.gpu_util_avg),
        "cpu_util_avg": run.cpu_util_avg,
        "gpu_util_avg": run.gpu_util_avg,
        "mem_peak_bytes": run.mem_peak_bytes,
        "mem_share_of_shape": mem_share,
        "idle_usd": idle_cost(run.cost_usd, run.cpu_util_avg, run.gpu_util_avg),
    }


def spend_line(summary: dict[str, Any]) -> str:
    """One human line from ``spend_summary``."""

    def pct(v):
        return "-" if v is None else f"{v * 100:.0f}%"

    price = summary["price_per_hour"]
    rate = f" at {usd_price(price)}/h" if price is not None else ""
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
