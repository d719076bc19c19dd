"""The gateway driver: HAProxy in front of every pool's Triton replicas.

Import from here; the parts live in their own modules:

* ``haproxy_spec``: the layout and tunables (``GatewaySpec``, ``ServerSlot``, ...);
* ``haproxy_config``: the config rendered from a spec and checked by haproxy;
* ``haproxy_exposure``: the allow-list of Triton's API the frontends let through;
* ``haproxy_process``: haproxy as a local process, started and stopped by PID;
* ``haproxy_runtime``: the runtime API (stats, pool weights, enable/drain/maint);
* ``haproxy_weights``: pool shares turned into server weights (pure).
"""

from spillover.drivers.haproxy_config import (
    GatewayConfigError,
    HaproxyNotFoundError,
    check_config,
    find_haproxy,
    render_config,
)
from spillover.drivers.haproxy_process import (
    GatewayProcess,
    GatewayStartError,
    launch_gateway,
    start_gateway,
    stop_gateway,
    wait_for_gateway,
)
from spillover.drivers.haproxy_runtime import (
    GatewayUnreachableError,
    GatewayWaitTimeoutError,
    RuntimeApi,
    RuntimeApiError,
    RuntimeCommandError,
    ServerState,
    ServerStats,
)
from spillover.drivers.haproxy_spec import (
    BACKENDS,
    GRPC_BACKEND,
    HTTP_BACKEND,
    GatewaySpec,
    HealthCheck,
    RetryPolicy,
    ServerSlot,
    Timeouts,
    pool_of_server,
    replica_maxconn,
)
from spillover.drivers.haproxy_weights import MAX_WEIGHT, PoolSharesError, spread_pool_weights

__all__ = [
    "BACKENDS",
    "GRPC_BACKEND",
    "HTTP_BACKEND",
    "MAX_WEIGHT",
    "GatewayConfigError",
    "GatewayProcess",
    "GatewaySpec",
    "GatewayStartError",
    "GatewayUnreachableError",
    "GatewayWaitTimeoutError",
    "HaproxyNotFoundError",
    "HealthCheck",
    "PoolSharesError",
    "RetryPolicy",
    "RuntimeApi",
    "RuntimeApiError",
    "RuntimeCommandError",
    "ServerSlot",
    "ServerState",
    "ServerStats",
    "Timeouts",
    "check_config",
    "find_haproxy",
    "pool_of_server",
    "render_config",
    "launch_gateway",
    "replica_maxconn",
    "spread_pool_weights",
    "start_gateway",
    "stop_gateway",
    "wait_for_gateway",
]
