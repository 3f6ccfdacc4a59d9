"""One request to the daemon's API over a plain socket, and its answer.

http.client cost each thin command about 17 ms of imports (email's header parser, ssl) for what is, here,
a few lines: the API is the daemon's own http.server on this host, without TLS, and answers HTTP/1.0
style: a Content-Length, or a stream of JSON lines that runs until it closes the connection; never
chunks. One connection per request (Connection: close), so nothing is pooled or kept alive.
"""

from __future__ import annotations

import socket

from ..core.errors import CostwiseError

MAX_LINE_BYTES = 65536
MAX_HEADERS = 100


class Response:
    """The status and headers of an answer; its body read whole (``read``) or line by line (iterating)."""

    def __init__(self, sock: socket.socket, reader, status: int, headers: dict[str, str]):
        self._sock, self._reader, self.status, self.headers = sock, reader, status, headers

    def read(self) -> bytes:
        length = self.headers.get("content-length")
        if length is None:
            return self._reader.read()  # to the close
        data = self._reader.read(int(length))
        if len(data) < int(length):
            raise CostwiseError(f"the daemon hung up {len(data)} bytes into a {length}-byte answer")
        return data

    def __iter__(self):
        return iter(self._reader)  # lines, until the daemon closes the stream

    def close(self) -> None:
        self._reader.close()
        self._sock.close()


def send(host: str, port: int, method: str, target: str, headers: dict[str, str], payload: bytes | None,
         timeout: float) -> socket.socket:
    """Connect and send the request; ConnectionError (refused, reset) means the daemon took nothing."""
    sock = socket.create_connection((host, port), timeout=timeout)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
             "Accept-Encoding: identity", *(f"{name}: {value}" for name, value in headers.items())]
    if payload is not None or method == "POST":
        lines.append(f"Content-Length: {len(payload or b'')}")
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (payload or b""))
    except BaseException:
        sock.close()
        raise
    return sock


def answer(sock: socket.socket, what: str) -> Response:
    """The answer's status line and headers (``what``: the request, for the error messages)."""
    reader = sock.makefile("rb")
    try:
        status_line = reader.readline(MAX_LINE_BYTES)
        parts = status_line.split(None, 2)
        if not status_line:
            raise CostwiseError(f"the daemon hung up without answering {what}")
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise CostwiseError(f"the daemon's answer to {what} is not HTTP: {status_line[:60]!r}")
        headers = _headers(reader, what)
    except BaseException:
        reader.close()
        sock.close()
        raise
    return Response(sock, reader, int(parts[1]), headers)


def _headers(reader, what: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        line = reader.readline(MAX_LINE_BYTES)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    else:
        raise CostwiseError(f"the daemon's answer to {what} has over {MAX_HEADERS} header lines")
    if headers.get("transfer-encoding", "identity").lower() != "identity":
        raise CostwiseError(f"the daemon's answer to {what} is sent {headers['transfer-encoding']}, which this client "
                            f"does not read")
    return headers
