"""The demo's month: thirty nights of the retraining pipeline, in simulated time through the real engine.

Its own catalog (under the demo's home, made fresh each time), its own clock: ``ReplayClock`` jumps to
03:00 of each night (the pipeline's schedule) and, while a night's steps run, lets simulated time pass
at ``SCALE`` times real time, so the seconds the example's steps really take stand for the hours a real
retraining takes, and every figure (durations, spend, savings) is the engine's own record of them.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

SCALE = 3600.0  # one real second of a step stands for one hour of a real night's work
NIGHTS = 30
FIRST_NIGHT = datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)  # a Monday, 03:00 UTC
NEW_RATE_NIGHTS = {7: "0.08", 14: "0.1", 21: "0.12", 28: "0.15"}  # a weekly tuning change: train reruns
NEW_DATA_NIGHTS = (10, 24)  # the data set is re-split: prepare reruns, its outputs come out the same


class ReplayClock:
    """Simulated time: jumps to a given moment (``advance_to``), then moves ``scale`` times real time."""

    def __init__(self, start: datetime, scale: float = SCALE):
        self.scale = scale
        self._base, self._anchor = start, time.monotonic()

    def now(self) -> datetime:
        return self._base + timedelta(seconds=(time.monotonic() - self._anchor) * self.scale)

    def monotonic(self) -> float:
        return time.monotonic() * self.scale

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / self.scale)

    def wait(self, event, seconds: float) -> bool:
        return event.wait(seconds / self.scale)

    def advance_to(self, when: datetime) -> None:
        if when > self.now():
            self._base, self._anchor = when, time.monotonic()


@dataclass
class Month:
    nights: list[dict]
    records: list
    home: str
    report: str | None


def replay_month(settings, declare) -> Month:
    """Run the nights; ``declare(store, settings)`` puts the demo's shapes and pipeline in the new catalog."""
    from ..runtime.engine import Engine
    from ..runtime.pipeline_runner import PipelineRunner
    from ..store.settings import Settings
    from ..store.store import Store

    home = settings.home / "demo-month"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    month = Settings(home, f"sqlite:///{home / 'catalog.db'}")
    clock = ReplayClock(FIRST_NIGHT)
    store = Store.open_home(month, clock)
    try:
        declare(store, month)
        runner = PipelineRunner(Engine(month, store, clock))
        nights, rate = [], "0.05"
        for night in range(NIGHTS):
            clock.advance_to(FIRST_NIGHT + timedelta(days=night))
            rate = NEW_RATE_NIGHTS.get(night, rate)
            force = ["prepare"] if night in NEW_DATA_NIGHTS else None
            prun = runner.submit("retrain", {"learning_rate": rate}, force_steps=force, trigger="nightly")
            nights.append(runner.execute(prun["id"]))
        records = [r for p in nights for r in store.list_runs(pipeline_run=p["id"], newest_first=False)]
        report = _report(store, home, clock.now())
    finally:
        store.close()
    return Month(nights, records, str(home), report)


def _report(store, home, now) -> str | None:
    from ..reporting.report import write_report

    path = home / "month-costs.html"
    write_report(store, "html", path, since=FIRST_NIGHT + timedelta(days=NIGHTS // 2),
                 until=FIRST_NIGHT + timedelta(days=NIGHTS), group_by="step", now=now)
    return str(path)
