"""The daemon's HTTP API against hostile clients, over a real socket to a real `costwise daemon`:
bad bodies, oversized and lying bodies, cross-origin writes, DNS rebinding, idle and slow sockets."""

from __future__ import annotations

import http.client
import json
import select
import socket
import sqlite3
import time

import pytest

from tests.conftest import Cli, write
from tests.daemon_harness import DaemonProcess

IDLE_S, DEADLINE_S, MAX_CONNECTIONS = 1.5, 4.0, 6
LIMITS_ENV = {
    "COSTWISE_API_IDLE_TIMEOUT": str(IDLE_S),
    "COSTWISE_API_REQUEST_DEADLINE": str(DEADLINE_S),
    "COSTWISE_API_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
}
SQL_OR_TRACE = ("SELECT", "INSERT", "[SQL", "sqlalchemy", "Traceback", "psycopg", "sqlite3")


def declare(home) -> Cli:
    cli = Cli(home)
    write(home / "p" / "tick.py", "print('tick')\n")
    write(home / "p" / "all.yaml", """
        kind: Shape
        name: cheap
        vcpus: 2
        memory_gib: 4
        price_per_hour: 0.10
        capacity: 4
        ---
        kind: Job
        name: tick
        artifact: tick.py
        ---
        kind: Pipeline
        name: pipe
        parameters: {epochs: 3}
        steps: [{name: go, job: tick}]
    """)
    proc = cli("apply", str(home / "p" / "all.yaml"))
    assert proc.returncode == 0, proc.stderr
    return cli


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    home = tmp_path_factory.mktemp("api") / "home"
    home.mkdir()
    declare(home)
    d = DaemonProcess(home, env=LIMITS_ENV).start()
    yield d
    d.stop()


def exchange(port: int, raw: bytes, timeout: float = 5) -> tuple[int, dict[str, str], dict]:
    """Send raw bytes as one request; the status, headers (lower-case names) and JSON body of the answer.
    A GET that meets a reset is sent again, as the daemon harness does: loopback under load resets
    the odd connection before the server reads it, and a GET is idempotent."""
    for attempt in range(3):
        try:
            return _exchange_once(port, raw, timeout)
        except (ConnectionResetError, http.client.RemoteDisconnected):
            if attempt == 2 or not raw.startswith(b"GET "):
                raise
            time.sleep(0.2)


def _exchange_once(port: int, raw: bytes, timeout: float) -> tuple[int, dict[str, str], dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        payload = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
    return resp.status, headers, (json.loads(payload) if payload else {})


def request_bytes(method: str, path: str, port: int, body: bytes = b"", headers: dict | None = None,
                  content_length: bool = True) -> bytes:
    head = {"Host": f"127.0.0.1:{port}", **(headers or {})}
    if content_length and "Content-Length" not in head:
        head["Content-Length"] = str(len(body))
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items()), "", ""]
    return "\r\n".join(lines).encode() + body


def post(daemon, path: str, body, headers: dict | None = None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    raw = request_bytes("POST", path, daemon.port, data, {"Content-Type": "application/json", **(headers or {})})
    return exchange(daemon.port, raw)


def tick_runs(daemon) -> int:
    return len(daemon.get("/runs?job=tick&limit=1000"))


def assert_clean(answer: dict) -> None:
    message = answer["error"]
    assert "\n" not in message and not any(s in message for s in SQL_OR_TRACE), message


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closes the connection (EOF or reset), or None if it is still open."""
    start = time.monotonic()
    readable, _, _ = select.select([sock], [], [], seconds)
    if not readable:
        return None
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass
    return time.monotonic() - start


# -- bodies: the documents' models, unknown fields refused, no SQL or traceback -------------------------

def test_a_wrongly_typed_field_is_a_400_naming_it_not_sql(daemon):
    status, _, answer = post(daemon, "/runs", {"job": ["x"]})
    assert status == 400 and "job=['x']" in answer["error"], answer
    assert_clean(answer)
    status, _, answer = post(daemon, "/runs", b'{"job": "tick", "max_runtime": 1e400}')  # a JSON number, read as inf
    assert status == 400 and "max_runtime" in answer["error"], answer


def test_unknown_fields_are_refused_in_every_body(daemon):
    before = tick_runs(daemon)
    status, _, answer = post(daemon, "/runs", {"job": "tick", "envs": {"A": "1"}})
    assert status == 400 and "'envs'" in answer["error"] and "did you mean 'env'" in answer["error"], answer
    status, _, answer = post(daemon, "/pipelines/pipe/runs", {"parms": {"epochs": 4}})
    assert status == 400 and "'parms'" in answer["error"], answer
    status, _, answer = post(daemon, "/pipelines/pipe/runs", {"params": ["epochs"]})
    assert status == 400 and "params" in answer["error"], answer
    status, _, answer = post(daemon, "/runs/r-nothing/cancel", {"now": True})
    assert status == 400 and "'now'" in answer["error"], answer
    status, _, answer = post(daemon, "/alerts", {"alerts": "ModelDrift"})
    assert status == 400 and "alerts" in answer["error"], answer
    assert_clean(answer)
    assert tick_runs(daemon) == before


def test_bodies_that_are_not_a_json_object_are_a_400(daemon):
    for raw in (b"[1, 2]", b"{\"job\": NaN}", b"\xff\xfe{", b"[" * 100_000, b"{\"job\": \"tick\""):
        status, _, answer = post(daemon, "/runs", raw)
        assert status == 400 and answer["error"].startswith("the request body"), (raw[:20], answer)
        assert_clean(answer)


def test_a_full_alertmanager_payload_still_starts_nothing_unmapped(daemon):
    """Alertmanager's real payload carries fields costwise does not use: they are not an error."""
    alert = {"status": "firing", "labels": {"alertname": "Unmapped"}, "annotations": {"summary": "x"},
             "startsAt": "2026-11-22T06:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "http://prometheus/graph", "fingerprint": "abc123"}
    body = {"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing", "receiver": "costwise",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am", "alerts": [alert]}
    status, _, answer = post(daemon, "/webhooks/alertmanager", body)
    assert status == 202 and answer == {"started": [], "ignored": ["Unmapped"]}, answer
    status, _, answer = post(daemon, "/webhooks/alertmanager", {**body, "alerts": [{**alert, "labels": ["x"]}]})
    assert status == 400 and "alerts.0.labels" in answer["error"], answer


def test_queries_are_validated_too(daemon):
    for query, field in (("limit=-1", "limit"), ("limit=abc", "limit"), ("state=BOGUS", "state"), ("jbo=tick", "jbo"),
                         ("job=a&job=b", "job")):
        status, _, answer = exchange(daemon.port, request_bytes("GET", f"/runs?{query}", daemon.port))
        assert status == 400 and field in answer["error"], (query, answer)
        assert_clean(answer)


def test_an_internal_failure_is_a_generic_500_with_the_traceback_in_the_log(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    declare(home)
    d = DaemonProcess(home).start()
    try:
        with sqlite3.connect(home / "catalog.db") as conn:  # a history row no costwise wrote: its JSON is garbage
            conn.execute("insert into runs (id, job, state, cost_usd, saved_usd, cache_hit, attempt, extra) "
                         "values ('r-garbled', 'gone', 'FAILED', 0, 0, 0, 0, '{not json')")
        status, _, answer = exchange(d.port, request_bytes("GET", "/runs/r-garbled", d.port))
        assert status == 500 and answer["error"].startswith("internal error"), answer
        assert "JSON" not in answer["error"] and "Expecting" not in answer["error"], answer
        assert_clean(answer)
        assert "Traceback" in d.log() and "GET /runs/r-garbled" in d.log()
        status, _, answer = exchange(d.port, request_bytes("GET", "/metrics", d.port))  # answered, not dropped
        assert status == 500 and answer["error"].startswith("internal error"), answer
    finally:
        d.stop()


# -- the request's head: length, size, type, before any body is read ---------------------------------

def test_an_oversized_body_is_refused_before_it_is_sent(daemon):
    head = request_bytes("POST", "/runs", daemon.port, headers={"Content-Type": "application/json",
                                                              "Content-Length": str(60 << 20)})
    status, headers, answer = exchange(daemon.port, head)  # the 60 MiB never follow: the answer must not wait for them
    assert status == 413 and "Content-Length" in answer["error"], answer
    assert headers.get("connection") == "close"
    body = json.dumps({"job": "tick", "args": ["x" * (1 << 20)]}).encode()
    status, _, answer = post(daemon, "/runs", body)
    assert status == 413, answer


def test_a_missing_negative_or_garbled_content_length_is_answered_at_once(daemon):
    json_type = {"Content-Type": "application/json"}
    for value, expected in (("-1", 400), ("abc", 400), ("1_0", 400), (None, 411)):
        headers = json_type if value is None else {**json_type, "Content-Length": value}
        raw = request_bytes("POST", "/runs", daemon.port, headers=headers, content_length=value is not None)
        status, _, answer = exchange(daemon.port, raw)
        assert status == expected and "Content-Length" in answer["error"], (value, answer)
    raw = request_bytes("POST", "/runs", daemon.port, b"0\r\n\r\n",
                        {**json_type, "Transfer-Encoding": "chunked"}, content_length=False)
    assert exchange(daemon.port, raw)[0] == 411


def test_a_post_must_say_it_is_json(daemon):
    before = tick_runs(daemon)
    body = json.dumps({"job": "tick"}).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {} if content_type is None else {"Content-Type": content_type}
        status, _, answer = exchange(daemon.port, request_bytes("POST", "/runs", daemon.port, body, headers))
        assert status == 415 and "application/json" in answer["error"], (content_type, answer)
    assert tick_runs(daemon) == before


# -- who may write: the daemon's own origin only; on loopback, only loopback host names -----------------

def test_cross_origin_writes_are_refused(daemon):
    before = tick_runs(daemon)
    body = json.dumps({"job": "tick"}).encode()
    # What a web page can send without a preflight: a text/plain "simple request" carrying its Origin.
    status, _, _ = exchange(daemon.port, request_bytes("POST", "/runs", daemon.port, body,
                                                       {"Content-Type": "text/plain", "Origin": "http://evil.example"}))
    assert status in (403, 415)
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": f"http://localhost:{daemon.port + 1}"}):
        status, _, answer = post(daemon, "/runs", {"job": "tick"}, headers)
        assert status == 403 and "cross-origin" in answer["error"], (headers, answer)
    assert tick_runs(daemon) == before
    status, _, run = post(daemon, "/runs", {"job": "tick"}, {"Origin": f"http://127.0.0.1:{daemon.port}",
                                                           "Sec-Fetch-Site": "same-origin"})
    assert status == 201 and run["job"] == "tick", run
    assert tick_runs(daemon) == before + 1


def test_a_rebound_host_name_is_refused_on_an_open_loopback_daemon(daemon):
    """DNS rebinding: evil.example resolves to 127.0.0.1, so its page is 'same-origin' with the daemon."""
    for method, path in (("GET", "/runs"), ("POST", "/runs")):
        raw = request_bytes(method, path, daemon.port, b"{}" if method == "POST" else b"",
                            {"Host": f"evil.example:{daemon.port}", "Origin": f"http://evil.example:{daemon.port}",
                             "Content-Type": "application/json"})
        status, _, answer = exchange(daemon.port, raw)
        assert status == 403 and "evil.example" in answer["error"], answer
    raw = request_bytes("GET", "/health", daemon.port, headers={"Host": f"localhost:{daemon.port}"})
    assert exchange(daemon.port, raw)[0] == 200


def test_options_answers_without_granting_cors(daemon):
    raw = request_bytes("OPTIONS", "/runs", daemon.port, headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    status, headers, _ = exchange(daemon.port, raw)
    assert status == 204 and "POST" in headers["allow"], headers
    assert not [h for h in headers if h.startswith("access-control-")], headers


def test_a_token_daemon_off_loopback_still_refuses_foreign_origins(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    declare(home)
    d = DaemonProcess(home, extra_args=["--host", "0.0.0.0", "--token", "s3cret"], token="s3cret").start()
    try:
        auth = {"Authorization": "Bearer s3cret", "Host": f"costwise.internal:{d.port}"}
        raw = request_bytes("GET", "/health", d.port, headers=auth)
        assert exchange(d.port, raw)[0] == 200  # off loopback any name may reach it: the token is the check
        status, _, answer = post(d, "/runs", {"job": "tick"}, {**auth, "Origin": "http://evil.example"})
        assert status == 403 and "cross-origin" in answer["error"], answer
        status, _, run = post(d, "/runs", {"job": "tick"}, {**auth, "Origin": f"http://costwise.internal:{d.port}"})
        assert status == 201, run
    finally:
        d.stop()


# -- sockets: idle, half-sent and slow requests are cut off; connections are capped ---------------------

def test_an_idle_connection_is_closed(daemon):
    with socket.create_connection(("127.0.0.1", daemon.port)) as sock:
        took = closed_within(sock, IDLE_S + 5)
    assert took is not None and took >= IDLE_S * 0.8, took


def test_a_half_sent_body_is_cut_off(daemon):
    with socket.create_connection(("127.0.0.1", daemon.port)) as sock:
        sock.sendall(request_bytes("POST", "/runs", daemon.port, b'{"job": ',
                                   {"Content-Type": "application/json", "Content-Length": "100"}))
        assert closed_within(sock, IDLE_S + 5) is not None


def test_a_slowloris_is_cut_off_by_the_request_deadline(daemon):
    """One header byte at a time, each well inside the idle timeout: only an overall deadline stops it."""
    trickle = request_bytes("GET", "/health", daemon.port, headers={"X-Slow": "a" * 200})
    start = time.monotonic()
    cut = None
    with socket.create_connection(("127.0.0.1", daemon.port)) as sock:
        for byte in trickle[:-2]:  # never the final blank line
            try:
                sock.send(bytes([byte]))
            except OSError:
                cut = time.monotonic() - start
                break
            if closed_within(sock, IDLE_S / 3) is not None:
                cut = time.monotonic() - start
                break
            if time.monotonic() - start > DEADLINE_S + 6:
                break
    assert cut is not None and DEADLINE_S * 0.8 <= cut <= DEADLINE_S + 4, cut


def test_connections_past_the_cap_are_answered_503_not_queued_for_ever(daemon):
    idle = [socket.create_connection(("127.0.0.1", daemon.port)) for _ in range(MAX_CONNECTIONS)]
    try:
        status, _, answer = exchange(daemon.port, request_bytes("GET", "/health", daemon.port))
        assert status == 503 and "busy" in answer["error"], answer
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)
    assert daemon.get("/health")["status"] == "ok"
