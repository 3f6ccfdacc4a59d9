"""The pulumi-docker platform stack under set_mocks: the daemon gets its token and database URL as
secrets, Prometheus scrapes the daemon's name with the token, Grafana gets the datasource and every
dashboard file, the config picks what runs may use; compose.yaml declares the same services."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import ROOT
from tests.platform_mocks import is_secret, plain, run_stack

PROGRAM = ROOT / "stacks" / "platform_docker" / "__main__.py"
CONTAINER = "docker:index/container:Container"
SECRETS = ("apiToken", "dbPassword")


@pytest.fixture
def stack():
    def run(**config):
        return run_stack(PROGRAM, {"apiToken": "t0ken", "dbPassword": "pw", **config}, SECRETS)
    return run


def env(container: dict) -> dict[str, str]:
    return dict(item.split("=", 1) for item in plain(container.get("envs", [])))


def uploads(container: dict) -> dict[str, str]:
    return {u["file"]: u["content"] for u in plain(container.get("uploads", []))}


def test_the_daemon_gets_token_and_database_url_as_secrets(stack):
    daemon = stack().of_type(CONTAINER)["daemon"]
    assert is_secret(daemon["envs"])
    values = env(daemon)
    assert values["COSTWISE_API_TOKEN"] == "t0ken"
    assert values["COSTWISE_DB"] == "postgresql+psycopg://costwise:pw@postgres:5432/costwise"
    assert "t0ken" not in str({k: v for k, v in daemon.items() if k != "envs"})


def test_prometheus_scrapes_the_daemons_name_with_the_token(stack):
    containers = stack().of_type(CONTAINER)
    daemon, prometheus = containers["daemon"], containers["prometheus"]
    files = uploads(prometheus)
    scrape = yaml.safe_load(files["/etc/prometheus/prometheus.yml"])["scrape_configs"][0]
    port = int(daemon["ports"][0]["internal"])
    assert scrape["static_configs"][0]["targets"] == [f"{daemon['name']}:{port}"]
    assert daemon["name"] in daemon["networksAdvanced"][0]["aliases"]
    token_file = scrape["authorization"]["credentials_file"]
    assert is_secret(prometheus["uploads"]) and files[token_file] == "t0ken"


def test_grafana_mounts_the_datasource_and_every_dashboard(stack):
    files = uploads(stack().of_type(CONTAINER)["grafana"])
    dashboards = sorted((ROOT / "stacks" / "dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        assert files[f"/var/lib/grafana/dashboards/costwise/{path.name}"] == path.read_text()
    provider = yaml.safe_load(files["/etc/grafana/provisioning/dashboards/costwise.yaml"])
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/costwise"
    assert "datasources" in yaml.safe_load(files["/etc/grafana/provisioning/datasources/costwise-prometheus.yaml"])


def test_config_selects_the_platform_and_the_shapes(stack):
    local = stack().of_type(CONTAINER)["daemon"]
    assert "/var/run/docker.sock" not in str(local["volumes"]) and "DOCKER_HOST" not in env(local)
    shapes = [{"name": "docker-small", "backend": "docker", "vcpus": 2, "memory_gib": 4, "price_per_hour": 0.05}]
    mocks = stack(backends=["docker", "local"], shapes=shapes, homePath="/srv/costwise")
    daemon = mocks.of_type(CONTAINER)["daemon"]
    assert env(daemon)["DOCKER_HOST"] == "unix:///var/run/docker.sock"
    assert {"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock"} in daemon["volumes"]
    assert list(yaml.safe_load_all(uploads(daemon)["/etc/costwise/shapes.yaml"])) == [{"kind": "Shape", **shapes[0]}]
    assert "costwise apply /etc/costwise/shapes.yaml" in daemon["entrypoints"][-1]
    home = mocks.of_type("docker:index/volume:Volume")["costwise-home"]
    assert home["driverOpts"] == {"type": "none", "o": "bind", "device": "/srv/costwise"}


def test_a_missing_token_is_refused(stack):
    with pytest.raises(Exception, match="apiToken"):
        run_stack(PROGRAM, {"dbPassword": "pw"}, ("dbPassword",))


def test_compose_declares_the_same_services_as_the_stack(stack):
    containers = stack().of_type(CONTAINER)
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {s["container_name"] for s in services.values()} == {c["name"] for c in containers.values()}
    by_name = {s["container_name"]: s for s in services.values()}
    images = {c["name"]: c["image"] for c in containers.values()}
    for name, service in by_name.items():
        if not images[name].startswith("sha256:"):  # the daemon: built here, same tag
            assert service["image"] == images[name]
    stack_images = {a.name: a.inputs["name"] for a in stack().resources.values() if a.typ.endswith("RemoteImage")}
    assert {s["image"] for s in services.values()} == {*stack_images.values(), "costwise:local"}
    daemon = by_name["costwise-daemon"]
    assert set(daemon["environment"]) - {"DOCKER_HOST"} == set(env(containers["daemon"])) - {"DOCKER_HOST"}
    assert set(compose["volumes"]) == {"costwise-home", "postgres-data"}
    assert services["prometheus"]["volumes"][0].startswith("./stacks/platform_docker/prometheus.yml:")
