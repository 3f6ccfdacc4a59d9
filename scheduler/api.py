"""The daemon's HTTP API (stdlib server, JSON): runs, pipeline runs, Alertmanager webhooks,
health and /metrics. Loopback by default; bound anywhere else every call needs the bearer token."""

from __future__ import annotations

import hmac
import json
import logging
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from .errors import CostwiseError, NotFound, SpecError

log = logging.getLogger("costwise.api")
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the listen backlog: bursts of clients wait instead of being refused


def start_api(daemon, host: str, port: int) -> ThreadingHTTPServer:
    import threading

    server = _Server((host, port), _handler_for(daemon))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server


def _handler_for(daemon):
    class Handler(BaseHTTPRequestHandler):
        server_version = "costwise"

        def log_message(self, fmt, *args):  # quiet: the daemon logs what matters
            log.debug("%s " + fmt, self.address_string(), *args)

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            if daemon.token and not self._authorized():
                return self._send(401, {"error": "missing or wrong bearer token"})
            if url.path == "/metrics" and method == "GET":
                return self._metrics()
            for verb, pattern, action in ROUTES:
                match = re.fullmatch(pattern, url.path)
                if match and verb == method:
                    try:
                        status, body = action(daemon, self._body() if method == "POST" else parse_qs(url.query), *match.groups())
                    except NotFound as exc:
                        status, body = 404, {"error": str(exc)}
                    except Standby as exc:
                        status, body = 503, {"error": str(exc)}
                    except CostwiseError as exc:
                        status, body = (400 if exc.exit_code == 2 else 500), {"error": str(exc)}
                    except ValueError as exc:
                        status, body = 400, {"error": str(exc)}
                    except Exception as exc:  # noqa: BLE001 - answer 500 rather than drop the connection
                        log.exception("%s %s failed", method, url.path)
                        status, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
                    return self._send(status, body)
            self._send(404, {"error": f"no route for {method} {url.path}"})

        def _authorized(self) -> bool:
            given = self.headers.get("Authorization", "")
            return hmac.compare_digest(given.encode(), f"Bearer {daemon.token}".encode())

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            if not length:
                return {}
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                raise SpecError("the request body is not JSON", "body", None) from None
            if not isinstance(body, dict):
                raise SpecError("the request body must be a JSON object", "body", None)
            return body

        def _metrics(self) -> None:
            import gzip

            from prometheus_client import CONTENT_TYPE_LATEST

            from .metrics import render

            payload = render(daemon.registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            if "gzip" in self.headers.get("Accept-Encoding", ""):  # Prometheus asks for it: 10x smaller
                payload = gzip.compress(payload, 1)
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _send(self, status: int, body: Any) -> None:
            payload = json.dumps(body, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


class Standby(CostwiseError):
    """This daemon does not hold the leader lock (HTTP 503)."""


def _leader(daemon) -> None:
    if not daemon.is_leader:
        raise Standby("this daemon is a standby; send it to the leader")


def health(daemon, _query):
    return 200, {"status": "ok", "leader": daemon.is_leader, "supervising": len(daemon._supervised)}


def start_run(daemon, body):
    from .specs import parse_overrides

    _leader(daemon)
    job = body.get("job")
    if not job:
        raise SpecError("'job' is required", "job", None)
    overrides = parse_overrides({k: body.get(k) for k in ("env", "args", "shape", "max_runtime")})
    run = daemon.engine.submit(job, overrides, message="queued through the API", extra={"trigger": "api"})
    daemon.wake.set()
    return 201, run.public()


def list_runs(daemon, query):
    one = lambda k: (query.get(k) or [None])[0]  # noqa: E731
    limit = int(one("limit") or 100)
    runs = daemon.store.list_runs(job=one("job"), state=one("state"), limit=limit)
    return 200, [r.public() for r in runs]


def show_run(daemon, _query, run_id):
    return 200, daemon.store.get_run(run_id).detail()


def cancel_run(daemon, _body, run_id):
    if run_id.startswith("p-"):
        return 200, PipelineRunnerFor(daemon).cancel(run_id)
    return 200, daemon.engine.cancel(run_id, wait=False).public()


def start_pipeline(daemon, body, name):
    _leader(daemon)
    params = {k: str(v) for k, v in (body.get("params") or {}).items()}
    runner = PipelineRunnerFor(daemon)
    prun = runner.submit(name, params, body.get("force_steps") or [], bool(body.get("force_all")), trigger="api")
    daemon.wake.set()
    return 201, runner.record(prun["id"])


def show_pipeline_run(daemon, _query, prun_id):
    return 200, PipelineRunnerFor(daemon).record(prun_id)


def alertmanager(daemon, body):
    """Alertmanager webhook: each firing alert starts the pipeline it maps to, once per alert."""
    _leader(daemon)
    started, ignored = [], []
    for alert in body.get("alerts") or []:
        labels = alert.get("labels") or {}
        pipeline = labels.get("costwise_pipeline") or daemon.alert_map.get(labels.get("alertname", ""))
        if alert.get("status", "firing") != "firing" or not pipeline:
            ignored.append(labels.get("alertname"))
            continue
        key = f"alert:{pipeline}:{alert.get('fingerprint') or labels.get('alertname')}:{alert.get('startsAt', '')}"
        prun = PipelineRunnerFor(daemon).submit(pipeline, trigger=f"alert:{labels.get('alertname', '?')}", fire_key=key)
        started.append(prun["id"])
    daemon.wake.set()
    return 202, {"started": started, "ignored": ignored}


def PipelineRunnerFor(daemon):  # noqa: N802 - reads as the class it returns
    from .pipeline_runner import PipelineRunner

    return PipelineRunner(daemon.engine, dispatched=True)


ROUTES = [
    ("GET", r"/health", health),
    ("GET", r"/runs", list_runs),
    ("POST", r"/runs", start_run),
    ("GET", r"/runs/([\w-]+)", show_run),
    ("POST", r"/runs/([\w-]+)/cancel", cancel_run),
    ("POST", r"/pipelines/([\w.-]+)/runs", start_pipeline),
    ("GET", r"/pipeline-runs/([\w-]+)", show_pipeline_run),
    ("POST", r"/alerts|/alertmanager|/webhooks/alertmanager", alertmanager),
]
