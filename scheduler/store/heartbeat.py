"""The daemon's heartbeat in the meta table: how the CLI finds a live daemon's API."""

from __future__ import annotations

from sqlalchemy import select

from . import schema as db

DAEMON_META_KEY = "daemon"


def beat(store, url: str, pid: int, at_epoch_s: float) -> None:
    with store.write() as conn:
        conn.execute(db.meta.delete().where(db.meta.c.key == DAEMON_META_KEY))
        conn.execute(db.meta.insert().values(key=DAEMON_META_KEY, value=f"{url}|{pid}|{at_epoch_s:.3f}"))


def clear(store) -> None:
    with store.write() as conn:
        conn.execute(db.meta.delete().where(db.meta.c.key == DAEMON_META_KEY))


def last_beat(store) -> tuple[str, int, float] | None:
    """(url, pid, epoch seconds) of the last heartbeat, or None."""
    with store.engine.connect() as conn:
        row = conn.execute(select(db.meta.c.value).where(db.meta.c.key == DAEMON_META_KEY)).first()
    if row is None:
        return None
    url, pid, at = row.value.split("|")
    return url, int(pid), float(at)
