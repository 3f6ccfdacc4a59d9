"""costwise on one Docker host (pulumi-docker): the daemon, PostgreSQL, Prometheus and Grafana.

compose.yaml at the repository root declares the same services for users without Pulumi
(tests/unit/test_platform_docker.py keeps the two in step). Stack config (namespace `costwise`):
  apiToken      (secret, required) the daemon's bearer token; Prometheus scrapes with it
  dbPassword    (secret, required) PostgreSQL's password; the daemon gets the URL as a secret
  grafanaPassword (secret, default: Grafana's own "admin")
  backends      what runs may use: [local] (default) or [docker, local]; docker needs the socket
  shapes        Shape documents applied when the daemon starts (costwise apply; default none)
  homePath      host folder behind the COSTWISE_HOME volume, at the same path inside the daemon, so
                docker-shape runs can bind their run folders (default /var/lib/costwise; docker only)
  dockerHost    a remote engine (ssh://..., tcp://...) for the stack and the daemon's runs
  dockerGid     the group of the engine's socket, given to the daemon (non-root) (default 999)
  image         the daemon's image; default: built from the repository's Dockerfile as costwise:local
  ports         published on 127.0.0.1: {api: 9464, prometheus: 9090, grafana: 3000}
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_docker as docker
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DASHBOARDS = ROOT / "stacks" / "dashboards"
HOME = "/var/lib/costwise"
DAEMON = "costwise-daemon"  # the name Prometheus scrapes (prometheus.yml) and clients reach
IMAGES = {"postgres": "postgres:16-alpine", "prometheus": "prom/prometheus:v2.53.0", "grafana": "grafana/grafana:11.1.0"}
PORTS = {"api": 9464, "prometheus": 9090, "grafana": 3000}
SOCKET = "/var/run/docker.sock"


def grafana_files() -> list[tuple[str, Path]]:
    """(path in the Grafana container, file here): the provisioning files and every dashboard."""
    files = [(f"/etc/grafana/provisioning/{p.parent.name}/{p.name}", p)
             for p in sorted((DASHBOARDS / "provisioning").glob("*/*.yaml"))]
    return files + [(f"/var/lib/grafana/dashboards/costwise/{p.name}", p) for p in sorted(DASHBOARDS.glob("*.json"))]


def daemon_command(shapes: list[dict]) -> tuple[list[str], list[docker.ContainerUploadArgs]]:
    """The daemon's entrypoint; with shapes, `costwise apply` them first (an upsert: idempotent)."""
    serve = f"costwise daemon --host 0.0.0.0 --metrics-port {PORTS['api']}"
    if not shapes:
        return ["/bin/sh", "-c", f"exec {serve}"], []
    doc = yaml.safe_dump_all([{"kind": "Shape", **s} for s in shapes], sort_keys=False)
    upload = docker.ContainerUploadArgs(file="/etc/costwise/shapes.yaml", content=doc)
    return ["/bin/sh", "-c", f"costwise apply /etc/costwise/shapes.yaml && exec {serve}"], [upload]


def network_on(net: docker.Network, alias: str) -> list[docker.ContainerNetworksAdvancedArgs]:
    return [docker.ContainerNetworksAdvancedArgs(name=net.name, aliases=[alias])]


def published(port: int, external: int) -> list[docker.ContainerPortArgs]:
    return [docker.ContainerPortArgs(internal=port, external=external, ip="127.0.0.1")]


def main() -> None:
    config = pulumi.Config("costwise")
    token, db_password = config.require_secret("apiToken"), config.require_secret("dbPassword")
    backends = config.get_object("backends") or ["local"]
    ports = {**PORTS, **(config.get_object("ports") or {})}
    engine = config.get("dockerHost")
    opts = pulumi.ResourceOptions(provider=docker.Provider("engine", host=engine)) if engine else None

    net = docker.Network("costwise", name="costwise", opts=opts)
    if "docker" in backends:  # run folders are bound by path: the volume is a host folder at the same path
        home = docker.Volume("costwise-home", name="costwise-home", driver="local", opts=opts, driver_opts={
            "type": "none", "o": "bind", "device": config.get("homePath") or HOME})
    else:
        home = docker.Volume("costwise-home", name="costwise-home", opts=opts)
    pgdata = docker.Volume("postgres-data", name="costwise-postgres-data", opts=opts)
    images = {k: docker.RemoteImage(k, name=v, keep_locally=True, opts=opts) for k, v in IMAGES.items()}

    postgres = docker.Container(
        "postgres", name="costwise-postgres", image=images["postgres"].image_id, restart="unless-stopped",
        envs=[pulumi.Output.concat("POSTGRES_PASSWORD=", db_password), "POSTGRES_USER=costwise", "POSTGRES_DB=costwise"],
        volumes=[docker.ContainerVolumeArgs(volume_name=pgdata.name, container_path="/var/lib/postgresql/data")],
        networks_advanced=network_on(net, "postgres"),
        healthcheck=docker.ContainerHealthcheckArgs(tests=["CMD", "pg_isready", "-U", "costwise"], interval="5s", retries=10),
        wait=True, opts=opts)

    image = config.get("image") or docker.Image(
        "costwise-image", image_name="costwise:local", skip_push=True, opts=opts,
        build=docker.DockerBuildArgs(context=str(ROOT), dockerfile=str(ROOT / "Dockerfile"))).image_name
    db_url = pulumi.Output.concat("postgresql+psycopg://costwise:", db_password, "@postgres:5432/costwise")
    entrypoint, uploads = daemon_command(config.get_object("shapes") or [])
    with_docker = "docker" in backends
    daemon = docker.Container(
        "daemon", name=DAEMON, image=image, restart="unless-stopped", entrypoints=entrypoint, uploads=uploads,
        envs=[pulumi.Output.concat("COSTWISE_API_TOKEN=", token), pulumi.Output.concat("COSTWISE_DB=", db_url),
              f"COSTWISE_HOME={HOME}", *([f"DOCKER_HOST=unix://{SOCKET}"] if with_docker else [])],
        volumes=[docker.ContainerVolumeArgs(volume_name=home.name, container_path=HOME),
                 *([docker.ContainerVolumeArgs(host_path=SOCKET, container_path=SOCKET)] if with_docker else [])],
        group_adds=[str(config.get_int("dockerGid") or 999)] if with_docker else None,
        networks_advanced=network_on(net, DAEMON), ports=published(PORTS["api"], ports["api"]),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[postgres])))

    prometheus = docker.Container(
        "prometheus", name="costwise-prometheus", image=images["prometheus"].image_id, restart="unless-stopped",
        uploads=[docker.ContainerUploadArgs(file="/etc/prometheus/prometheus.yml", content=(HERE / "prometheus.yml").read_text()),
                 docker.ContainerUploadArgs(file="/etc/prometheus/costwise-token", content=token)],
        networks_advanced=network_on(net, "prometheus"), ports=published(PORTS["prometheus"], ports["prometheus"]),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[daemon])))

    grafana_password = config.get_secret("grafanaPassword")
    grafana = docker.Container(
        "grafana", name="costwise-grafana", image=images["grafana"].image_id, restart="unless-stopped",
        envs=["COSTWISE_PROMETHEUS_URL=http://prometheus:9090",
              *([pulumi.Output.concat("GF_SECURITY_ADMIN_PASSWORD=", grafana_password)] if grafana_password else [])],
        uploads=[docker.ContainerUploadArgs(file=target, content=source.read_text()) for target, source in grafana_files()],
        networks_advanced=network_on(net, "grafana"), ports=published(PORTS["grafana"], ports["grafana"]),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[prometheus])))

    pulumi.export("api_url", f"http://127.0.0.1:{ports['api']}")
    pulumi.export("prometheus_url", f"http://127.0.0.1:{ports['prometheus']}")
    pulumi.export("grafana_url", f"http://127.0.0.1:{ports['grafana']}")
    pulumi.export("containers", [c.name for c in (postgres, daemon, prometheus, grafana)])


main()
