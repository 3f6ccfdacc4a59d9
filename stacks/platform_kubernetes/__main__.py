"""costwise on Kubernetes (pulumi-kubernetes): two daemon replicas, leader and standby (the leader lock
is PostgreSQL's advisory lock), runs as Kubernetes Jobs in the daemon's namespace.

- RBAC: a Role with exactly what the kubernetes executor calls (RULES; tests/unit/test_platform_kubernetes.py
  derives the same list from the executor's code and fails when they part).
- Run folders and the step store live on one ReadWriteMany claim mounted at COSTWISE_HOME in the daemons
  and in every run's pod (COSTWISE_K8S_HOME_CLAIM), instead of hostPath.
- Probes hit /healthz (no token). Both replicas are ready: a standby answers reads and refuses
  writes with 503 "send it to the leader"; a leader-only readiness would stall every rolling update.
- Pods carry prometheus.io/* annotations; the daemon's /metrics needs the bearer token, so a Prometheus
  scraping them reads it from the `costwise-api` Secret (key `token`, mounted as credentials_file).
Stack config (namespace `costwise`): apiToken (secret, required); databaseUrl (secret: an external
PostgreSQL) or dbPassword (secret: a PostgreSQL StatefulSet here); image (default costwise:0.1.0);
namespace (costwise); storageClass, storageSize (50Gi); grafanaNamespace (default: the namespace).
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "stacks" / "dashboards"
HOME = "/var/lib/costwise"
PORT = 9464
APP = {"app.kubernetes.io/name": "costwise", "app.kubernetes.io/component": "daemon"}
# What scheduler/executors/kubernetes.py, k8s_logs.py call, as (apiGroup, resource, verbs).
RULES = [
    ("", "secrets", ["create", "delete", "patch"]),  # a run's secret env, owned by its Job
    ("", "pods", ["list"]),
    ("", "pods/log", ["get"]),
    ("batch", "jobs", ["create", "delete", "get", "list"]),
    ("batch", "jobs/status", ["get"]),
    ("metrics.k8s.io", "pods", ["get"]),  # utilization samples, where metrics-server runs
]


def meta(name: str, ns, **extra) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(name=name, namespace=ns, labels={**APP, **extra.pop("labels", {})}, **extra)


def rbac(ns) -> k8s.core.v1.ServiceAccount:
    account = k8s.core.v1.ServiceAccount("costwise", metadata=meta("costwise", ns))
    role = k8s.rbac.v1.Role("costwise-runs", metadata=meta("costwise-runs", ns), rules=[
        k8s.rbac.v1.PolicyRuleArgs(api_groups=[group], resources=[resource], verbs=verbs) for group, resource, verbs in RULES])
    k8s.rbac.v1.RoleBinding(
        "costwise-runs", metadata=meta("costwise-runs", ns),
        role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role", name=role.metadata.name),
        subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=account.metadata.name, namespace=ns)])
    return account


def postgres(ns, password) -> pulumi.Output:
    """A one-replica PostgreSQL StatefulSet and its Service; the daemon's URL to it."""
    labels = {"app.kubernetes.io/name": "costwise", "app.kubernetes.io/component": "postgres"}
    secret = k8s.core.v1.Secret("postgres", metadata=meta("costwise-postgres", ns), string_data={"password": password})
    k8s.core.v1.Service("postgres", metadata=meta("costwise-postgres", ns), spec=k8s.core.v1.ServiceSpecArgs(
        cluster_ip="None", selector=labels, ports=[k8s.core.v1.ServicePortArgs(name="postgres", port=5432)]))
    env = [k8s.core.v1.EnvVarArgs(name="POSTGRES_USER", value="costwise"), k8s.core.v1.EnvVarArgs(name="POSTGRES_DB", value="costwise"),
           k8s.core.v1.EnvVarArgs(name="PGDATA", value="/var/lib/postgresql/data/pgdata"),
           k8s.core.v1.EnvVarArgs(name="POSTGRES_PASSWORD", value_from=k8s.core.v1.EnvVarSourceArgs(
               secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret.metadata.name, key="password")))]
    k8s.apps.v1.StatefulSet("postgres", metadata=meta("costwise-postgres", ns), spec=k8s.apps.v1.StatefulSetSpecArgs(
        service_name="costwise-postgres", replicas=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
        template=k8s.core.v1.PodTemplateSpecArgs(metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels), spec=k8s.core.v1.PodSpecArgs(
            containers=[k8s.core.v1.ContainerArgs(
                name="postgres", image="postgres:16-alpine", env=env, ports=[k8s.core.v1.ContainerPortArgs(container_port=5432)],
                readiness_probe=k8s.core.v1.ProbeArgs(exec_=k8s.core.v1.ExecActionArgs(command=["pg_isready", "-U", "costwise"]), period_seconds=5),
                volume_mounts=[k8s.core.v1.VolumeMountArgs(name="data", mount_path="/var/lib/postgresql/data")])])),
        volume_claim_templates=[k8s.core.v1.PersistentVolumeClaimArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(name="data"), spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"], resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": "20Gi"})))]))
    return pulumi.Output.concat("postgresql+psycopg://costwise:", password, "@costwise-postgres.", ns, ".svc:5432/costwise")


def daemon_pod(account, claim, api_secret) -> k8s.core.v1.PodSpecArgs:
    def from_secret(name: str, key: str) -> k8s.core.v1.EnvVarArgs:
        return k8s.core.v1.EnvVarArgs(name=name, value_from=k8s.core.v1.EnvVarSourceArgs(
            secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=api_secret.metadata.name, key=key)))

    def probe(period: int, failures: int) -> k8s.core.v1.ProbeArgs:
        return k8s.core.v1.ProbeArgs(http_get=k8s.core.v1.HTTPGetActionArgs(path="/healthz", port="http"),
                                     period_seconds=period, failure_threshold=failures, timeout_seconds=3)

    config = pulumi.Config("costwise")
    return k8s.core.v1.PodSpecArgs(
        service_account_name=account.metadata.name,
        security_context=k8s.core.v1.PodSecurityContextArgs(run_as_non_root=True, run_as_user=10001, fs_group=10001),
        containers=[k8s.core.v1.ContainerArgs(
            name="daemon", image=config.get("image") or "costwise:0.1.0",
            args=["daemon", "--host", "0.0.0.0", "--metrics-port", str(PORT)],
            env=[from_secret("COSTWISE_API_TOKEN", "token"), from_secret("COSTWISE_DB", "database-url"),
                 k8s.core.v1.EnvVarArgs(name="COSTWISE_HOME", value=HOME),
                 k8s.core.v1.EnvVarArgs(name="COSTWISE_K8S_HOME_CLAIM", value=claim.metadata.name),
                 k8s.core.v1.EnvVarArgs(name="COSTWISE_K8S_NAMESPACE", value_from=k8s.core.v1.EnvVarSourceArgs(
                     field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path="metadata.namespace")))],
            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=PORT)],
            liveness_probe=probe(10, 6), readiness_probe=probe(5, 3),
            resources=k8s.core.v1.ResourceRequirementsArgs(requests={"cpu": "250m", "memory": "512Mi"}, limits={"memory": "2Gi"}),
            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="home", mount_path=HOME)])],
        volumes=[k8s.core.v1.VolumeArgs(name="home", persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
            claim_name=claim.metadata.name))])


def dashboards(ns) -> list[k8s.core.v1.ConfigMap]:
    """One ConfigMap per dashboard, labelled for Grafana's dashboard sidecar."""
    return [k8s.core.v1.ConfigMap(f"dashboard-{p.stem}", metadata=meta(p.stem, ns, labels={"grafana_dashboard": "1"},
                                                                        annotations={"grafana_folder": "costwise"}),
                                  data={p.name: p.read_text()}) for p in sorted(DASHBOARDS.glob("*.json"))]


def main() -> None:
    config = pulumi.Config("costwise")
    namespace = k8s.core.v1.Namespace("costwise", metadata=k8s.meta.v1.ObjectMetaArgs(name=config.get("namespace") or "costwise"))
    ns = namespace.metadata.name
    account = rbac(ns)
    db_url = config.get_secret("databaseUrl") or postgres(ns, config.require_secret("dbPassword"))
    api_secret = k8s.core.v1.Secret("costwise-api", metadata=meta("costwise-api", ns),
                                    string_data={"token": config.require_secret("apiToken"), "database-url": db_url})
    claim = k8s.core.v1.PersistentVolumeClaim("costwise-home", metadata=meta("costwise-home", ns), spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
        access_modes=["ReadWriteMany"], storage_class_name=config.get("storageClass"),
        resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": config.get("storageSize") or "50Gi"})))
    scrape = {"prometheus.io/scrape": "true", "prometheus.io/port": str(PORT), "prometheus.io/path": "/metrics"}
    k8s.apps.v1.Deployment("costwise", metadata=meta("costwise", ns), spec=k8s.apps.v1.DeploymentSpecArgs(
        replicas=2, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=APP),
        template=k8s.core.v1.PodTemplateSpecArgs(metadata=k8s.meta.v1.ObjectMetaArgs(labels=APP, annotations=scrape),
                                                 spec=daemon_pod(account, claim, api_secret))))
    service = k8s.core.v1.Service("costwise", metadata=meta("costwise", ns, annotations=scrape), spec=k8s.core.v1.ServiceSpecArgs(
        selector=APP, ports=[k8s.core.v1.ServicePortArgs(name="http", port=PORT, target_port="http")]))
    dashboards(config.get("grafanaNamespace") or ns)
    pulumi.export("namespace", ns)
    pulumi.export("api_url", pulumi.Output.concat("http://", service.metadata.name, ".", ns, f".svc:{PORT}"))


main()
