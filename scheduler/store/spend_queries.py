"""What budgets read: spend since a time as one SUM per distinct label set, plus the live runs' burn."""

from __future__ import annotations

import json
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Text, cast, func, select

from . import schema as db
from ..core.runs import LIVE_STATES


class LabelSpend(NamedTuple):
    labels: dict[str, str]
    usd: float


class LiveBurn(NamedTuple):
    labels: dict[str, str]
    price_per_hour: float
    started_at: datetime


def _labels(value) -> dict[str, str]:
    if isinstance(value, str):
        value = json.loads(value)
    return value or {}


def finished_spend_by_labels(store, since: datetime) -> list[LabelSpend]:
    """Cost of the runs queued since ``since`` that hold no slot, summed per label set (few rows: label
    sets are few, runs many). Labels are grouped as text: PostgreSQL's json type has no equality."""
    r = db.runs.c
    text = cast(r.labels, Text)
    query = (select(text, func.sum(r.cost_usd)).where(r.queued_at >= since, r.state.not_in(LIVE_STATES))
             .group_by(text))
    with store.engine.connect() as conn:
        return [LabelSpend(_labels(labels), float(usd or 0.0)) for labels, usd in conn.execute(query)]


def live_burn(store, since: datetime) -> list[LiveBurn]:
    """The runs queued since ``since`` that are running now: what they cost so far is the caller's sum."""
    r = db.runs.c
    query = select(r.labels, r.price_per_hour, r.started_at).where(
        r.queued_at >= since, r.state.in_(LIVE_STATES), r.started_at.is_not(None))
    with store.engine.connect() as conn:
        return [LiveBurn(_labels(labels), float(price or 0.0), started) for labels, price, started in conn.execute(query)]
