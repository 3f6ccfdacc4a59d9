"""Starts a real `costwise daemon` process for a test and talks to its HTTP API."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def wait_until(predicate, timeout=45, step=0.1):
    """Poll until predicate() is truthy; return that value (AssertionError after timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DaemonProcess:
    def __init__(self, home: Path, db_url: str | None = None, port: int | None = None, extra_args=(), env=None,
                 token: str | None = None):
        self.home, self.db_url, self.token = home, db_url, token
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = home / f"daemon-{self.port}.log"

    def start(self, wait_leader: bool = True, timeout: float = 40) -> "DaemonProcess":
        env = {**os.environ, "COSTWISE_HOME": str(self.home), **self.env}
        env.pop("COSTWISE_DB", None)
        if self.db_url:
            env["COSTWISE_DB"] = self.db_url
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scheduler.cli", "daemon", "--metrics-port", str(self.port), *self.extra_args],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.log()}")
            try:
                health = self.get("/health", token=self.token)
                if health["leader"] or not wait_leader:
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"daemon not up in {timeout}s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()[-3000:] if self.log_path.exists() else ""

    def request(self, method: str, path: str, body=None, token: str | None = None, host: str = "127.0.0.1"):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://{host}:{self.port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for attempt in range(3 if method == "GET" else 1):  # a GET may be retried; a POST is not
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status, json.loads(resp.read() or b"null")
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read() or b"null")
            except (ConnectionResetError, http.client.RemoteDisconnected):
                if attempt == 2 or method != "GET":
                    raise
                time.sleep(0.2)

    def get(self, path: str, **kw):
        status, body = self.request("GET", path, **kw)
        if status != 200:
            raise ValueError(f"{path}: {status} {body}")
        return body

    def post(self, path: str, body=None, **kw):
        return self.request("POST", path, body or {}, **kw)

    def stop(self, sig=signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)
