"""Reaching the Kubernetes API server: the client from kubeconfig or in-cluster config, the namespace.

The namespace is ``namespace`` / ``COSTWISE_K8S_NAMESPACE`` (the executor's) / the service account's
in a cluster / the kubeconfig context's / ``default``.
"""

from __future__ import annotations

import json
import os

from ..core.errors import CostwiseError
from ..core.extras import Extra, require


class KubernetesError(CostwiseError):
    """The API server refused, or could not be reached."""


def api_client():
    """An ``ApiClient`` from the in-cluster config inside a pod, else from KUBECONFIG."""
    from kubernetes import client, config

    cfg = client.Configuration()
    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=cfg)
        else:
            config.load_kube_config(config_file=kubeconfig_path(), client_configuration=cfg)
    except Exception as exc:  # ConfigException, missing file  # noqa: BLE001
        raise KubernetesError(f"no Kubernetes configuration (KUBECONFIG or in-cluster): {exc}") from None
    return client.ApiClient(cfg)


def context_namespace() -> str | None:
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    if os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(path):
        return open(path).read().strip() or None
    if not any(os.path.exists(p) for p in kubeconfig_path().split(os.pathsep)):
        return None  # no kubeconfig (KUBECONFIG may list several files): the default namespace
    config = require("kubernetes.config", Extra.KUBERNETES, "the namespace from the kubeconfig (else --namespace)")
    try:
        _, current = config.list_kube_config_contexts(config_file=kubeconfig_path())
        return (current or {}).get("context", {}).get("namespace")
    except Exception:  # a kubeconfig it cannot read: the default namespace  # noqa: BLE001
        return None


def kubeconfig_path() -> str:
    """KUBECONFIG as it is now (the client reads it once, at import time)."""
    return os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")


def message(exc) -> str:
    """The message of an API server's refusal (its Status body), else the body as it came."""
    try:
        return json.loads(exc.body).get("message", "")
    except (TypeError, ValueError, AttributeError):
        return str(exc.body or "")
