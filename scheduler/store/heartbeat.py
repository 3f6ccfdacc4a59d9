"""The daemon's heartbeat: a row in the meta table (the catalog's truth, for every host) and a beacon
file under COSTWISE_HOME (how a CLI on the same host finds the daemon's API without opening the catalog,
so without importing SQLAlchemy). SQLAlchemy is imported only by the functions that use the table."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

DAEMON_META_KEY = "daemon"
BEACON_NAME = "daemon.json"
BEACON_MAX_AGE_S = 5.0


def beat(store, url: str, pid: int, at_epoch_s: float) -> None:
    from . import schema as db

    with store.write() as conn:
        conn.execute(db.meta.delete().where(db.meta.c.key == DAEMON_META_KEY))
        conn.execute(db.meta.insert().values(key=DAEMON_META_KEY, value=f"{url}|{pid}|{at_epoch_s:.3f}"))


def clear(store) -> None:
    from . import schema as db

    with store.write() as conn:
        conn.execute(db.meta.delete().where(db.meta.c.key == DAEMON_META_KEY))


def last_beat(store) -> tuple[str, int, float] | None:
    """(url, pid, epoch seconds) of the last heartbeat, or None."""
    from sqlalchemy import select

    from . import schema as db

    with store.engine.connect() as conn:
        row = conn.execute(select(db.meta.c.value).where(db.meta.c.key == DAEMON_META_KEY)).first()
    if row is None:
        return None
    url, pid, at = row.value.split("|")
    return url, int(pid), float(at)


# -- the beacon file -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Beacon:
    url: str
    pid: int
    at: float  # epoch seconds of the beat
    host: str
    catalog: str  # catalog_id() of the daemon's catalog URL (the URL itself may hold a password)
    token: bool  # whether the API wants a bearer token


def catalog_id(db_url: str) -> str:
    return hashlib.sha256(db_url.encode()).hexdigest()[:24]


def write_beacon(home: Path, beacon: Beacon) -> None:
    """Replace the beacon atomically (a reader never sees half of one)."""
    path = Path(home) / BEACON_NAME
    tmp = path.with_name(f".{BEACON_NAME}.{os.getpid()}")
    tmp.write_text(json.dumps(beacon.__dict__))
    os.replace(tmp, path)


def clear_beacon(home: Path, pid: int) -> None:
    found = read_beacon(home)
    if found is not None and found.pid == pid:
        (Path(home) / BEACON_NAME).unlink(missing_ok=True)


def read_beacon(home: Path) -> Beacon | None:
    try:
        data = json.loads((Path(home) / BEACON_NAME).read_text())
        return Beacon(str(data["url"]), int(data["pid"]), float(data["at"]), str(data["host"]),
                      str(data["catalog"]), bool(data["token"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live_beacon(home: Path, db_url: str, now: float | None = None) -> Beacon | None:
    """The beacon of a daemon of this catalog on this host that beat recently and whose process lives."""
    found = read_beacon(home)
    if found is None or found.catalog != catalog_id(db_url) or found.host != socket.gethostname():
        return None
    if (now if now is not None else time.time()) - found.at > BEACON_MAX_AGE_S:
        return None
    try:
        os.kill(found.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, owned by another user
        pass
    return found
