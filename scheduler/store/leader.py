"""One active daemon per catalog: a PostgreSQL advisory lock, or a file lock for SQLite.

The lock lives as long as the holder's connection (or file descriptor), so a daemon that dies —
even by kill -9 — releases it, and a standby polling for it takes over within its poll interval.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy import text

LOCK_KEY = 0x636F7374  # "cost"


class PostgresLeaderLock:
    def __init__(self, engine):
        self.engine = engine
        self._conn = None

    def try_acquire(self) -> bool:
        if self._conn is None:
            self._conn = self.engine.connect()
        got = self._conn.execute(text("select pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
        self._conn.commit()
        return bool(got)

    def still_held(self) -> bool:
        try:
            self._conn.execute(text("select 1")).scalar()
            self._conn.commit()
            return True
        except Exception:  # noqa: BLE001 - a dropped connection means the lock is gone
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("select pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None


class FileLeaderLock:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return True

    def still_held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def leader_lock(store, home: Path):
    if store.dialect == "postgresql":
        return PostgresLeaderLock(store.engine)
    return FileLeaderLock(home / "daemon.lock")
