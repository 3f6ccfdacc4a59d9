"""The pulumi-kubernetes platform stack under set_mocks: RBAC is exactly what the kubernetes executor
calls (read from the executor's code, not a copied list), the daemon gets its token and database URL
from a Secret, two replicas with probes on /healthz, scrape annotations, a dashboard ConfigMap per file
for Grafana's sidecar, a ReadWriteMany claim at COSTWISE_HOME; every object validates against the
official client's models and the Kubernetes 1.33 OpenAPI schema (kubernetes-validate --strict)."""

from __future__ import annotations

import ast
import json
import re

import pytest

from tests.conftest import ROOT
from tests.platform_mocks import is_secret, plain, run_stack

PROGRAM = ROOT / "stacks" / "platform_kubernetes" / "__main__.py"
EXECUTOR = [ROOT / "scheduler" / "executors" / name for name in ("kubernetes.py", "k8s_client.py", "k8s_logs.py", "k8s_status.py")]
API_METHOD = re.compile(r"(create|read|list|delete|patch|replace|watch)_namespaced_([a-z_]+?)(_status|_log)?$")
VERBS = {"create": "create", "read": "get", "list": "list", "delete": "delete", "patch": "patch", "replace": "update", "watch": "watch"}


@pytest.fixture
def stack():
    def run(**config):
        secrets = ("apiToken", "dbPassword", "databaseUrl")
        return run_stack(PROGRAM, {"apiToken": "t0ken", "dbPassword": "pw", **config}, secrets)
    return run


def executor_rules() -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs, from every API method the executor's modules name."""
    from kubernetes import client

    rules: dict[tuple[str, str], set[str]] = {}
    for path in EXECUTOR:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and (m := API_METHOD.fullmatch(node.attr)):
                verb, kind, sub = m.groups()
                api = next(a for a in (client.CoreV1Api, client.BatchV1Api) if hasattr(a, node.attr))
                group = "" if api is client.CoreV1Api else "batch"
                resource = f"{kind}s" + (f"/{sub[1:]}" if sub else "")
                rules.setdefault((group, resource), set()).add(VERBS[verb])
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "get_namespaced_custom_object":
                group, _version, _ns, plural = (ast.literal_eval(a) if isinstance(a, ast.Constant) else None for a in node.args[:4])
                rules.setdefault((group, plural), set()).add("get")
    return rules


def test_rbac_grants_exactly_what_the_executor_calls(stack):
    derived = executor_rules()
    assert ("batch", "jobs") in derived and ("", "pods/log") in derived  # the scan sees the executor
    role = plain(stack().of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")["costwise-runs"])
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert granted == derived
    binding = plain(stack().of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")["costwise-runs"])
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "costwise", "namespace": "costwise"}]


def test_the_daemon_gets_token_and_database_url_from_a_secret(stack):
    mocks = stack()
    secret = mocks.of_type("kubernetes:core/v1:Secret")["costwise-api"]
    assert is_secret(secret["stringData"])
    assert plain(secret["stringData"]) == {"token": "t0ken",
                                           "database-url": "postgresql+psycopg://costwise:pw@costwise-postgres.costwise.svc:5432/costwise"}
    deployment = plain(mocks.of_type("kubernetes:apps/v1:Deployment")["costwise"])
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    for name, key in (("COSTWISE_API_TOKEN", "token"), ("COSTWISE_DB", "database-url")):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "costwise-api", "key": key}
    assert "t0ken" not in json.dumps(deployment)


def test_an_external_database_url_replaces_the_statefulset(stack):
    mocks = stack(databaseUrl="postgresql+psycopg://u:p@db.internal/costwise")
    assert not mocks.of_type("kubernetes:apps/v1:StatefulSet")
    secret = plain(mocks.of_type("kubernetes:core/v1:Secret")["costwise-api"])
    assert secret["stringData"]["database-url"] == "postgresql+psycopg://u:p@db.internal/costwise"


def test_two_replicas_with_probes_scraped_and_sharing_one_rwx_claim(stack):
    mocks = stack()
    deployment = plain(mocks.of_type("kubernetes:apps/v1:Deployment")["costwise"])
    template = deployment["spec"]["template"]
    container = template["spec"]["containers"][0]
    assert deployment["spec"]["replicas"] == 2
    assert container["livenessProbe"]["httpGet"]["path"] == container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    port = int(container["ports"][0]["containerPort"])
    assert template["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                                                   "prometheus.io/path": "/metrics"}
    service = plain(mocks.of_type("kubernetes:core/v1:Service")["costwise"])
    assert service["spec"]["selector"] == template["metadata"]["labels"]
    claim = plain(mocks.of_type("kubernetes:core/v1:PersistentVolumeClaim")["costwise-home"])
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mount = container["volumeMounts"][0]["mountPath"]
    assert env["COSTWISE_K8S_HOME_CLAIM"] == claim["metadata"]["name"] and mount == env["COSTWISE_HOME"]
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True


def test_every_dashboard_is_a_configmap_for_grafanas_sidecar(stack):
    maps = {n: plain(m) for n, m in stack(grafanaNamespace="monitoring").of_type("kubernetes:core/v1:ConfigMap").items()}
    files = sorted((ROOT / "stacks" / "dashboards").glob("*.json"))
    assert len(maps) == len(files)
    for path in files:
        found = maps[f"dashboard-{path.stem}"]
        assert found["metadata"]["labels"]["grafana_dashboard"] == "1" and found["metadata"]["namespace"] == "monitoring"
        assert found["data"] == {path.name: path.read_text()}


def integral(value):
    """Protobuf hands integers back as floats (2 -> 2.0): the objects as the API server gets them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def test_every_object_validates_against_the_client_models_and_the_schema(stack):
    import kubernetes_validate
    from kubernetes import client

    objects = [integral(plain(a.inputs)) for a in stack().resources.values()]
    assert {o["kind"] for o in objects} >= {"Namespace", "ServiceAccount", "Role", "RoleBinding", "Secret", "Service",
                                            "StatefulSet", "Deployment", "ConfigMap", "PersistentVolumeClaim"}
    api = client.ApiClient()
    for obj in objects:
        version = obj["apiVersion"].split("/")[-1].capitalize()
        model = getattr(client, f"{version}{obj['kind']}")
        assert api.sanitize_for_serialization(model.from_dict(obj)) == obj, obj["kind"]
        kubernetes_validate.validate(obj, "1.33.0", strict=True)


def test_the_validation_rejects_an_unknown_field():
    import kubernetes_validate

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "datum": {}},
                                     "1.33.0", strict=True)
