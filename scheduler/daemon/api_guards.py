"""Checks on a request's head, made before any of its body is read (pure: headers in, a refusal out).

- On loopback without a token, the Host must be a loopback name: a page whose name is re-pointed at
  127.0.0.1 (DNS rebinding) would otherwise be the daemon's "own origin" to the browser.
- A POST from a browser carries Origin (and Sec-Fetch-Site); one from another origin is refused. With
  a JSON content type required on top, a cross-origin page cannot even send one without a CORS
  preflight, which the API never grants.
- A POST body is announced by one plain Content-Length, at most the limit, and is JSON.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urlsplit

JSON_TYPE = "application/json"
_DIGITS = re.compile(r"[0-9]{1,19}")
_SAME_SITE_FETCHES = ("same-origin", "none")  # "none": the user's own action (typed URL, bookmark)


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


def check_host(host: str | None, loopback_only: bool) -> Refusal | None:
    """Refuse a Host that is not a loopback name when the daemon trusts whoever reaches loopback."""
    if not loopback_only or host is None:
        return None
    name = _hostname(host)
    if name is not None and _is_loopback(name):
        return None
    return Refusal(403, f"Host={host!r} is not a loopback name; this daemon answers only on loopback")


def check_origin(headers: Message, host: str | None) -> Refusal | None:
    """Refuse a write sent by a page of another origin (Origin, or the browser's Sec-Fetch-Site)."""
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site.strip().lower() not in _SAME_SITE_FETCHES:
        return Refusal(403, f"Sec-Fetch-Site={site!r}: cross-origin writes are refused")
    origin = headers.get("Origin")
    if origin is None:
        return None
    if host is not None and _same_origin(origin, host):
        return None
    return Refusal(403, f"Origin={origin!r} is not this daemon's origin (Host={host!r}): cross-origin writes are refused")


def check_body_head(headers: Message, max_bytes: int) -> Refusal | int:
    """The announced length of a POST body, or why it is refused before reading it."""
    if headers.get("Transfer-Encoding") is not None:
        return Refusal(411, f"Transfer-Encoding={headers['Transfer-Encoding']!r} is not accepted; send Content-Length")
    lengths = {value.strip() for value in headers.get_all("Content-Length") or []}
    if not lengths:
        return Refusal(411, "Content-Length is required on a POST")
    if len(lengths) > 1:
        return Refusal(400, f"Content-Length is given twice with different values: {sorted(lengths)}")
    (text,) = lengths
    if not _DIGITS.fullmatch(text):
        return Refusal(400, f"Content-Length={text[:40]!r} is not a byte count")
    length = int(text)
    if length > max_bytes:
        return Refusal(413, f"Content-Length={length} is over the {max_bytes}-byte limit of a request body")
    content_type = headers.get("Content-Type")
    if content_type is None or headers.get_content_type() != JSON_TYPE:
        return Refusal(415, f"Content-Type={content_type!r} is not {JSON_TYPE}")
    return length


def _same_origin(origin: str, host: str) -> bool:
    try:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or parts.path or parts.query:
            return False
        default = 443 if parts.scheme == "https" else 80
        return (parts.hostname, parts.port or default) == _host_port(host, default)
    except ValueError:  # a malformed port or bracket
        return False


def _host_port(host: str, default_port: int) -> tuple[str | None, int | None]:
    parts = urlsplit(f"//{host}")
    return parts.hostname, parts.port or default_port


def _hostname(host: str) -> str | None:
    try:
        return urlsplit(f"//{host}").hostname
    except ValueError:
        return None


def _is_loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):  # browsers resolve *.localhost to loopback themselves
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
