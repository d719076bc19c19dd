"""The bootstrap scripts PrivateCluster runs over SSH: shellcheck-clean, and in --dry-run mode
printing what they would do on a given OS release, with the very arguments the program gives.

Nothing here is run as root or touches the machine: --dry-run prints every change instead.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from components.private_cluster import SCRIPTS, SCRIPTS_DIR
from tests.infra.conftest import K3S_TOKEN, REPOSITORY, Deployment, deploy, plain
from tests.infra.machines import IMAGES_SHA256, INSTALL_SHA256, K3S_SHA256, machine_stack

OS_RELEASES = {
    "ubuntu-22.04": 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\n',
    "debian-12": 'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\n',
    "rocky-9": 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n',
    "alpine-3.20": 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\n',
}
REMOTE_SCRIPT = re.compile(r'^sudo -n sh "\$HOME/\.spillover/bootstrap/([\w.-]+)" (.*)$')


@pytest.fixture(scope="module")
def os_releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("os-release")
    paths = {}
    for name, text in OS_RELEASES.items():
        paths[name] = directory / name
        paths[name].write_text(text)
    return paths


def dry_run(
    script: str, os_release: Path, *arguments: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SCRIPTS_DIR / script), "--dry-run", "--os-release", str(os_release), *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (scripts/install-system-deps.sh installs it)")
    result = subprocess.run(
        [shellcheck, "--severity=style", "--external-sources", *SCRIPTS],
        cwd=SCRIPTS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("release", "package_manager", "pinned"),
    [
        ("ubuntu-22.04", "apt-get install", "nvidia-container-toolkit=1.17.8-1"),
        ("debian-12", "apt-get install", "libnvidia-container1=1.17.8-1"),
        ("rocky-9", "dnf install", "nvidia-container-toolkit-1.17.8-1"),
    ],
)
def test_the_toolkit_installs_the_pinned_version_with_the_os_package_manager(
    os_releases: dict[str, Path], release: str, package_manager: str, pinned: str
) -> None:
    result = dry_run("nvidia-toolkit.sh", os_releases[release], "install", "--version", "1.17.8-1")
    assert result.returncode == 0, result.stderr
    installs = [line for line in result.stdout.splitlines() if package_manager in line]
    assert len(installs) == 1 and pinned in installs[0], result.stdout
    assert "nvidia.github.io/libnvidia-container" in result.stdout
    family = "rhel" if release.startswith("rocky") else "debian"
    assert f"({family} family)" in result.stdout.splitlines()[0]


def test_an_unsupported_os_is_refused_by_name(os_releases: dict[str, Path]) -> None:
    for script, arguments in (
        ("nvidia-toolkit.sh", ["install", "--version", "1.17.8-1"]),
        ("k3s-node.sh", ["install", "--role", "server", "--node-name", "cp-1",
                         "--version", "v1.33.5+k3s1", "--sha256", K3S_SHA256,
                         "--install-sha256", INSTALL_SHA256]),
    ):  # fmt: skip
        result = dry_run(script, os_releases["alpine-3.20"], *arguments)
        assert result.returncode == 1
        assert "unsupported OS release: ID=alpine" in result.stderr
        assert "would run" not in result.stdout


@pytest.fixture(scope="module")
def built() -> Deployment:
    return deploy(machine_stack())


def local(create: str) -> tuple[str, list[str]]:
    """A command the program runs over SSH, as the script and arguments to dry-run here."""
    match = REMOTE_SCRIPT.match(create)
    assert match, create
    return match.group(1), shlex.split(match.group(2))


def run_step(
    deployment: Deployment, name: str, os_release: Path
) -> subprocess.CompletedProcess[str]:
    inputs = plain(deployment.named(name).inputs)
    script, arguments = local(inputs["create"])
    return dry_run(script, os_release, *arguments, stdin=inputs.get("stdin", ""))


@pytest.mark.parametrize("release", ["ubuntu-22.04", "rocky-9"])
def test_the_first_server_dry_run_verifies_downloads_and_initialises(
    built: Deployment, os_releases: dict[str, Path], release: str
) -> None:
    result = run_step(built, "private-cluster-cp-1-k3s", os_releases[release])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "releases/download/v1.33.5%2Bk3s1/k3s" in out
    assert f"would verify sha256 of /usr/local/bin/k3s.part is {K3S_SHA256}" in out
    assert f"is {INSTALL_SHA256}" in out
    assert "  cluster-init: true" in out and "  tls-san:\n    - 10.0.0.11" in out
    assert "service-account-issuer=https://oidc.gpu.example.com" in out
    assert "default-runtime" not in out and "token-file" not in out
    assert out.rstrip().endswith(
        "INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_VERSION=v1.33.5+k3s1 "
        "INSTALL_K3S_SKIP_SELINUX_RPM=false INSTALL_K3S_EXEC=server "
        "sh /usr/local/share/spillover/k3s-install.sh"
    )
    # Verified before it is moved into place, and installed only after both checks.
    assert out.index("would verify sha256 of /usr/local/bin/k3s.part") < out.index(
        "would run: mv /usr/local/bin/k3s.part /usr/local/bin/k3s"
    )


def test_a_gpu_agent_dry_run_joins_with_the_token_from_stdin_and_never_prints_it(
    built: Deployment, os_releases: dict[str, Path]
) -> None:
    result = run_step(built, "private-cluster-gpu-1.rack.example.com-k3s", os_releases["debian-12"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "  server: https://10.0.0.11:6443" in out
    assert "  default-runtime: nvidia" in out
    assert "would write /etc/rancher/k3s/spillover-token (mode 600):\n  <secret," in out
    assert K3S_TOKEN not in out + result.stderr
    assert "INSTALL_K3S_EXEC=agent" in out


def test_a_joining_node_without_a_token_stops(
    built: Deployment, os_releases: dict[str, Path]
) -> None:
    inputs = plain(built.named("private-cluster-cp-2-k3s").inputs)
    script, arguments = local(inputs["create"])
    result = dry_run(script, os_releases["ubuntu-22.04"], *arguments, stdin="")
    assert result.returncode == 1 and "needs the cluster token on stdin" in result.stderr


def test_role_and_delete_steps_dry_run(built: Deployment, os_releases: dict[str, Path]) -> None:
    ubuntu = os_releases["ubuntu-22.04"]
    label = run_step(built, "private-cluster-gpu-2.rack.example.com-role", ubuntu)
    assert label.returncode == 0, label.stderr
    assert (
        "would run: /usr/local/bin/k3s kubectl label node gpu-2.rack.example.com --overwrite "
        "nvidia.com/gpu.present=true" in label.stdout
    )
    assert (
        "kubectl taint node gpu-2.rack.example.com --overwrite nvidia.com/gpu=present:NoSchedule"
        in label.stdout
    )
    role = plain(built.named("private-cluster-cpu-1-role").inputs)
    script, arguments = local(role["delete"])
    drain = dry_run(script, ubuntu, *arguments)
    assert drain.returncode == 0, drain.stderr
    assert (
        "kubectl drain cpu-1 --ignore-daemonsets --delete-emptydir-data --timeout=300s"
        in drain.stdout
    )
    assert "kubectl delete node cpu-1 --ignore-not-found" in drain.stdout
    for name in (
        "private-cluster-cpu-1-k3s",
        "private-cluster-gpu-1.rack.example.com-nvidia-toolkit",
    ):
        script, arguments = local(plain(built.named(name).inputs)["delete"])
        result = dry_run(script, ubuntu, *arguments)
        assert result.returncode == 0, result.stderr


def test_the_air_gapped_dry_run_copies_instead_of_downloading(
    tmp_path: Path, os_releases: dict[str, Path]
) -> None:
    for name in ("k3s", "install.sh", "k3s-airgap-images-amd64.tar.zst"):
        (tmp_path / name).write_bytes(b"artefact")
    (tmp_path / "nvidia").mkdir()
    (tmp_path / "nvidia" / "nvidia-container-toolkit_1.17.8-1_amd64.deb").write_bytes(b"deb")
    deployment = deploy(
        machine_stack(privateArtefactsDir=str(tmp_path), privateK3sImagesSha256=IMAGES_SHA256)
    )
    ubuntu = os_releases["ubuntu-22.04"]
    for name in (
        "private-cluster-gpu-1.rack.example.com-k3s",
        "private-cluster-gpu-1.rack.example.com-nvidia-toolkit",
    ):
        inputs = plain(deployment.named(name).inputs)
        script, arguments = local(
            inputs["create"].replace("$HOME/.spillover/artefacts", str(tmp_path))
        )
        result = dry_run(script, ubuntu, *arguments, stdin=inputs.get("stdin", ""))
        assert result.returncode == 0, result.stderr
        assert "curl" not in result.stdout, result.stdout
    k3s = run_step(deployment, "private-cluster-cp-1-k3s", ubuntu)
    assert "would run: cp $HOME/.spillover/artefacts/k3s /usr/local/bin/k3s.part" in k3s.stdout
    assert "/var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst" in k3s.stdout
    assert f"is {IMAGES_SHA256}" in k3s.stdout
    assert "INSTALL_K3S_SKIP_SELINUX_RPM=true" in k3s.stdout


def test_a_real_artefact_with_the_wrong_checksum_is_refused(
    tmp_path: Path, os_releases: dict[str, Path]
) -> None:
    """verify_sha256 checks a file that exists even in a dry run: the check itself, exercised."""
    artefact = tmp_path / "k3s"
    artefact.write_bytes(b"not the pinned binary")
    result = subprocess.run(
        ["sh", "-c", f'. "{SCRIPTS_DIR}/common.sh"; DRY_RUN=1; verify_sha256 "$1" "$2"', "sh",
         str(artefact), K3S_SHA256],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"expected {K3S_SHA256}" in result.stderr


def test_the_scripts_are_the_ones_the_program_copies() -> None:
    assert sorted(path.name for path in SCRIPTS_DIR.glob("*.sh")) == sorted(SCRIPTS)
    assert SCRIPTS_DIR.is_relative_to(REPOSITORY / "infra")


def test_writing_the_same_config_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    """What makes a re-run of install a no-op: write_file leaves an identical file alone."""
    target = tmp_path / "etc" / "config.yaml"
    program = (
        f'. "{SCRIPTS_DIR}/common.sh"; '
        'write_file "$1" 644 <<EOF\nnode-name: cp-1\nEOF\necho "CHANGED=$CHANGED"'
    )

    def write() -> str:
        result = subprocess.run(
            ["sh", "-c", program, "sh", str(target)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return result.stdout

    assert write() == f"wrote {target}\nCHANGED=1\n"
    assert target.read_text() == "node-name: cp-1\n"
    mtime = target.stat().st_mtime_ns
    assert write() == f"unchanged: {target}\nCHANGED=0\n"
    assert target.stat().st_mtime_ns == mtime
