"""The thin client's HTTP over a plain socket (cli/wire.py) against real sockets: an answer with a length,
a stream to the close, a refused connection, and the answers it will not read, each said in one line."""

import socket
import threading

import pytest

from scheduler.cli import wire
from scheduler.core.errors import CostwiseError


@pytest.fixture
def server():
    """A one-shot server answering the next connection with the bytes given; the request it read."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen = {}

    def serve(answer: bytes):
        def run():
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:]).get("Content-Length", 0))
                while len(body) < length:
                    body += conn.recv(65536)
                seen["head"], seen["body"] = head.decode(), body
                conn.sendall(answer)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return listener.getsockname()[1], thread

    yield serve, seen
    listener.close()


def ask(port, method="GET", target="/runs?limit=2", payload=None):
    sock = wire.send("127.0.0.1", port, method, target, {"Content-Type": "application/json"}, payload, 5.0)
    return wire.answer(sock, f"{method} {target}")


def test_an_answer_with_a_length_and_the_request_as_sent(server):
    serve, seen = server
    port, thread = serve(b"HTTP/1.0 201 Created\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}tail")
    response = ask(port, "POST", "/runs", b'{"job":"x"}')
    assert (response.status, response.read()) == (201, b'{"a":1}')  # the length, not what follows
    response.close()
    thread.join(5)
    lines = seen["head"].split("\r\n")
    assert lines[0] == "POST /runs HTTP/1.1" and f"Host: 127.0.0.1:{port}" in lines and "Connection: close" in lines
    assert "Content-Length: 11" in lines and seen["body"] == b'{"job":"x"}'


def test_a_post_without_a_body_says_its_length_is_zero(server):
    serve, seen = server
    port, thread = serve(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    assert ask(port, "POST", "/wake").read() == b"{}"
    thread.join(5)
    assert "Content-Length: 0" in seen["head"].split("\r\n")


def test_a_stream_runs_line_by_line_to_the_close(server):
    serve, _ = server
    port, _ = serve(b"HTTP/1.0 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n"
                    b'{"event":"line"}\n{"event":"end"}\n')
    response = ask(port)
    assert list(response) == [b'{"event":"line"}\n', b'{"event":"end"}\n']
    response.close()


@pytest.mark.parametrize("answer, says", [
    (b"", "the daemon hung up without answering GET /runs?limit=2"),
    (b"SSH-2.0-OpenSSH\r\n\r\n", "the daemon's answer to GET /runs?limit=2 is not HTTP: b'SSH-2.0-OpenSSH\\r\\n'"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     "the daemon's answer to GET /runs?limit=2 is sent chunked, which this client does not read"),
])
def test_an_answer_it_will_not_read_is_one_line(server, answer, says):
    serve, _ = server
    port, _ = serve(answer)
    with pytest.raises(CostwiseError) as caught:
        ask(port)
    assert str(caught.value) == says


def test_a_body_cut_short_is_said(server):
    serve, _ = server
    port, _ = serve(b"HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\"")
    with pytest.raises(CostwiseError, match="hung up 4 bytes into a 100-byte answer"):
        ask(port).read()


def test_a_refused_connection_is_a_connection_error():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionError):
        ask(port)
