"""A fake Kubernetes API server: just what KubernetesPoolDriver calls, shaped like the real one.

An ``http.server`` on 127.0.0.1 in a thread. It serves a Deployment's scale
subresource (GET, PATCH), the Deployment (GET) and its namespace's pods (GET with a
label selector), answers errors as the API's ``Status`` objects, checks the bearer
token and the PATCH content type, and records every request. A route can be made
to fail with a status (and Retry-After) or to hang, so the driver's error mapping
and timeouts run against the real ``kubernetes`` client.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.drivers.fake_kube_objects import OBJECT_PATHS, ObjectStore

CREATED = "2025-11-11T00:00:00Z"
HANG_S = 10.0
"""A hung route answers normally after this long (or when the server stops)."""

MERGE_PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")

_REASONS = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}

_ROUTES = (
    ("scale", re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)/scale$")),
    ("deployment", re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)$")),
    ("pods", re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")),
    ("pod_proxy", re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/:]+):(\d+)/proxy/metrics$")),
)


@dataclass
class Deployment:
    namespace: str
    name: str
    replicas: int
    match_labels: dict[str, str]
    match_expressions: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    route: str
    """``get_scale``, ``patch_scale``, ``get_deployment``, ``list_pods`` or ``unknown``."""
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Lower-case names."""
    body: Any
    at: float = field(default_factory=time.monotonic)
    """When it arrived (monotonic), to line requests up against what a test did."""

    @property
    def token(self) -> str:
        return self.headers.get("authorization", "").removeprefix("Bearer ")


@dataclass(frozen=True)
class Fault:
    status: int | None
    """None hangs the route instead."""
    retry_after: str | None = None


class FakeKubeApi:
    """Start with ``with FakeKubeApi() as api:``; ``api.url`` is the server address."""

    def __init__(self, token: str = "test-token", *, more_tokens: tuple[str, ...] = ()) -> None:
        """more_tokens: other identities it accepts (one per controller process)."""
        self.token = token
        """The token it accepts; a test may rotate it."""
        self.more_tokens = set(more_tokens)
        self.store = ObjectStore()
        """Leases, Spillover resources and Events."""
        self.deployments: dict[tuple[str, str], Deployment] = {}
        self.pods: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.faults: dict[str, Fault] = {}
        self.pod_metrics: dict[tuple[str, str, int], str] = {}
        """(namespace, pod, port) -> the Triton metrics text its pod proxy answers."""
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeKubeApi:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._release.set()  # a hung handler answers now
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def add_deployment(self, deployment: Deployment) -> None:
        self.deployments[(deployment.namespace, deployment.name)] = deployment

    def fail(self, route: str, status: int, retry_after: str | None = None) -> None:
        self.faults[route] = Fault(status, retry_after)

    def hang(self, route: str) -> None:
        self.faults[route] = Fault(None)

    def requested(self, route: str) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.route == route]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _answer(self, request: RecordedRequest, groups: tuple[str, ...]) -> tuple[int, Any]:
        accepted = {self.token, *self.more_tokens}
        if request.headers.get("authorization") not in {f"Bearer {t}" for t in accepted}:
            return _status(401, "Unauthorized")
        fault = self.faults.get(request.route)
        if fault is not None:
            if fault.status is not None:
                return _status(fault.status, f"injected {fault.status}")
            self._release.wait(HANG_S)
        if request.route.startswith("objects_"):
            match = OBJECT_PATHS.match(request.path)
            assert match is not None
            code, answer = self.store.answer(request.method, match, request.body)
            return (code, answer) if isinstance(answer, dict) else _status(code, answer)
        if request.route == "get_pod_proxy":
            text = self.pod_metrics.get((groups[0], groups[1], int(groups[2])))
            return (200, text) if text is not None else _status(503, "no endpoint")
        if request.route == "list_pods":
            return 200, self._pod_list(groups[0], request.query.get("labelSelector", [""])[0])
        deployment = self.deployments.get((groups[0], groups[1]))
        if deployment is None:
            return _status(404, f'deployments.apps "{groups[1]}" not found')
        if request.route == "get_deployment":
            return 200, _deployment_json(deployment)
        if request.route == "patch_scale":
            return self._patch_scale(deployment, request)
        return 200, _scale_json(deployment)

    def _patch_scale(self, deployment: Deployment, request: RecordedRequest) -> tuple[int, Any]:
        content_type = request.headers.get("content-type", "")
        if content_type not in MERGE_PATCH_TYPES:
            return _status(415, f"the body of the request was in an unknown format: {content_type}")
        replicas = request.body.get("spec", {}).get("replicas", deployment.replicas)
        if not isinstance(replicas, int) or replicas < 0:
            return _status(422, f"spec.replicas: Invalid value: {replicas}")
        deployment.replicas = replicas
        return 200, _scale_json(deployment)

    def _pod_list(self, namespace: str, selector: str) -> dict[str, Any]:
        items = [
            pod
            for pod in self.pods
            if pod["metadata"]["namespace"] == namespace
            and selector_matches(selector, pod["metadata"].get("labels", {}))
        ]
        return {
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "1"},
            "items": items,
        }


def pod(
    name: str,
    labels: dict[str, str],
    *,
    namespace: str = "inference",
    phase: str = "Running",
    ready: bool = True,
    pod_ip: str | None = "10.0.3.7",
    deleting: bool = False,
    created: str = CREATED,
    ports: tuple[tuple[str, int], ...] = (("http", 8000), ("grpc", 8001), ("metrics", 8002)),
) -> dict[str, Any]:
    """A pod as the API lists it (list items carry no kind/apiVersion)."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": str(uuid.uuid4()),
        "labels": labels,
        "creationTimestamp": created,
    }
    if deleting:
        metadata["deletionTimestamp"] = "2025-11-11T00:05:00Z"
        metadata["deletionGracePeriodSeconds"] = 40
    status: dict[str, Any] = {"phase": phase, "qosClass": "Burstable"}
    if pod_ip is not None:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if phase != "Pending" or pod_ip is not None:
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": created},
            {"type": "Ready", "status": str(ready), "lastTransitionTime": created},
        ]
    container = {
        "name": "triton",
        "image": "nvcr.io/nvidia/tritonserver:24.08-py3",
        "ports": [
            {"name": port_name, "containerPort": number, "protocol": "TCP"}
            for port_name, number in ports
        ],
    }
    return {"metadata": metadata, "spec": {"containers": [container]}, "status": status}


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """The API's label selector language: ``a=b``, ``a!=b``, ``a in (b,c)``, ``a notin
    (b,c)``, ``a``, ``!a``, joined by commas."""
    for term in _terms(selector):
        if match := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            key, operator, values = match.groups()
            inside = labels.get(key) in {value.strip() for value in values.split(",")}
            if inside != (operator == "in"):
                return False
        elif match := re.fullmatch(r"([\w./-]+)\s*(!=|==|=)\s*([\w.-]*)", term):
            key, operator, value = match.groups()
            if (labels.get(key) == value) != (operator != "!="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _terms(selector: str) -> Iterator[str]:
    """Split on commas outside parentheses."""
    depth, start = 0, 0
    for index, char in enumerate(selector):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            yield selector[start:index].strip()
            start = index + 1
    if selector[start:].strip():
        yield selector[start:].strip()


def _metadata(deployment: Deployment) -> dict[str, Any]:
    return {
        "name": deployment.name,
        "namespace": deployment.namespace,
        "uid": "5b0c7c4e-3f5a-4a44-9d0e-1f0b6c2f7d11",
        "resourceVersion": "4242",
        "creationTimestamp": CREATED,
    }


def _selector(deployment: Deployment) -> dict[str, Any]:
    selector: dict[str, Any] = {"matchLabels": deployment.match_labels}
    if deployment.match_expressions:
        selector["matchExpressions"] = deployment.match_expressions
    return selector


def _scale_json(deployment: Deployment) -> dict[str, Any]:
    # Like the real autoscaling/v1 Scale, spec.replicas is omitted when it is 0.
    spec = {"replicas": deployment.replicas} if deployment.replicas else {}
    selector = ",".join(f"{key}={value}" for key, value in deployment.match_labels.items())
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": _metadata(deployment),
        "spec": spec,
        "status": {"replicas": deployment.replicas, "selector": selector},
    }


def _deployment_json(deployment: Deployment) -> dict[str, Any]:
    labels = dict(deployment.match_labels)
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {**_metadata(deployment), "generation": 3, "labels": labels},
        "spec": {
            "replicas": deployment.replicas,
            "selector": _selector(deployment),
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "triton", "image": "tritonserver"}]},
            },
            "strategy": {"type": "RollingUpdate"},
        },
        "status": {"observedGeneration": 3, "replicas": deployment.replicas},
    }


def _status(code: int, message: str) -> tuple[int, dict[str, Any]]:
    return code, {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _REASONS.get(code, "Unknown"),
        "code": code,
    }


def _route(method: str, path: str) -> tuple[str, tuple[str, ...]]:
    """``get_scale`` and the like, with the namespace (and name) from the path;
    ``objects_leases_put`` and the like for the object store's kinds."""
    if match := OBJECT_PATHS.match(path):
        status = "_status" if match["status"] else ""
        return f"objects_{match['plural']}{status}_{method.lower()}", ()
    for kind, pattern in _ROUTES:
        if match := pattern.match(path):
            verb = "list" if kind == "pods" else method.lower()
            return f"{verb}_{kind}", match.groups()
    return "unknown", ()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out has closed its end before a hung route answers.
        pass


def _handler_for(api: FakeKubeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve("GET")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            route, groups = _route(method, unquote(url.path))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = RecordedRequest(
                method=method,
                route=route,
                path=url.path,
                query=parse_qs(url.query),
                headers={name.lower(): value for name, value in self.headers.items()},
                body=json.loads(raw) if raw else None,
            )
            api._record(request)
            if not route.startswith("objects_") and route not in (
                "get_scale",
                "patch_scale",
                "get_deployment",
                "list_pods",
                "get_pod_proxy",
            ):
                code, body = _status(404, "the server could not find the requested resource")
            else:
                code, body = api._answer(request, groups)
            fault = api.faults.get(route)
            self._send(code, body, fault.retry_after if fault and code >= 400 else None)

        def _send(self, code: int, body: Any, retry_after: str | None) -> None:
            payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
