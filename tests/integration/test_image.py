"""The daemon's Dockerfile, built offline on the real Docker engine and run: it answers /healthz, its
own HEALTHCHECK turns healthy, and it runs as a non-root user with COSTWISE_HOME as a volume.

No registry or PyPI is reachable here: the base is this machine's python3.11 with the project's
dependencies (tests/platform_image.py) and pip is told not to fetch (the Dockerfile's PIP_ARGS)."""

import json
import time
import urllib.request

import pytest

from tests.conftest import ROOT, need_service
from tests.platform_image import ensure_base_image

pytestmark = pytest.mark.docker
TAG = "costwise:test-image"
OFFLINE = "--no-index --no-deps --no-build-isolation"


@pytest.fixture(scope="module")
def image():
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no Docker engine"
        need_service("Docker", f"{type(exc).__name__}: {exc}")
    base = ensure_base_image(client)
    built, _ = client.images.build(path=str(ROOT), tag=TAG, rm=True, buildargs={"BASE": base, "PIP_ARGS": OFFLINE})
    yield client, built


def test_the_image_runs_the_daemon_as_non_root_with_a_home_volume(image):
    _, built = image
    config = built.attrs["Config"]
    assert config["User"] == "10001:10001"
    assert "/var/lib/costwise" in config["Volumes"]
    assert "COSTWISE_HOME=/var/lib/costwise" in config["Env"]
    assert any("/healthz" in part for part in config["Healthcheck"]["Test"])


def test_the_daemon_container_answers_its_health_endpoint(image):
    client, built = image
    container = client.containers.run(built.id, detach=True, environment={"COSTWISE_API_TOKEN": "t0ken"},
                                      ports={"9464/tcp": ("127.0.0.1", None)}, labels={"costwise.test": "image"})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            container.reload()
            if container.attrs["State"]["Health"]["Status"] == "healthy":
                break
            assert container.status in ("created", "running"), container.logs()[-2000:]
            time.sleep(0.5)
        assert container.attrs["State"]["Health"]["Status"] == "healthy", container.logs()[-2000:]
        port = container.attrs["NetworkSettings"]["Ports"]["9464/tcp"][0]["HostPort"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert json.loads(resp.read()) == {"status": "ok"}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers={"Authorization": "Bearer t0ken"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert json.loads(resp.read())["leader"] is True
        assert container.exec_run("id -u").output.strip() == b"10001"
    finally:
        container.remove(force=True)
