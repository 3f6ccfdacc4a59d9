"""The stdlib HTTP server, hardened: a cap on connections served at once, and a reader that keeps
an idle timeout per read and a deadline for the whole request."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from typing import Any

log = logging.getLogger("costwise.api")


class CappedThreadingServer(ThreadingHTTPServer):
    """One thread per connection, at most ``max_connections`` of them; past that a connection is
    answered 503 by the accepting thread itself (without blocking it) and closed."""

    request_queue_size = 128  # the listen backlog: bursts of clients wait instead of being refused
    daemon_threads = True

    def __init__(self, address, handler, max_connections: int):
        self._slots = threading.BoundedSemaphore(max_connections)
        self._busy = _answer_bytes(503, {"error": f"busy: {max_connections} connections already; retry"})
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            return self._refuse_busy(request)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse_busy(self, request) -> None:
        request.setblocking(False)
        try:
            request.sendall(self._busy)  # a fresh socket's send buffer takes these few bytes at once
            request.recv(65536)  # what the client already sent, so closing does not reset the answer away
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # the client went away mid-answer: its business
            log.debug("connection from %s ended: %r", client_address, exc)
        else:
            log.exception("connection from %s failed", client_address)


class DeadlineReader(io.RawIOBase):
    """Reads a connection with the idle timeout per read, and no read past ``deadline`` (time.monotonic:
    these are the OS's socket timeouts, which pass in real time whatever clock the daemon runs on)."""

    def __init__(self, sock: socket.socket, idle_timeout_s: float):
        self._sock, self._idle_timeout_s = sock, idle_timeout_s
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        timeout = self._idle_timeout_s
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - time.monotonic())
            if timeout <= 0:
                raise TimeoutError("the request was not sent in time")
        self._sock.settimeout(timeout)
        return self._sock.recv_into(buffer)


def _answer_bytes(status: int, body: Any) -> bytes:
    payload = json.dumps(body).encode()
    head = (f"HTTP/1.0 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n")
    return head.encode() + payload
