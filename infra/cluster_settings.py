"""The private cluster spillover provisions itself: the machines it is built from, checked.

Read only when the stack lists privateMachines; every bad machine field is recorded under its
own key (spillover:privateMachines[2].gpus) beside the rest of the stack's problems, so a stack
that cannot work fails before the first SSH connection.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pulumi

from config_reader import ConfigReader

K3S_VERSION = re.compile(r"^v1\.\d+\.\d+\+k3s\d+$")
"""A k3s release tag, as its GitHub releases name them: v1.33.5+k3s1."""
SHA256 = re.compile(r"^[0-9a-f]{64}$")
NVIDIA_TOOLKIT_VERSION = re.compile(r"^\d+\.\d+\.\d+(-\d+)?$")
"""An nvidia-container-toolkit package version: 1.17.8 or 1.17.8-1 (Debian's revision)."""
_NODE_NAME = re.compile(
    r"^(?=.{1,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$"
)
"""A Kubernetes node name (a DNS subdomain, kept to 63 so it also fits a label value)."""

MACHINE_FIELDS = {"host", "user", "role", "gpus", "port", "name", "hostKey"}
AIRGAP_FILES = ("k3s", "install.sh", "k3s-airgap-images-amd64.tar.zst")
"""What privateArtefactsDir must hold for k3s; GPU machines also need its nvidia/ packages."""
AIRGAP_NVIDIA_DIR = "nvidia"


@dataclass(frozen=True)
class PrivateMachine:
    """One machine you own, reached over SSH, that becomes a Kubernetes node."""

    host: str
    """Address `pulumi up` connects to, and the node's address in the cluster."""
    user: str
    """SSH user; it must be able to run sudo without a password."""
    port: int
    """SSH port."""
    role: Literal["server", "agent"]
    """server: control plane (and workloads); agent: workloads only."""
    gpus: int
    """NVIDIA GPUs in it; above 0 it gets the container toolkit, the GPU label and taint."""
    node_name: str
    """Its Kubernetes node name: `name`, or the host."""
    host_key: str | None
    """Its SSH host public key (`ssh-keyscan`); None trusts whatever key answers."""


@dataclass(frozen=True)
class PrivateClusterSettings:
    """How to turn privateMachines into a k3s cluster with GPUs."""

    machines: tuple[PrivateMachine, ...]
    """Servers first, in config order: the first one initialises the cluster."""
    ssh_private_key: pulumi.Output[str]
    """The key every machine accepts, a secret."""
    k3s_version: str
    """k3s release every node runs."""
    k3s_sha256: str
    """sha256 of that release's k3s binary (amd64)."""
    k3s_install_script_sha256: str
    """sha256 of that release's install.sh."""
    k3s_images_sha256: str | None
    """sha256 of its k3s-airgap-images-amd64.tar.zst; set (and needed) only air-gapped."""
    nvidia_toolkit_version: str
    """nvidia-container-toolkit package version on GPU machines."""
    artefacts_dir: Path | None
    """Air-gapped: the operator's directory copied to every machine; None downloads."""

    @property
    def servers(self) -> tuple[PrivateMachine, ...]:
        return tuple(m for m in self.machines if m.role == "server")

    @property
    def agents(self) -> tuple[PrivateMachine, ...]:
        return tuple(m for m in self.machines if m.role == "agent")


def read_private_cluster(
    read: ConfigReader, entries: list[Any], *, gpus_needed: int | None
) -> PrivateClusterSettings | None:
    """The cluster to build from privateMachines' entries; None when something is wrong."""
    before = len(read.problems)
    machines = _machines(read, entries)
    if machines and gpus_needed is not None:
        _check_gpus(read, machines, gpus_needed)
    key = read.secret_file("privateSshKey", what="the SSH private key every machine accepts")
    artefacts = _artefacts_dir(read, machines or ())
    settings = dict(
        k3s_version=read.pattern(
            "privateK3sVersion", K3S_VERSION, "a k3s release like v1.33.5+k3s1"
        ),
        k3s_sha256=_sha256(read, "privateK3sSha256", "the release's k3s binary"),
        k3s_install_script_sha256=_sha256(
            read, "privateK3sInstallScriptSha256", "the release's install.sh"
        ),
        k3s_images_sha256=(
            _sha256(read, "privateK3sImagesSha256", "the air-gap images archive")
            if artefacts
            else None
        ),
        nvidia_toolkit_version=read.pattern(
            "privateNvidiaToolkitVersion",
            NVIDIA_TOOLKIT_VERSION,
            "an nvidia-container-toolkit version like 1.17.8-1",
        ),
    )
    if len(read.problems) > before or machines is None or key is None:
        return None
    servers = [m for m in machines if m.role == "server"]
    return PrivateClusterSettings(
        machines=tuple(servers + [m for m in machines if m.role == "agent"]),
        ssh_private_key=key,
        artefacts_dir=artefacts,
        **settings,  # type: ignore[arg-type]
    )


def _machines(read: ConfigReader, entries: list[Any]) -> list[PrivateMachine] | None:
    before = len(read.problems)
    machines = []
    for index, entry in enumerate(entries):
        machine = _machine(read, f"privateMachines[{index}]", entry)
        if machine:
            machines.append(machine)
    for field, values in (
        ("host", [m.host for m in machines]),
        ("name", [m.node_name for m in machines]),
    ):
        for value, count in Counter(values).items():
            if count > 1:
                read.problem(f"privateMachines[*].{field}", f"{value} is listed {count} times")
    servers = sum(1 for m in machines if m.role == "server")
    if len(machines) == len(entries) and servers == 0:
        read.problem("privateMachines", "has no machine with role server (the control plane)")
    if servers and servers % 2 == 0:
        read.problem(
            "privateMachines",
            f"has {servers} servers: an HA control plane (embedded etcd) needs an odd number "
            "(1, 3, 5) to keep a quorum when one fails",
        )
    return machines if len(read.problems) == before else None


def _machine(read: ConfigReader, key: str, entry: Any) -> PrivateMachine | None:
    if not isinstance(entry, dict):
        read.problem(key, "must be an object with host, user, role and gpus")
        return None
    before = len(read.problems)
    for unknown in sorted(set(entry) - MACHINE_FIELDS):
        read.problem(
            f"{key}.{unknown}", f"is not a machine field ({', '.join(sorted(MACHINE_FIELDS))})"
        )
    for field in ("host", "user", "role", "gpus"):
        if field not in entry:
            hint = " (0 for a machine without GPUs)" if field == "gpus" else ""
            read.problem(f"{key}.{field}", f"is not set{hint}")
    host, user = entry.get("host"), entry.get("user")
    for field, value in (("host", host), ("user", user)):
        if field in entry and (not isinstance(value, str) or not value.strip()):
            read.problem(f"{key}.{field}", "must be a non-empty string")
    role = entry.get("role")
    if "role" in entry and role not in ("server", "agent"):
        read.problem(f"{key}.role", f"must be server or agent, got {role!r}")
    gpus = _whole(entry.get("gpus"))
    if "gpus" in entry and (gpus is None or gpus < 0):
        read.problem(
            f"{key}.gpus", f"must be a whole number of GPUs, 0 or more, got {entry['gpus']!r}"
        )
    port = _whole(entry.get("port", 22))
    if port is None or not 1 <= port <= 65535:
        read.problem(f"{key}.port", f"must be a TCP port (1-65535), got {entry.get('port')!r}")
    name = entry.get("name", host.strip().lower() if isinstance(host, str) else "")
    if not isinstance(name, str) or not _NODE_NAME.match(name):
        read.problem(
            f"{key}.name",
            f"{name!r} is not a Kubernetes node name (lowercase a-z, 0-9, - and .); "
            "set name when the host is not one",
        )
    host_key = entry.get("hostKey")
    if host_key is not None and (not isinstance(host_key, str) or len(host_key.split()) < 2):
        read.problem(f"{key}.hostKey", "must be a public key line like 'ssh-ed25519 AAAA...'")
    if len(read.problems) > before:
        return None
    return PrivateMachine(
        host=str(host).strip(),
        user=str(user).strip(),
        port=port,  # type: ignore[arg-type]
        role=role,  # type: ignore[arg-type]
        gpus=gpus,  # type: ignore[arg-type]
        node_name=name,
        host_key=host_key,
    )


def _whole(value: Any) -> int | None:
    """A whole number, also as the text `pulumi config set --path` may store it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _check_gpus(read: ConfigReader, machines: list[PrivateMachine], needed: int) -> None:
    """Triton runs only on GPU machines: there must be some, and enough GPUs for its replicas."""
    total = sum(m.gpus for m in machines)
    if total == 0:
        read.problem(
            "privateMachines",
            "declares no GPUs (every gpus is 0): private Triton runs only on GPU machines",
        )
    elif total < needed:
        read.problem(
            "privateMachines",
            f"declares {total} GPUs, fewer than privateGpuReplicas x gpusPerReplica ({needed})",
        )


def _sha256(read: ConfigReader, key: str, what: str) -> str | None:
    value = read.raw(key)
    if value is None:
        return None
    if not SHA256.match(value.strip().lower()):
        read.problem(key, f"must be the sha256 of {what} (64 hex digits), got {value!r}")
        return None
    return value.strip().lower()


def _artefacts_dir(read: ConfigReader, machines: list[PrivateMachine] | tuple[()]) -> Path | None:
    """The air-gapped path: a directory on the operator's machine with every artefact."""
    value = read.text("privateArtefactsDir", required=False)
    if not value:
        return None
    directory = Path(value).expanduser()
    if not directory.is_dir():
        read.problem("privateArtefactsDir", f"{directory} is not a directory")
        return None
    missing = [name for name in AIRGAP_FILES if not (directory / name).is_file()]
    nvidia = directory / AIRGAP_NVIDIA_DIR
    packages = [*nvidia.glob("*.deb"), *nvidia.glob("*.rpm")] if nvidia.is_dir() else []
    if any(m.gpus for m in machines) and not packages:
        missing.append(f"{AIRGAP_NVIDIA_DIR}/*.deb or *.rpm (the container toolkit's packages)")
    if missing:
        read.problem("privateArtefactsDir", f"{directory} lacks {', '.join(missing)}")
        return None
    return directory.resolve()
