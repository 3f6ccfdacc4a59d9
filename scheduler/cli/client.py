"""The thin client: with a daemon up on this host, `run`, `pipeline run`, `runs`, `show`, `logs`,
`cancel` and `shapes` ask its HTTP API instead of opening the catalog, so they import neither
SQLAlchemy nor pydantic nor numpy (a socket and json: wire.py; rich for tables). The daemon is found by
its beacon file under COSTWISE_HOME (store/heartbeat.py), written at each heartbeat; without a live
one, or with COSTWISE_THIN=0, the commands open the catalog as before."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator
from urllib.parse import urlencode, urlsplit

from ..core.errors import CostwiseError, NotFound, UserError
from ..store.heartbeat import Beacon, live_beacon
from . import wire

TOKEN_ENV = "COSTWISE_API_TOKEN"
STREAM_READ_TIMEOUT_S = 60.0  # the daemon sends a keep-alive line every few seconds of silence
ROUTABLE = re.compile(r"[A-Za-z0-9_.-]+")  # what the API's routes take as a run id or pipeline name


class Unreachable(Exception):
    """The daemon cannot answer (gone since its last beat, or asked of a name its routes cannot carry):
    the command asks the catalog instead, which answers as it always did."""


def segment(name: str) -> str:
    """``name`` as one segment of an API path; Unreachable when no route takes it (the catalog answers)."""
    if not ROUTABLE.fullmatch(name):
        raise Unreachable(f"{name!r} cannot be asked of the API")
    return name


class DaemonClient:
    def __init__(self, beacon: Beacon, token: str | None):
        url = urlsplit(beacon.url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.beacon, self.token = beacon, token

    def _send(self, method: str, path: str, body: Any, timeout: float) -> wire.Response:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = None if body is None else json.dumps(body).encode()
        try:
            sock = wire.send(self.host, self.port, method, path, headers, payload, timeout)
        except ConnectionError as exc:  # refused / reset before the request was taken: nothing happened
            raise Unreachable(str(exc)) from None
        response = wire.answer(sock, f"{method} {path}")
        if response.status >= 400:
            try:
                raise _error(response.status, response.read())
            finally:
                response.close()
        return response

    def call(self, method: str, path: str, body: Any = None, query: dict | None = None, timeout: float = 30.0) -> Any:
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        response = self._send(method, path, body if method == "POST" else None, timeout)
        try:
            return json.loads(response.read())
        finally:
            response.close()

    def stream(self, path: str, query: dict | None = None) -> Iterator[dict]:
        """The JSON lines of a streaming answer (keep-alive lines skipped), until the daemon ends it."""
        if query:
            path += "?" + urlencode(query)
        response = self._send("GET", path, None, STREAM_READ_TIMEOUT_S)
        try:
            for raw in response:
                if raw.strip():
                    event = json.loads(raw)
                    if event.get("event") != "tick":
                        yield event
        finally:
            response.close()

    def follow_run(self, run_id: str, lines: bool, on_line) -> dict:
        """Follow a run to its end (its output lines to ``on_line``); its final public record."""
        for event in self.stream(f"/runs/{segment(run_id)}/follow", {"lines": int(lines)}):
            if event["event"] == "line" and on_line is not None:
                on_line(event["text"])
            elif event["event"] == "end":
                return event["run"]
        raise CostwiseError(f"the daemon stopped answering before run {run_id} ended (it goes on: `costwise show {run_id}`)")

    def follow_pipeline_run(self, prun_id: str, on_step) -> dict:
        for event in self.stream(f"/pipeline-runs/{prun_id}/follow"):
            if event["event"] == "step" and on_step is not None:
                on_step(event["run"])
            elif event["event"] == "end":
                return event["pipeline_run"]
        raise CostwiseError(f"the daemon stopped answering before {prun_id} ended (it goes on: `costwise show {prun_id}`)")


def _error(status: int, raw: bytes) -> CostwiseError:
    try:
        message = json.loads(raw).get("error") or f"HTTP {status}"
    except ValueError:
        message = f"HTTP {status}"
    if status == 404:
        return NotFound(message)
    if 400 <= status < 500:
        return UserError(message)
    return CostwiseError(f"the daemon answered {status}: {message}")


def resolve_home(home: str | os.PathLike | None) -> Path:
    return Path(home or os.environ.get("COSTWISE_HOME") or Path.home() / ".costwise").expanduser().resolve()


def catalog_url(home: str | os.PathLike | None, db: str | None) -> str:
    """The catalog's URL as Settings.resolve finds it (--db, COSTWISE_DB, else the home's SQLite file)."""
    return db or os.environ.get("COSTWISE_DB") or f"sqlite:///{resolve_home(home) / 'catalog.db'}"


def find_daemon(home: str | os.PathLike | None, db: str | None) -> DaemonClient | None:
    """A client of the live daemon of this home's catalog, or None (then the CLI opens the catalog)."""
    if os.environ.get("COSTWISE_THIN", "1") == "0":
        return None
    home_path = resolve_home(home)
    if not home_path.is_dir():
        return None
    beacon = live_beacon(home_path, catalog_url(home_path, db))
    if beacon is None:
        return None
    token = os.environ.get(TOKEN_ENV) or None
    if beacon.token and not token:
        return None  # the API wants a token this shell does not have: the catalog answers instead
    return DaemonClient(beacon, token)


def notify(home: Path, db_url: str) -> None:
    """Wake the daemon after a run was queued in the catalog directly (it then dispatches at once)."""
    client = find_daemon(home, db_url)
    if client is None:
        return
    try:
        client.call("POST", "/wake", {}, timeout=2.0)
    except (Unreachable, OSError, CostwiseError):
        pass  # its poll still finds the run


def view(record: dict) -> SimpleNamespace:
    """A record's JSON as the attribute object the tables read."""
    return SimpleNamespace(**record)
