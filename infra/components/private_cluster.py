"""The private GPU cluster built from machines you own: k3s over SSH, GPUs ready for Triton.

k3s rather than RKE2: one binary and one install script per release, both published with
sha256s, which is all an air-gapped machine needs besides one images archive; embedded etcd
for an HA control plane; and it finds the NVIDIA container runtime by itself and makes it
containerd's default with one setting (`default-runtime: nvidia`). RKE2 is the choice where
CIS hardening or FIPS builds are required; it costs a heavier install (its own tarball, a
separate RPM path) for a cluster whose only tenant is spillover.

Every step is a `command.remote.Command` whose create and update run the same idempotent script
(bootstrap scripts in scripts/, checked by shellcheck), so a `pulumi up` with nothing changed
runs nothing, and a changed version or script updates the nodes in place. A machine whose
host changes is replaced: the old one is drained and uninstalled, then the new one joins under
the same node name.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

import pulumi
import pulumi_command as command

from cluster_settings import AIRGAP_FILES, AIRGAP_NVIDIA_DIR, PrivateClusterSettings, PrivateMachine
from components.kubeconfig import k3s_kubeconfig
from components.node_groups import GPU_TAINT

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"
SCRIPTS = ("common.sh", "k3s-node.sh", "nvidia-toolkit.sh")
REMOTE_DIR = ".spillover"
"""Under the SSH user's home (CopyToRemote's relative paths are), which survives reboots, so
a delete months later still finds its scripts."""
API_PORT = 6443
K3S_TOKEN = "/var/lib/rancher/k3s/server/token"
K3S_KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
GPU_TAINT_ARG = f"{GPU_TAINT['key']}={GPU_TAINT['value']}:{GPU_TAINT['effect']}"
"""The taint GPU nodes get: the one the Triton chart and the device plugin values tolerate."""


def scripts_digest() -> str:
    """Changes whenever a bootstrap script does, so the commands that run them run again."""
    digest = hashlib.sha256()
    for script in SCRIPTS:
        digest.update((SCRIPTS_DIR / script).read_bytes())
    return digest.hexdigest()[:16]


def server_url(machine: PrivateMachine) -> str:
    host = f"[{machine.host}]" if ":" in machine.host else machine.host
    return f"https://{host}:{API_PORT}"


class PrivateCluster(pulumi.ComponentResource):
    """k3s on privateMachines, GPU nodes labelled and tainted; its kubeconfig, a secret."""

    kubeconfig: pulumi.Output[str]
    """Admin kubeconfig reaching the first server, ready once every node is joined and labelled."""

    def __init__(
        self,
        name: str,
        *,
        cluster: PrivateClusterSettings,
        gpu_node_label: tuple[str, str],
        oidc_issuer_url: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("spillover:private_cluster:PrivateCluster", name, None, opts)
        self._component_name = name
        self._cluster = cluster
        self._digest = scripts_digest()
        first, *other_servers = cluster.servers
        first_install = self._install(first, join=None, oidc_issuer_url=oidc_issuer_url)
        token = self._read(first, "token", K3S_TOKEN, after=first_install)
        installs = {first.node_name: first_install}
        previous: pulumi.Resource = token
        # Servers join one at a time: etcd adds one member at a time.
        for server in other_servers:
            previous = installs[server.node_name] = self._install(
                server, join=token, oidc_issuer_url=oidc_issuer_url, after=previous
            )
        # Agents join the first server once it hands out the token, in parallel.
        for agent in cluster.agents:
            installs[agent.node_name] = self._install(agent, join=token, oidc_issuer_url=None)
        label = f"{gpu_node_label[0]}={gpu_node_label[1]}"
        roles = [
            self._role(first, machine, label, installs[machine.node_name])
            for machine in cluster.machines
        ]
        raw = self._read(first, "kubeconfig", K3S_KUBECONFIG, after=first_install)
        # Waiting on every role makes whatever uses the kubeconfig wait for labelled GPU nodes,
        # and on destroy go before the nodes are drained.
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(raw.stdout, *[role.stdout for role in roles]).apply(
                lambda outputs: k3s_kubeconfig(outputs[0], server_url(first))
            )
        )
        self.register_outputs({"kubeconfig": self.kubeconfig})

    def _connection(self, machine: PrivateMachine) -> command.remote.ConnectionArgs:
        return command.remote.ConnectionArgs(
            host=machine.host,
            port=machine.port,
            user=machine.user,
            private_key=self._cluster.ssh_private_key,
            host_key=machine.host_key,
        )

    def _prefix(self, machine: PrivateMachine) -> str:
        return f"{self._component_name}-{machine.node_name}"

    def _copy_files(self, machine: PrivateMachine) -> list[pulumi.Resource]:
        """The scripts (and, air-gapped, the artefacts) into ~/.spillover on the machine."""
        files = {f"bootstrap/{script}": SCRIPTS_DIR / script for script in SCRIPTS}
        artefacts = self._cluster.artefacts_dir
        if artefacts:
            files.update({f"artefacts/{name}": artefacts / name for name in AIRGAP_FILES})
            if machine.gpus:
                nvidia = artefacts / AIRGAP_NVIDIA_DIR
                for package in sorted([*nvidia.glob("*.deb"), *nvidia.glob("*.rpm")]):
                    files[f"artefacts/{AIRGAP_NVIDIA_DIR}/{package.name}"] = package
        return [
            command.remote.CopyToRemote(
                f"{self._prefix(machine)}-copy-{remote.replace('/', '-')}",
                connection=self._connection(machine),
                source=pulumi.FileAsset(str(local)),
                remote_path=f"{REMOTE_DIR}/{remote}",
                triggers=[machine.host, machine.port],
                opts=pulumi.ResourceOptions(parent=self),
            )
            for remote, local in files.items()
        ]

    def _artefacts(self) -> list[str]:
        return (
            ["--artefacts", f"$HOME/{REMOTE_DIR}/artefacts"] if self._cluster.artefacts_dir else []
        )

    def _install(
        self,
        machine: PrivateMachine,
        *,
        join: command.remote.Command | None,
        oidc_issuer_url: str | None,
        after: pulumi.Resource | None = None,
    ) -> command.remote.Command:
        """The NVIDIA toolkit (GPU machines), then k3s as a server or agent."""
        cluster = self._cluster
        depends: list[pulumi.Resource] = [*self._copy_files(machine), *([after] if after else [])]
        if machine.gpus:
            toolkit = self._command(
                machine,
                "nvidia-toolkit",
                create=self._run_script(
                    "nvidia-toolkit.sh", "install", "--version", cluster.nvidia_toolkit_version
                ),
                delete=self._run_script("nvidia-toolkit.sh", "uninstall"),
                depends_on=depends,
            )
            depends = [toolkit]
        arguments = [
            "install",
            "--role", machine.role,
            "--node-name", machine.node_name,
            "--version", cluster.k3s_version,
            "--sha256", cluster.k3s_sha256,
            "--install-sha256", cluster.k3s_install_script_sha256,
        ]  # fmt: skip
        if cluster.k3s_images_sha256:
            arguments += ["--images-sha256", cluster.k3s_images_sha256]
        if machine.gpus:
            arguments.append("--gpu")
        if machine.role == "server":
            arguments += ["--tls-san", machine.host]
            if oidc_issuer_url:
                arguments += ["--oidc-issuer", oidc_issuer_url]
        if join is None:
            arguments.append("--cluster-init")
        else:
            arguments += ["--server-url", server_url(cluster.servers[0])]
        return self._command(
            machine,
            "k3s",
            create=self._run_script("k3s-node.sh", *arguments),
            delete=self._run_script("k3s-node.sh", "uninstall"),
            # The token travels on stdin: never on a command line, in the environment or a log.
            stdin=pulumi.Output.secret(join.stdout) if join else None,
            depends_on=depends,
        )

    def _run_script(self, script: str, action: str, *arguments: str) -> str:
        words = [action, *arguments]
        if action == "install":
            words += self._artefacts()
        quoted = " ".join(
            word if word.startswith("$HOME/") else shlex.quote(word) for word in words
        )
        return (
            f'sudo -n sh "$HOME/{REMOTE_DIR}/bootstrap/{script}" {quoted} '
            f"--script-digest {self._digest}"
        )

    def _role(
        self,
        first: PrivateMachine,
        machine: PrivateMachine,
        label: str,
        install: command.remote.Command,
    ) -> command.remote.Command:
        """On the first server: the node's GPU label and taint (set or cleared); on delete, drain
        it and delete its Node, so a machine replaced under the same name can join again."""
        node = ["--node-name", machine.node_name]
        gpu = [
            "--gpu-label",
            label,
            "--gpu-taint",
            GPU_TAINT_ARG,
            *(["--gpu"] if machine.gpus else []),
        ]
        return self._command(
            machine,
            "role",
            connection_to=first,
            create=self._run_script("k3s-node.sh", "label", *node, *gpu),
            delete=self._run_script("k3s-node.sh", "drain", *node),
            depends_on=[install],
        )

    def _read(
        self, machine: PrivateMachine, what: str, path: str, *, after: pulumi.Resource
    ) -> command.remote.Command:
        """A root-only file of the first server as a secret output, never logged."""
        return self._command(
            machine,
            what,
            create=f"sudo -n cat {shlex.quote(path)}",
            depends_on=[after],
            logging=command.remote.Logging.NONE,
            secret_stdout=True,
        )

    def _command(
        self,
        machine: PrivateMachine,
        step: str,
        *,
        create: str,
        delete: str | None = None,
        stdin: pulumi.Input[str] | None = None,
        depends_on: list[pulumi.Resource],
        connection_to: PrivateMachine | None = None,
        logging: command.remote.Logging | None = None,
        secret_stdout: bool = False,
    ) -> command.remote.Command:
        return command.remote.Command(
            f"{self._prefix(machine)}-{step}",
            connection=self._connection(connection_to or machine),
            # A connection change alone would run `update` on the new host and leave the old
            # one as it was. Another machine is another node: replace the step, undoing it on
            # the old machine first (drain, uninstall), then doing it on the new one.
            triggers=[machine.host, machine.port],
            create=create,
            # Same idempotent script: a changed version, config or script updates in place.
            update=create,
            delete=delete,
            stdin=stdin,
            logging=logging,
            # Off: it would hand the previous stdout (a kubeconfig, a token) to the next run's
            # environment, which sshd drops anyway unless AcceptEnv allows it.
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=depends_on,
                additional_secret_outputs=["stdout"] if secret_stdout else None,
                # The node's name stays: the old Node (and k3s's password for that name) must be
                # gone before the new machine registers under it.
                delete_before_replace=True,
            ),
        )
