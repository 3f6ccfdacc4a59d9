"""A small stand-in for the Kubernetes API server: a real HTTP server on 127.0.0.1 speaking the few
endpoints the executor uses (batch/v1 Jobs, core/v1 Pods, pod logs and Secrets, metrics.k8s.io pods).

It is no control plane: it creates one Running pod per Job (the Job controller's part) and the test
plays the kubelet and the control plane (``log``, ``finish``, ``disrupt``, ``lose_node``) or lets
``auto_exit`` end pods by itself. It does not schedule, enforce ``activeDeadlineSeconds``, retry pods or garbage-collect owned objects.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

JOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs$")
JOB = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+?)(/status)?$")
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")
POD_LOG = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/log$")
SECRETS = re.compile(r"^/api/v1/namespaces/([^/]+)/secrets$")
SECRET = re.compile(r"^/api/v1/namespaces/([^/]+)/secrets/([^/]+)$")
METRICS = re.compile(r"^/apis/metrics.k8s.io/v1beta1/namespaces/([^/]+)/pods/([^/]+)$")


def now_ts() -> str:
    t = time.time()
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{int((t % 1) * 1e9):09d}Z"


class FakeKube:
    def __init__(self):
        self.jobs: dict[tuple[str, str], dict] = {}
        self.pods: dict[tuple[str, str], dict] = {}
        self.secrets: dict[tuple[str, str], dict] = {}
        self.logs: dict[str, list[tuple[str, str]]] = {}
        self.metrics: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict, object]] = []
        self.auto_exit: tuple[float, int] | None = None  # (seconds, exit code) for every new pod
        self.lock = threading.RLock()
        self.server = _Server(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, namespace: str = "ml") -> dict:
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "t0ken"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester", "namespace": namespace}}],
        }

    # -- the kubelet's part, played by tests ---------------------------------------------------
    def pod_of(self, job: str) -> str:
        with self.lock:
            return sorted(name for (_, name), pod in self.pods.items() if pod["metadata"]["labels"]["job-name"] == job)[-1]

    def log(self, pod: str, line: str) -> None:
        with self.lock:
            self.logs.setdefault(pod, []).append((now_ts(), line))

    def finish(self, job: str, exit_code: int, reason: str | None = None, condition: str | None = None) -> None:
        """End the job's newest pod with this exit code, and the Job with Complete / Failed."""
        with self.lock:
            ns, name = next(key for key in self.jobs if key[1] == job)
            pod = self.pods[(ns, self.pod_of(job))]
            term = {"exitCode": exit_code, "reason": reason or ("Completed" if exit_code == 0 else "Error")}
            pod["status"]["phase"] = "Succeeded" if exit_code == 0 else "Failed"
            pod["status"]["containerStatuses"][0]["state"] = {"terminated": term}
            status = self.jobs[(ns, name)]["status"]
            status.pop("active", None)
            kind = "Complete" if exit_code == 0 else "Failed"
            status["succeeded" if exit_code == 0 else "failed"] = 1
            status["conditions"] = [{"type": kind, "status": "True", "reason": condition or kind}]

    def disrupt(self, job: str, reason: str = "PreemptionByScheduler", evicted: bool = False,
                job_fails: bool = False) -> str:
        """The control plane takes the job's newest pod away: the ``DisruptionTarget`` condition (or,
        ``evicted``, status reason Evicted as the kubelet's node-pressure eviction leaves it), the
        container killed; ``job_fails``: the Job then Failed (backoffLimit 0), else still active."""
        with self.lock:
            ns, name = next(key for key in self.jobs if key[1] == job)
            pod_name = self.pod_of(job)
            status = self.pods[(ns, pod_name)]["status"]
            status["phase"] = "Failed"
            if evicted:
                status.update(reason="Evicted", message="The node was low on resource: memory.")
            else:
                status["conditions"] = [{"type": "DisruptionTarget", "status": "True", "reason": reason,
                                         "message": f"{reason}: taken away by the fake control plane"}]
            status["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 137, "reason": "Error"}}
            if job_fails:
                self.jobs[(ns, name)]["status"] = {"failed": 1, "conditions": [
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}
            return pod_name

    def lose_node(self, job: str) -> str:
        """The node of the job's newest pod is gone: the pod is deleted, the Job stays active."""
        with self.lock:
            ns = next(key for key in self.jobs if key[1] == job)[0]
            pod_name = self.pod_of(job)
            del self.pods[(ns, pod_name)]
            return pod_name

    def requests_of(self, method: str, pattern: str = "") -> list:
        return [r for r in self.requests if r[0] == method and pattern in r[1]]

    # -- the Job controller's part -------------------------------------------------------------
    def _create_pod(self, ns: str, job: dict) -> None:
        name = f"{job['metadata']['name']}-{uuid.uuid4().hex[:5]}"
        template = job["spec"]["template"]
        container = template["spec"]["containers"][0]
        self.pods[(ns, name)] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": now_ts()[:19] + "Z",
                         "labels": {**template["metadata"].get("labels", {}), "job-name": job["metadata"]["name"],
                                    "controller-uid": job["metadata"]["uid"]}},
            "spec": template["spec"],
            "status": {"phase": "Running", "containerStatuses": [{
                "name": container["name"], "image": container["image"], "imageID": "", "ready": True,
                "restartCount": 0, "state": {"running": {"startedAt": now_ts()[:19] + "Z"}}}]},
        }
        self.log(name, "starting " + " ".join(container["command"]))
        if self.auto_exit is not None:
            delay, code = self.auto_exit
            timer = threading.Timer(delay, self._auto_finish, (job["metadata"]["name"], name, code))
            timer.daemon = True
            timer.start()

    def _auto_finish(self, job: str, pod: str, code: int) -> None:
        with self.lock:
            if not any(key[1] == pod for key in self.pods):
                return  # deleted meanwhile
            self.log(pod, f"exiting with {code}")
            self.finish(job, code, condition=None if code == 0 else "BackoffLimitExceeded")


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A client that hangs up mid-stream (a log follower that stopped) is normal here."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            super().handle_error(request, client_address)


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def _matches(obj: dict, selector: str | None) -> bool:
    if not selector:
        return True
    labels = obj["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, _, v in (part.partition("=") for part in selector.split(",")))


def _handler(kube: FakeKube):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # for chunked log streams; every connection closes after one answer

        def log_message(self, *args):  # quiet
            pass

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length)) if length else None

        def _route(self, method: str) -> None:
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            body = self._body() if method in ("POST", "PATCH", "DELETE") else None
            with kube.lock:
                kube.requests.append((method, url.path, query, copy.deepcopy(body)))
            if self.headers.get("Authorization") != "Bearer t0ken":
                return self._send(401, _status(401, "Unauthorized", "no token"))
            for pattern, fn in ROUTES.get(method, []):
                match = pattern.match(url.path)
                if match:
                    return fn(self, query, body, *match.groups())
            self._send(404, _status(404, "NotFound", f"{method} {url.path} is not served here"))

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

        def do_DELETE(self):
            self._route("DELETE")

        def do_PATCH(self):
            self._route("PATCH")

        # -- Jobs --
        def create_job(self, query, body, ns):
            name = body["metadata"]["name"]
            with kube.lock:
                if (ns, name) in kube.jobs:
                    return self._send(409, _status(409, "AlreadyExists", f'jobs.batch "{name}" already exists'))
                body["metadata"].update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=now_ts()[:19] + "Z")
                body["status"] = {"active": 1}
                kube.jobs[(ns, name)] = body
                kube._create_pod(ns, body)
            self._send(201, body)

        def list_jobs(self, query, body, ns):
            with kube.lock:
                items = [j for (n, _), j in kube.jobs.items() if n == ns and _matches(j, query.get("labelSelector"))]
            self._send(200, {"apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": items})

        def get_job(self, query, body, ns, name, _status_suffix):
            with kube.lock:
                job = kube.jobs.get((ns, name))
            if job is None:
                return self._send(404, _status(404, "NotFound", f'jobs.batch "{name}" not found'))
            self._send(200, job)

        def delete_job(self, query, body, ns, name, _status_suffix):
            with kube.lock:
                job = kube.jobs.pop((ns, name), None)
                if job is None:
                    return self._send(404, _status(404, "NotFound", f'jobs.batch "{name}" not found'))
                for key in [k for k, p in kube.pods.items() if p["metadata"]["labels"]["job-name"] == name]:
                    del kube.pods[key]
            self._send(200, _status(200, "", "") | {"status": "Success"})

        # -- Pods --
        def list_pods(self, query, body, ns):
            with kube.lock:
                items = [p for (n, _), p in kube.pods.items() if n == ns and _matches(p, query.get("labelSelector"))]
            self._send(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})

        def pod_log(self, query, body, ns, name):
            if (ns, name) not in kube.pods:
                return self._send(404, _status(404, "NotFound", f'pods "{name}" not found'))
            since = float(query["sinceSeconds"]) if "sinceSeconds" in query else None
            stamps = query.get("timestamps") == "true"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")  # as the API server streams a followed log
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                self._stream_log(ns, name, query, since, stamps)
            finally:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        def _stream_log(self, ns, name, query, since, stamps):
            sent = 0
            while True:
                with kube.lock:
                    lines = list(kube.logs.get(name, []))
                    pod = kube.pods.get((ns, name))
                    running = pod is not None and "running" in pod["status"]["containerStatuses"][0]["state"]
                for ts, line in lines[sent:]:
                    if since is None or ts >= _ago(since):
                        data = ((ts + " " if stamps else "") + line + "\n").encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                sent = len(lines)
                if query.get("follow") != "true" or not running:
                    return
                time.sleep(0.05)

        # -- Secrets --
        def create_secret(self, query, body, ns):
            with kube.lock:
                body["metadata"]["namespace"] = ns
                kube.secrets[(ns, body["metadata"]["name"])] = body
            self._send(201, body)

        def patch_secret(self, query, body, ns, name):
            with kube.lock:
                secret = kube.secrets.get((ns, name))
                if secret is None:
                    return self._send(404, _status(404, "NotFound", f'secrets "{name}" not found'))
                secret["metadata"].update(body.get("metadata", {}))
            self._send(200, secret)

        def delete_secret(self, query, body, ns, name):
            with kube.lock:
                kube.secrets.pop((ns, name), None)
            self._send(200, _status(200, "", "") | {"status": "Success"})

        # -- metrics.k8s.io --
        def pod_metrics(self, query, body, ns, name):
            with kube.lock:
                usage = kube.metrics.get(name)
            if usage is None:
                return self._send(404, _status(404, "NotFound", f'podmetrics.metrics.k8s.io "{name}" not found'))
            self._send(200, {"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                             "metadata": {"name": name, "namespace": ns}, "timestamp": now_ts(), "window": "15s",
                             "containers": [{"name": "run", "usage": usage}]})

    ROUTES = {
        "POST": [(JOBS, Handler.create_job), (SECRETS, Handler.create_secret)],
        "GET": [(JOBS, Handler.list_jobs), (JOB, Handler.get_job), (PODS, Handler.list_pods),
                (POD_LOG, Handler.pod_log), (METRICS, Handler.pod_metrics)],
        "DELETE": [(JOB, Handler.delete_job), (SECRET, Handler.delete_secret)],
        "PATCH": [(SECRET, Handler.patch_secret)],
    }
    return Handler


def _ago(seconds: float) -> str:
    t = time.time() - seconds
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{int((t % 1) * 1e9):09d}Z"
