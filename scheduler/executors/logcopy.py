"""Copying a container's timestamped log lines into the run's log file, safely across restarts.

Docker and Kubernetes both prefix each line with an RFC 3339 timestamp when asked. The copier strips
it, appends the line to the run's log and remembers the newest timestamp in a small file beside the
log (``run.log.pos``, written after each append), so a restarted daemon asks only for lines since
then and drops the ones it already has: none are lost, and at most the lines of one append (cut
short by a crash between the two writes) appear twice.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

class LogCopier:
    def __init__(self, log_path: str | Path):
        self.log_path = Path(log_path)
        self.pos_path = self.log_path.with_name(self.log_path.name + ".pos")
        self.last_ts = self._read_pos()
        self._lock = threading.Lock()
        self._pending = b""

    def _read_pos(self) -> str | None:
        try:
            return self.pos_path.read_text().strip() or None
        except OSError:
            return None

    def since_epoch(self) -> float | None:
        """Where a restarted copier resumes: the newest copied line's time (seconds since the epoch)."""
        return None if self.last_ts is None else parse_ts(self.last_ts)

    def feed(self, chunk: bytes) -> None:
        """Take raw bytes of ``TIMESTAMP line\\n`` records (chunks may split or join lines)."""
        with self._lock:
            data = self._pending + chunk
            lines = data.split(b"\n")
            self._pending = lines.pop()
            self._write([line + b"\n" for line in lines])

    def close(self) -> None:
        with self._lock:
            if self._pending:
                self._write([self._pending])
                self._pending = b""
            self._save_pos()

    def _write(self, records: list[bytes]) -> None:
        out = []
        for record in records:
            ts, sep, text = record.partition(b" ")
            stamp = ts.decode("ascii", "replace")
            if not sep or not _looks_like_ts(stamp):  # no timestamp: keep the line as it is
                out.append(record)
                continue
            if self.last_ts is not None and _ts_key(stamp) <= _ts_key(self.last_ts):
                continue  # copied before a restart
            self.last_ts = stamp
            out.append(text)
        if out:
            with open(self.log_path, "ab") as log:
                log.write(b"".join(out))
            self._save_pos()

    def _save_pos(self) -> None:
        if self.last_ts is not None:
            self.pos_path.write_text(self.last_ts)

    def note(self, text: str) -> None:
        """A line of costwise's own in the run's log (e.g. what happened at the deadline)."""
        with self._lock, open(self.log_path, "a") as log:
            log.write(f"[costwise] {text}\n")


def _looks_like_ts(stamp: str) -> bool:
    return len(stamp) >= 20 and stamp[4] == "-" and stamp[10] == "T"


def _ts_key(stamp: str) -> tuple[str, str]:
    """Sortable form of an RFC 3339 UTC timestamp with 0..9 fraction digits."""
    main, _, frac = stamp.rstrip("Z").partition(".")
    return main, frac.ljust(9, "0")


def parse_ts(stamp: str) -> float:
    main, _, frac = stamp.rstrip("Z").partition(".")
    base = datetime.strptime(main[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return base + (float("0." + frac[:6]) if frac else 0.0)
