"""A private cluster built from machines: the stack config the PrivateCluster tests share."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.infra.conftest import stack_config

MACHINE_KEYS = (
    "privateMachines",
    "privateSshKey",
    "privateK3sVersion",
    "privateK3sSha256",
    "privateK3sInstallScriptSha256",
    "privateK3sImagesSha256",
    "privateNvidiaToolkitVersion",
    "privateArtefactsDir",
)
"""The keys of Pulumi.yaml's "private site from machines" part."""

SSH_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAAtest-only-key-0123456789\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
# Stand-ins with the shape of sha256s; the real ones come from the k3s release's checksum file.
K3S_SHA256 = hashlib.sha256(b"stand-in for the k3s binary").hexdigest()
INSTALL_SHA256 = hashlib.sha256(b"stand-in for install.sh").hexdigest()
IMAGES_SHA256 = hashlib.sha256(b"stand-in for the air-gap images").hexdigest()

SERVERS = [
    {"host": f"10.0.0.1{i}", "user": "ops", "role": "server", "gpus": 0, "name": f"cp-{i}"}
    for i in (1, 2, 3)
]
GPU_AGENTS = [
    {
        "host": f"gpu-{i}.rack.example.com",
        "user": "ops",
        "role": "agent",
        "gpus": 1,
        "port": 2222,
        "hostKey": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpu{i}",
    }
    for i in (1, 2)
]
CPU_AGENT = {"host": "10.0.0.31", "user": "ops", "role": "agent", "gpus": 0, "name": "cpu-1"}
MACHINES = [*GPU_AGENTS, *SERVERS, CPU_AGENT]
"""An HA control plane, two GPU agents (listed first: servers still go first), one CPU agent."""


def machine_stack(**overrides: Any) -> dict[str, Any]:
    """The example stack, built from MACHINES instead of reaching an existing cluster."""
    values = {
        "privateKubeconfig": "",
        "privateMachines": MACHINES,
        "privateSshKey": SSH_KEY,
        "privateK3sSha256": K3S_SHA256,
        "privateK3sInstallScriptSha256": INSTALL_SHA256,
    }
    values.update(overrides)
    return stack_config(**values)
