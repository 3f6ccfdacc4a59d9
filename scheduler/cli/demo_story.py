"""The demo's money: what the runs cost, saved by reuse, and saved against one shape sized for the
pipeline's largest step (the machine a pipeline is often given whole). Every figure is read from the
run records (the estimate before a run is runtime/estimates.py's, as `--estimate` prints it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..core.money import usd
from ..core.runs import CACHED, SKIPPED


@dataclass
class Story:
    spend_usd: float
    saved_usd: float  # by reuse: what the reused steps' original runs cost
    sized_shape: str | None  # the dearest shape a step ran on: one machine sized for the pipeline
    sized_cost_usd: float  # the executed steps' hours on that shape
    saved_vs_sized_usd: float
    executed: int
    reused: int

    def line(self) -> str:
        text = f"spend {usd(self.spend_usd)}, saved by reuse {usd(self.saved_usd)}"
        if self.sized_shape:
            text += (f", saved against running every step on {self.sized_shape} {usd(self.saved_vs_sized_usd)} "
                     f"(it would have cost {usd(self.sized_cost_usd)})")
        return text

    def as_dict(self) -> dict:
        return asdict(self)


def money_story(records) -> Story:
    ran = [r for r in records if r.state not in (CACHED, SKIPPED) and r.shape and r.price_per_hour]
    sized = max(ran, key=lambda r: r.price_per_hour, default=None)
    hours = sum((r.duration_s or 0.0) for r in ran) / 3600.0
    sized_cost = hours * sized.price_per_hour if sized else 0.0
    spend = sum(r.cost_usd for r in records)
    return Story(spend_usd=spend, saved_usd=sum(r.saved_usd for r in records),
                 sized_shape=sized.shape if sized else None, sized_cost_usd=sized_cost,
                 saved_vs_sized_usd=max(sized_cost - sum(r.cost_usd for r in ran), 0.0),
                 executed=len(ran), reused=sum(r.state == CACHED for r in records))


def month_lines(month, story: Story) -> list[str]:
    nights = len(month.nights)
    paid = sum(any(s["state"] not in (CACHED, SKIPPED) for s in p["steps"]) for p in month.nights)
    return [
        f"{nights} nights: {story.executed} steps ran, {story.reused} were reused "
        f"({nights - paid} nights reused everything)",
        f"the month: {story.line()}",
        f"without reuse or per-step shapes it would have cost {usd(story.spend_usd + story.saved_usd + story.saved_vs_sized_usd)}"
        f" (reuse counted at the reused runs' cost)",
        f"the month's report, last 15 nights against the 15 before: {month.report}",
    ]
