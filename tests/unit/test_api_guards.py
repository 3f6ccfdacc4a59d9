"""The API's checks on a request's head, alone: headers in, a refusal (or the body's length) out."""

from http.client import parse_headers
from io import BytesIO

import pytest

from scheduler.daemon.api_guards import Refusal, check_body_head, check_host, check_origin


def headers(**given: str):
    text = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in given.items()) + "\r\n"
    return parse_headers(BytesIO(text.encode("latin-1")))


@pytest.mark.parametrize("host", ["127.0.0.1:9464", "localhost:9464", "[::1]:9464", "127.0.0.2", "app.localhost:1"])
def test_loopback_names_pass_the_host_check(host):
    assert check_host(host, loopback_only=True) is None


@pytest.mark.parametrize("host", ["evil.example:9464", "10.0.0.1:9464", "[::1", "127.0.0.1.evil.example"])
def test_other_names_are_refused_only_where_loopback_is_trusted(host):
    refusal = check_host(host, loopback_only=True)
    assert refusal.status == 403 and repr(host) in refusal.message
    assert check_host(host, loopback_only=False) is None


@pytest.mark.parametrize("origin", ["http://127.0.0.1:9464", "HTTP://127.0.0.1:9464", "https://127.0.0.1:9464"])
def test_the_daemons_own_origin_may_write(origin):
    assert check_origin(headers(Origin=origin, Sec_Fetch_Site="same-origin"), "127.0.0.1:9464") is None
    assert check_origin(headers(), "127.0.0.1:9464") is None  # curl, the harness, Alertmanager: no Origin


def test_default_ports_count_as_the_same_origin():
    assert check_origin(headers(Origin="http://costwise.internal"), "costwise.internal:80") is None
    assert check_origin(headers(Origin="https://costwise.internal"), "costwise.internal") is None  # a TLS proxy
    assert check_origin(headers(Origin="https://costwise.internal"), "costwise.internal:80") is not None


@pytest.mark.parametrize("given", [
    {"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": "http://127.0.0.1:9465"},
    {"Origin": "http://127.0.0.1:9464/path"}, {"Origin": "http://127.0.0.1:99999"},
    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
])
def test_other_origins_are_refused(given):
    refusal = check_origin(headers(**given_kw(given)), "127.0.0.1:9464")
    assert refusal.status == 403 and "cross-origin" in refusal.message


@pytest.mark.parametrize("given, status", [
    ({}, 411), ({"Transfer-Encoding": "chunked"}, 411), ({"Content-Length": "-1"}, 400),
    ({"Content-Length": "+5"}, 400), ({"Content-Length": "5_0"}, 400), ({"Content-Length": "1e3"}, 400),
    ({"Content-Length": str(1 << 21)}, 413), ({"Content-Length": "9" * 30}, 400),
])
def test_bad_lengths_are_refused_before_the_type(given, status):
    refusal = check_body_head(headers(Content_Type="application/json", **given_kw(given)), max_bytes=1 << 20)
    assert isinstance(refusal, Refusal) and refusal.status == status, refusal


def test_two_lengths_are_refused_unless_equal():
    twice = parse_headers(BytesIO(b"Content-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n"))
    assert check_body_head(twice, 100).status == 400
    same = parse_headers(BytesIO(b"Content-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n"))
    assert check_body_head(same, 100) == 2


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_body_must_be_json(content_type):
    given = {"Content_Length": "2"} | ({} if content_type is None else {"Content_Type": content_type})
    assert check_body_head(headers(**given), 100).status == 415


def test_json_with_a_charset_is_json():
    assert check_body_head(headers(Content_Type="application/json; charset=utf-8", Content_Length="2"), 100) == 2


def given_kw(given: dict) -> dict:
    return {k.replace("-", "_"): v for k, v in given.items()}
