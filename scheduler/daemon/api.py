"""The daemon's HTTP API (stdlib server, JSON): runs, pipeline runs, Alertmanager webhooks,
health (``/healthz`` for probes needs no token) and /metrics. Loopback by default; bound anywhere else every call needs the bearer token.

Clients are not trusted (DESIGN.md, "Trust boundaries"): a request's head is checked before its body
is read (api_guards), bodies and queries are validated by the documents' models (api_models), bad
input is a 4xx with one line, an internal failure a 500 whose details stay in the daemon's log, and
slow, idle or too many connections are cut off (api_models.Limits)."""

from __future__ import annotations

import hmac
import io
import json
import logging
import os
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .api_guards import Refusal, check_body_head, check_host, check_origin
from .api_models import (
    AlertmanagerWebhook,
    CancelRequest,
    Limits,
    PipelineRunRequest,
    parse_body,
    parse_json_object,
    parse_query,
    run_request,
)
from .api_follow import Stream, applied_artifacts, follow_pipeline_run, follow_run, list_shapes, wake
from .api_server import CappedThreadingServer, DeadlineReader
from . import web
from ..core.errors import CostwiseError, NotFound, UserError

log = logging.getLogger("costwise.api")
MESSAGE_MAX_CHARS = 500


def start_api(daemon, host: str, port: int, limits: Limits | None = None) -> ThreadingHTTPServer:
    limits = limits or Limits.from_env(dict(os.environ))
    server = CappedThreadingServer((host, port), _handler_for(daemon, limits), limits.max_connections)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server


def _handler_for(daemon, limits: Limits) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (ApiHandler,), {"daemon": daemon, "limits": limits, "timeout": limits.idle_timeout_s})


class ApiHandler(BaseHTTPRequestHandler):
    """One connection's requests; ``daemon`` and ``limits`` are set by ``_handler_for``."""

    server_version = "costwise"
    daemon: Any = None
    limits: Limits = None  # type: ignore[assignment]

    def setup(self):
        super().setup()
        self.rfile.close()  # replaced by a reader that also keeps the request deadline
        self._reader = DeadlineReader(self.connection, self.limits.idle_timeout_s)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self):
        # The deadline counts from waiting for the request line: idle, head and body together. It stays on
        # time.monotonic, not the daemon's clock: it bounds socket timeouts, which only real time passes.
        self._reader.deadline = time.monotonic() + self.limits.request_deadline_s
        super().handle_one_request()

    def log_message(self, fmt, *args):  # quiet: the daemon logs what matters
        log.debug("%s " + fmt, self.address_string(), *args)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_OPTIONS(self):
        """No CORS preflight is ever granted: an answer without any Access-Control-Allow-* header."""
        self._request_read()
        self.send_response(204)
        self.send_header("Allow", "GET, POST, OPTIONS")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        if url.path == "/healthz" and method == "GET":  # for probes, which carry no token: says only "alive"
            self._request_read()
            return self._send(200, {"status": "ok"})
        if method == "GET" and (page := web.route(url.path)) is not None:
            return self._web(*page, url)
        refusal = self._refusal(method)
        if refusal:
            return self._refuse(refusal)
        if url.path == "/metrics" and method == "GET":
            self._request_read()
            return self._metrics()
        found = _route(method, url.path)
        if found is None:
            return self._refuse(Refusal(404, f"no route for {method} {url.path}"))
        action, groups = found
        raw = b""
        if method == "POST":
            length = check_body_head(self.headers, self.limits.max_body_bytes)
            if isinstance(length, Refusal):
                return self._refuse(length)
            raw = self.rfile.read(length)
            if len(raw) < length:  # the client hung up mid-body
                self.close_connection = True
                return
        self._request_read()
        try:
            given = parse_json_object(raw) if method == "POST" else url.query
            status, body = action(self.daemon, given, *groups)
        except Exception as exc:  # noqa: BLE001 - every failure is answered, none drops the connection
            status, body = _failure(exc, f"{method} {url.path}")
        if isinstance(body, Stream):
            return self._stream(body)
        self._send(status, body)

    def _refusal(self, method: str) -> Refusal | None:
        host = self.headers.get("Host")
        # (the daemon refuses to start off loopback without a token)
        if refusal := check_host(host, not self.daemon.token):
            return refusal
        if self.daemon.token and not self._authorized():
            return Refusal(401, "missing or wrong bearer token")
        return check_origin(self.headers, host) if method == "POST" else None

    def _web(self, page: web.WebRoute, groups: tuple[str, ...], url) -> None:
        """The web page (read-only): its shell and static files after the Host check, its views with the token."""
        refusal = check_host(self.headers.get("Host"), not self.daemon.token) if page.public else self._refusal("GET")
        if refusal:
            return self._refuse(refusal)
        self._request_read()
        try:
            status, content_type, payload = page.serve(self.daemon, url.query, *groups)
        except Exception as exc:  # noqa: BLE001 - answered like the API's failures
            status, body = _failure(exc, f"GET {url.path}")
            content_type, payload = "application/json", json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": content_type, "Content-Length": str(len(payload)),
                            **web.SECURITY_HEADERS}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.daemon.token}".encode())

    def _request_read(self) -> None:
        """The whole request is in: no deadline on reading any more, the idle timeout on answering."""
        self._reader.deadline = None
        self.connection.settimeout(self.limits.idle_timeout_s)

    def _refuse(self, refusal: Refusal) -> None:
        self._request_read()
        self._send(refusal.status, {"error": one_line(refusal.message)}, close=True)  # a body may be unread

    def send_error(self, code, message=None, explain=None):
        """The stdlib's own refusals (bad request line, 414, 431, 501) in JSON like every answer."""
        default = self.responses.get(code, ("error",))[0]
        self._send(code, {"error": one_line(message or default)}, close=True)

    def _metrics(self) -> None:
        import gzip

        from prometheus_client import CONTENT_TYPE_LATEST

        from ..reporting.metrics import render

        try:
            payload = render(self.daemon.registry)
        except Exception as exc:  # noqa: BLE001 - a scrape that fails is answered, not dropped
            return self._send(*_failure(exc, "GET /metrics"))
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        if "gzip" in self.headers.get("Accept-Encoding", ""):  # Prometheus asks for it: 10x smaller
            payload = gzip.compress(payload, 1)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, stream: Stream) -> None:
        """JSON lines as they come, the connection closed at the end (HTTP/1.0: no length, no chunks)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for event in stream.events:
                self.wfile.write((json.dumps(event, default=str) + "\n").encode())
                self.wfile.flush()
        except OSError:  # the follower went away (Ctrl-C): nothing to answer
            log.debug("a follower of %s hung up", self.path)
        except Exception:  # noqa: BLE001 - the head is sent: end the stream, keep the details in the log
            log.exception("streaming %s failed", self.path)

    def _send(self, status: int, body: Any, close: bool = False) -> None:
        payload = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


def one_line(message: str) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= MESSAGE_MAX_CHARS else text[: MESSAGE_MAX_CHARS - 3] + "..."


def _failure(exc: Exception, what: str) -> tuple[int, dict[str, str]]:
    """The status and answer for an exception: its own message for bad input, a generic one otherwise."""
    if isinstance(exc, NotFound):
        return 404, {"error": one_line(str(exc))}
    if isinstance(exc, Standby):
        return 503, {"error": one_line(str(exc))}
    if isinstance(exc, UserError):
        return 400, {"error": one_line(str(exc))}
    ref = secrets.token_hex(4)
    log.error("%s failed (ref %s)", what, ref, exc_info=exc)
    return 500, {"error": f"internal error (ref {ref}); the daemon's log has the details"}


class Standby(CostwiseError):
    """This daemon does not hold the leader lock (HTTP 503)."""


def _leader(daemon) -> None:
    if not daemon.is_leader:
        raise Standby("this daemon is a standby; send it to the leader")


def health(daemon, _query):
    return 200, {"status": "ok", "leader": daemon.is_leader, "supervising": len(daemon._supervised)}


def start_run(daemon, body):
    _leader(daemon)
    job, overrides = run_request(body)
    run = daemon.engine.submit(job, overrides, message="queued through the API", extra={"trigger": "api"})
    daemon.wake.set()
    return 201, run.public()


def list_runs(daemon, query):
    wanted = parse_query(query)
    runs = daemon.store.list_runs(job=wanted.job, state=wanted.state, since=wanted.since, limit=wanted.limit)
    return 200, [r.public() for r in runs]


def show_run(daemon, _query, run_id):
    """The run as `costwise show --json` prints it: its detail, its spend and its events."""
    from ..core.clock import iso
    from ..core.costs import spend_summary

    record = daemon.store.get_run(run_id)
    shape = daemon.store.get("Shape", record.shape) if record.shape else None
    events = [{"at": iso(e["at"]), "state": e["state"], "message": e["message"]} for e in daemon.store.events(run_id)]
    return 200, {**record.detail(), "spend": spend_summary(record, shape), "events": events}


def cancel_run(daemon, body, run_id):
    parse_body(CancelRequest, body, f"POST /runs/{run_id}/cancel")
    if run_id.startswith("p-"):
        return 200, PipelineRunnerFor(daemon).cancel(run_id)
    return 200, daemon.engine.cancel(run_id, wait=False).public()


def start_pipeline(daemon, body, name):
    _leader(daemon)
    request = parse_body(PipelineRunRequest, body, f"POST /pipelines/{name}/runs")
    runner = PipelineRunnerFor(daemon)
    prun = runner.submit(name, dict(request.params), list(request.force_steps), request.force_all, trigger="api")
    daemon.wake.set()
    return 201, runner.record(prun["id"])


def show_pipeline_run(daemon, _query, prun_id):
    return 200, PipelineRunnerFor(daemon).record(prun_id)


def alertmanager(daemon, body):
    """Alertmanager webhook: each firing alert starts the pipeline it maps to, once per alert."""
    _leader(daemon)
    webhook = parse_body(AlertmanagerWebhook, body, "Alertmanager webhook")
    started, ignored = [], []
    for alert in webhook.alerts:
        labels = alert.labels
        pipeline = labels.get("costwise_pipeline") or daemon.alert_map.get(labels.get("alertname", ""))
        if alert.status != "firing" or not pipeline:
            ignored.append(labels.get("alertname"))
            continue
        key = f"alert:{pipeline}:{alert.fingerprint or labels.get('alertname')}:{alert.startsAt}"
        prun = PipelineRunnerFor(daemon).submit(pipeline, trigger=f"alert:{labels.get('alertname', '?')}", fire_key=key)
        started.append(prun["id"])
    daemon.wake.set()
    return 202, {"started": started, "ignored": ignored}


def PipelineRunnerFor(daemon):  # noqa: N802 - reads as the class it returns
    from ..runtime.pipeline_runner import PipelineRunner

    return PipelineRunner(daemon.engine, dispatched=True)


ROUTES = [
    ("GET", r"/health", health),
    ("GET", r"/runs", list_runs),
    ("POST", r"/runs", start_run),
    ("GET", r"/runs/([\w-]+)", show_run),
    ("GET", r"/runs/([\w-]+)/follow", follow_run),
    ("GET", r"/pipeline-runs/([\w-]+)/follow", follow_pipeline_run),
    ("POST", r"/wake", wake),
    ("GET", r"/shapes", list_shapes),
    ("GET", r"/artifacts", applied_artifacts),
    ("POST", r"/runs/([\w-]+)/cancel", cancel_run),
    ("POST", r"/pipelines/([\w.-]+)/runs", start_pipeline),
    ("GET", r"/pipeline-runs/([\w-]+)", show_pipeline_run),
    ("POST", r"/alerts|/alertmanager|/webhooks/alertmanager", alertmanager),
]


def _route(method: str, path: str):
    """The action for a request and the groups its path matched, or None."""
    for verb, pattern, action in ROUTES:
        match = re.fullmatch(pattern, path)
        if match and verb == method:
            return action, match.groups()
    return None
