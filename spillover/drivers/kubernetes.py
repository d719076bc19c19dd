"""Pools whose replicas are a Triton Deployment: sized through its scale subresource,
observed through its pods.

Replica names are pod names. The gateway in a cluster does not know pods: its
``server-template`` fills slots ``<pool>-<n>`` from the DNS answers of the pool's
headless Service, and a slot's number says nothing about which pod it holds. So
the observer cannot look a Kubernetes replica up by name among the gateway's
servers; it has to take the gateway's side of a Kubernetes pool per pool (how
many of its slots are ready), and a pod's own readiness from its Ready
condition, which is also what puts its address into the headless Service.

A pod with no IP yet (scheduled, image pulling) is a starting replica with an
empty ``metrics_url``: there is nothing to scrape until it has an address.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from spillover.config import PoolConfig
from spillover.drivers.kube_pods import label_selector, metrics_port, replica_of
from spillover.drivers.pools import PoolDriver, ReplicaTarget
from spillover.drivers.registry import DriverContext
from spillover.errors import PermanentError, SpilloverError, TemporaryError
from spillover.settings import DEFAULTS, KubernetesSettings

logger = logging.getLogger(__name__)

NEEDED_PERMISSIONS = "get and patch on deployments/scale, get on deployments, list on pods"
"""What the controller's identity needs in the pool's namespace (apps and core groups)."""

_TEMPORARY_STATUSES = (409, 429)

_clients: dict[tuple[str | None, str | None], client.ApiClient] = {}
_clients_lock = threading.Lock()


class ClusterAccess(Protocol):
    """Which cluster, as credentials: a pool's KubernetesTarget, or controller.cluster."""

    @property
    def kubeconfig(self) -> str | None: ...

    @property
    def context(self) -> str | None: ...


def api_client_for(target: ClusterAccess) -> client.ApiClient:
    """One ApiClient per (kubeconfig, context), built on first use and then shared."""
    key = (target.kubeconfig, target.context)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = _new_api_client(target)
        return _clients[key]


def _new_api_client(target: ClusterAccess) -> client.ApiClient:
    configuration = client.Configuration()
    # urllib3 would retry a timed-out GET three times: four timeouts in one tick.
    configuration.retries = 0
    if target.kubeconfig is None:
        if target.context is not None:
            raise PermanentError(
                f"context {target.context!r} is set without a kubeconfig: set "
                "kubernetes.kubeconfig too, or drop the context to use the in-cluster "
                "service account"
            )
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as error:
            raise PermanentError(
                f"no kubeconfig is set and the in-cluster service account is unusable "
                f"({error}): run the controller in a pod or set kubernetes.kubeconfig"
            ) from error
        return client.ApiClient(configuration)
    path = Path(target.kubeconfig).expanduser()
    if not path.is_file():
        raise PermanentError(f"kubeconfig {path} does not exist: is its Secret mounted there?")
    try:
        return config.new_client_from_config(
            config_file=str(path),
            context=target.context,
            persist_config=False,  # never write refreshed tokens into a mounted Secret
            client_configuration=configuration,
        )
    # TypeError, AttributeError, KeyError: YAML that is not a kubeconfig.
    except (ConfigException, OSError, yaml.YAMLError, TypeError, AttributeError, KeyError) as error:
        raise PermanentError(
            f"cannot use kubeconfig {path} (context {target.context or 'current'}): {error}"
        ) from error


def for_pools(pools: Sequence[PoolConfig], context: DriverContext) -> Mapping[str, PoolDriver]:
    """One driver per pool: each pool is its own Deployment, maybe in its own cluster."""
    return {pool.name: KubernetesPoolDriver(pool) for pool in pools}


class KubernetesPoolDriver:
    """One pool: a Triton Deployment, sized through its scale subresource."""

    def __init__(
        self,
        pool_config: PoolConfig,
        api_client: client.ApiClient | None = None,
        *,
        settings: KubernetesSettings = DEFAULTS.kubernetes,
    ) -> None:
        if pool_config.kubernetes is None:
            raise ValueError(f"pool {pool_config.name} has no kubernetes section")
        self.pool = pool_config.name
        self.target = pool_config.kubernetes
        self.settings = settings
        self._api_client = api_client

    def replicas(self) -> list[ReplicaTarget]:
        with self._api_call("get", "deployments"):
            deployment = self._apps().read_namespaced_deployment(
                self.target.deployment,
                self.target.namespace,
                _request_timeout=self.settings.request_timeout_s,
            )
        selector = label_selector(deployment.spec.selector)
        with self._api_call("list", "pods"):
            pods = self._core().list_namespaced_pod(
                self.target.namespace,
                label_selector=selector,
                _request_timeout=self.settings.request_timeout_s,
            )
        targets = [self._replica(pod) for pod in pods.items]
        return sorted(targets, key=lambda target: (target.started_at, target.name))

    def _replica(self, pod: Any) -> ReplicaTarget:
        replica = replica_of(self.pool, pod)
        if self.target.metrics.via != "apiserver-proxy" or not replica.metrics_url:
            return replica
        name, port = pod.metadata.name, metrics_port(pod)
        where = f"/api/v1/namespaces/{self.target.namespace}/pods/{name}:{port}/proxy/metrics"
        return dataclasses.replace(
            replica,
            metrics_url=f"{self._client().configuration.host}{where}",
            read_metrics=lambda timeout_s: self._proxied_metrics(name, port, timeout_s),
        )

    def _proxied_metrics(self, pod: str, port: int, timeout_s: float) -> str:
        """The pod's /metrics through the API server: the one per-pod path that crosses
        sites (an NLB would read a random replica)."""
        with self._api_call("get", "pods/proxy"):
            # Raw body: the client would otherwise hand back the repr of the bytes.
            response = self._core().connect_get_namespaced_pod_proxy_with_path(
                f"{pod}:{port}",
                self.target.namespace,
                "metrics",
                _request_timeout=timeout_s,
                _preload_content=False,
            )
        return str(response.data.decode())

    def scale(self, pool: str, replicas: int) -> None:
        if pool != self.pool:
            raise PermanentError(f"the driver of pool {self.pool} was asked to scale {pool}")
        with self._api_call("get", "deployments/scale"):
            scale = self._apps().read_namespaced_deployment_scale(
                self.target.deployment,
                self.target.namespace,
                _request_timeout=self.settings.request_timeout_s,
            )
        # autoscaling/v1 omits spec.replicas when it is 0.
        if (scale.spec.replicas or 0) == replicas:
            return
        with self._api_call("patch", "deployments/scale"):
            self._apps().patch_namespaced_deployment_scale(
                self.target.deployment,
                self.target.namespace,
                {"spec": {"replicas": replicas}},
                _request_timeout=self.settings.request_timeout_s,
            )
        logger.info(
            "scaled %s (%s) from %d to %d replicas",
            self.pool,
            self._where,
            scale.spec.replicas or 0,
            replicas,
        )

    @property
    def _where(self) -> str:
        return f"{self.target.namespace}/{self.target.deployment}"

    def _client(self) -> client.ApiClient:
        if self._api_client is None:
            self._api_client = api_client_for(self.target)
        return self._api_client

    def _apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self._client())

    def _core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self._client())

    @contextlib.contextmanager
    def _api_call(self, verb: str, resource: str) -> Iterator[None]:
        """Turn what the client raises into TemporaryError or PermanentError."""
        action = f"pool {self.pool}: {verb} {resource} of {self._where}"
        try:
            yield
        except ApiException as error:
            raise self._api_error(error, action, verb, resource) from error
        except urllib3.exceptions.HTTPError as error:  # refused, reset, timed out, TLS
            raise TemporaryError(
                f"{action}: the API server did not answer: {error}",
                delay=self.settings.retry_delay_s,
            ) from error

    def _api_error(
        self, error: ApiException, action: str, verb: str, resource: str
    ) -> SpilloverError:
        status = error.status or 0
        failed = f"{action} failed with {status} {error.reason or ''}".rstrip()
        said = _status_message(error)
        if status == 0 or status >= 500 or status in _TEMPORARY_STATUSES:
            return TemporaryError(
                f"{failed}: {said}", delay=_retry_after(error, self.settings.retry_delay_s)
            )
        if status == 401:
            hint = (
                "the API server did not accept the credentials: check the kubeconfig's "
                "user (token, exec plugin) or the controller's service account token"
            )
        elif status == 403:
            hint = (
                f"the controller's identity may not {verb} {resource} in namespace "
                f"{self.target.namespace}: bind it a Role granting {NEEDED_PERMISSIONS}"
            )
        elif status == 404:
            hint = (
                f"check that deployment {self.target.deployment} exists in namespace "
                f"{self.target.namespace} of the cluster the kubeconfig context points at "
                f"(pools[{self.pool}].kubernetes)"
            )
        else:
            hint = "the API server refused the request as made"
        return PermanentError(f"{failed}: {said}. {hint}")


class ApiConflict(TemporaryError):
    """409: someone else changed or created the object first (optimistic concurrency)."""


class ApiNotFound(PermanentError):
    """404: no such object (or, for a path the server does not serve, no such kind)."""


class ApiObjects:
    """JSON objects at API paths (Leases, custom resources, Events): what the typed
    clients would add is model classes the callers do not need.

    ``get`` answers None for an object that does not exist; every other failure is a
    TemporaryError (ApiConflict for a 409) or a PermanentError naming the path."""

    def __init__(
        self,
        access: ClusterAccess,
        *,
        settings: KubernetesSettings = DEFAULTS.kubernetes,
        api_client: client.ApiClient | None = None,
    ) -> None:
        self.access = access
        self.settings = settings
        self._api_client = api_client

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", path)
        except ApiNotFound:
            return None

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("POST", path, body)

    def replace(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT: with metadata.resourceVersion set, a 409 if the object changed since."""
        return self._call("PUT", path, body)

    def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", path, body, "application/merge-patch+json")

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        if self._api_client is None:
            self._api_client = api_client_for(self.access)
        headers = {"Accept": "application/json", "Content-Type": content_type}
        action = f"{method} {path}"
        try:
            response = self._api_client.call_api(
                path,
                method,
                header_params=headers,
                body=body,
                response_types_map={200: "object", 201: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=self.settings.request_timeout_s,
            )
        except ApiException as error:
            status = error.status or 0
            said = f"{action} failed with {status} {error.reason or ''}: {_status_message(error)}"
            if status == 409:
                raise ApiConflict(said, delay=self.settings.retry_delay_s) from error
            if status == 404:
                raise ApiNotFound(said) from error
            if status == 0 or status >= 500 or status in _TEMPORARY_STATUSES:
                raise TemporaryError(
                    said, delay=_retry_after(error, self.settings.retry_delay_s)
                ) from error
            raise PermanentError(said) from error
        except urllib3.exceptions.HTTPError as error:
            raise TemporaryError(
                f"{action}: the API server did not answer: {error}",
                delay=self.settings.retry_delay_s,
            ) from error
        return dict(response or {})


def _status_message(error: ApiException) -> str:
    """The message of the API's Status object, else the raw body."""
    body = error.body.decode(errors="replace") if isinstance(error.body, bytes) else error.body
    try:
        message = json.loads(body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(body or "no details").strip()
    return str(message)


def _retry_after(error: ApiException, default_s: float) -> float:
    """The API server's Retry-After in seconds, else the default delay."""
    value = (error.headers or {}).get("Retry-After")
    try:
        return max(float(str(value)), 0.0)
    except ValueError:  # absent, or an HTTP date (the API server sends seconds)
        return default_s
