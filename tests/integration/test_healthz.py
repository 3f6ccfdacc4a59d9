"""GET /healthz answers probes (Docker HEALTHCHECK, Kubernetes liveness/readiness) without the token,
and says nothing but "alive": every other route still needs the token off loopback."""

from tests.daemon_harness import DaemonProcess


def test_healthz_needs_no_token_and_reveals_nothing(home):
    daemon = DaemonProcess(home, extra_args=["--host", "0.0.0.0", "--token", "s3cret"], token="s3cret").start()
    try:
        assert daemon.request("GET", "/healthz") == (200, {"status": "ok"})
        assert daemon.request("GET", "/health")[0] == 401
        assert daemon.request("GET", "/metrics")[0] == 401
        assert daemon.request("POST", "/healthz", {})[0] == 401
    finally:
        daemon.stop()
