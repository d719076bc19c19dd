"""The README's deploy guides set every key with `pulumi config set`, as Pulumi.yaml declares it.

"Deploy to your clusters" sets every key with the example stack's values; "Provision the private
cluster from your machines" sets the machines' keys, and the stack those lines make is valid.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from typing import Any

from settings import SECRET_CONFIG_KEYS
from tests.infra.conftest import EXAMPLE_STACK, PROJECT, REPOSITORY, read_settings
from tests.infra.machines import MACHINE_KEYS, SSH_KEY

SECTION = "## Deploy to your clusters"
MACHINES_SECTION = "## Provision the private cluster from your machines"


def readme_section(title: str) -> str:
    """A README section, up to the next section of the same level."""
    text = (REPOSITORY / "README.md").read_text()
    assert title in text, f"README.md has no {title!r} section"
    guide = text.split(title, 1)[1]
    return re.split(r"^## ", guide, flags=re.MULTILINE)[0]


README = readme_section(SECTION)
MACHINES_README = readme_section(MACHINES_SECTION)
CONFIG_SET = re.compile(r"^pulumi config set (.+)$", re.MULTILINE)
EXAMPLE = {key.removeprefix("spillover:"): value for key, value in EXAMPLE_STACK["config"].items()}


def config_set_lines(guide: str = README) -> list[list[str]]:
    return [shlex.split(line.split(" < ")[0]) for line in CONFIG_SET.findall(guide)]


def set_keys(guide: str) -> set[str]:
    keys = set()
    for words in config_set_lines(guide):
        path = next(w for w in words if not w.startswith("--"))
        keys.add(re.split(r"[.\[]", path)[0])
    return keys


def walk(document: Any, path: str) -> Any:
    """'budget.max_burst_usd_per_hour' or 'gpuInstanceTypes[1]' inside a value."""
    for part in re.findall(r"[^.\[\]]+", path):
        document = document[int(part)] if part.isdigit() else document[part]
    return document


def test_every_declared_key_has_a_config_set_line() -> None:
    keys = set_keys(README) | set_keys(MACHINES_README)
    assert keys == set(PROJECT["config"]), (
        f"missing: {set(PROJECT['config']) - keys}; undeclared: {keys - set(PROJECT['config'])}"
    )


def test_config_set_lines_match_the_example_stack() -> None:
    for words in config_set_lines():
        arguments = [w for w in words if not w.startswith("--")]
        if "--secret" in words:
            assert arguments[0] in SECRET_CONFIG_KEYS, words
            continue
        key, value = arguments
        expected = walk(EXAMPLE, key) if "--path" in words else EXAMPLE[key]
        if isinstance(expected, bool):
            expected = str(expected).lower()
        assert value == str(expected), (
            f"README sets {key} to {value!r}, the example to {expected!r}"
        )


def test_secrets_are_set_encrypted() -> None:
    guides = README + MACHINES_README
    for key in SECRET_CONFIG_KEYS:
        assert f"pulumi config set --secret {key}" in guides, key
        assert f"pulumi config set {key}" not in guides, key


def machines_stack_from_readme() -> dict[str, Any]:
    """The example stack with the machines guide's lines applied as the CLI would apply them.

    A value the operator computes in their shell (`"$(curl ... | sha256sum ...)"`) stands in as
    a sha256 of its command line; the secret read from a file, as the test's key.
    """
    values: dict[str, Any] = {**EXAMPLE, "privateKubeconfig": ""}
    for words in config_set_lines(MACHINES_README):
        arguments = [w for w in words if not w.startswith("--")]
        if "--secret" in words:
            values[arguments[0]] = SSH_KEY
            continue
        key, value = arguments
        if value.startswith("$("):
            value = hashlib.sha256(value.encode()).hexdigest()
        if "--path" not in words:
            values[key] = value
            continue
        top, index, field = re.fullmatch(r"(\w+)\[(\d+)\]\.(\w+)", key).groups()  # type: ignore[union-attr]
        entries = values.setdefault(top, [])
        while len(entries) <= int(index):
            entries.append({})
        # `--path` stores a whole number as one, as the example's max_burst_usd_per_hour.
        entries[int(index)][field] = int(value) if value.isdigit() else value
    return values


def test_the_machines_guide_sets_only_the_machines_keys() -> None:
    keys = set_keys(MACHINES_README)
    machine_keys = {key for key in PROJECT["config"] if key in MACHINE_KEYS}
    assert keys == machine_keys, keys ^ machine_keys
    assert "pulumi config rm privateKubeconfig" in MACHINES_README


def test_the_machines_guide_makes_a_valid_stack() -> None:
    settings = read_settings(machines_stack_from_readme())
    cluster = settings.private.cluster
    assert settings.private.kubeconfig is None
    assert [(m.node_name, m.role, m.gpus) for m in cluster.machines] == [
        ("cp-1", "server", 0),
        ("gpu-1", "agent", 2),
    ]
    assert cluster.k3s_version == PROJECT["config"]["privateK3sVersion"]["default"]
    assert (
        cluster.nvidia_toolkit_version
        == PROJECT["config"]["privateNvidiaToolkitVersion"]["default"]
    )
    assert cluster.artefacts_dir is None


def test_the_machines_guide_pins_the_version_it_downloads_checksums_of() -> None:
    version = PROJECT["config"]["privateK3sVersion"]["default"]
    encoded = version.replace("+", "%2B")
    checksum_lines = [line for line in MACHINES_README.splitlines() if 'Sha256 "$(curl' in line]
    assert len(checksum_lines) == 2 and all(encoded in line for line in checksum_lines)
    toolkit = PROJECT["config"]["privateNvidiaToolkitVersion"]["default"]
    assert f"nvidia-container-toolkit={toolkit}" in MACHINES_README
