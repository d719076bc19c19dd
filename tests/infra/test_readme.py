"""The README's deploy guide sets every key with `pulumi config set`, as Pulumi.yaml declares it."""

from __future__ import annotations

import re
import shlex
from typing import Any

from tests.infra.conftest import EXAMPLE_STACK, PROJECT, REPOSITORY

SECTION = "## Deploy to your clusters"


def deploy_guide() -> str:
    """The README's deploy section, up to the next section of the same level."""
    text = (REPOSITORY / "README.md").read_text()
    assert SECTION in text, f"README.md has no {SECTION!r} section"
    guide = text.split(SECTION, 1)[1]
    return re.split(r"^## ", guide, flags=re.MULTILINE)[0]


README = deploy_guide()
CONFIG_SET = re.compile(r"^pulumi config set (.+)$", re.MULTILINE)
EXAMPLE = {key.removeprefix("spillover:"): value for key, value in EXAMPLE_STACK["config"].items()}


def config_set_lines() -> list[list[str]]:
    return [shlex.split(line.split(" < ")[0]) for line in CONFIG_SET.findall(README)]


def walk(document: Any, path: str) -> Any:
    """'budget.max_burst_usd_per_hour' or 'gpuInstanceTypes[1]' inside a value."""
    for part in re.findall(r"[^.\[\]]+", path):
        document = document[int(part)] if part.isdigit() else document[part]
    return document


def test_every_declared_key_has_a_config_set_line() -> None:
    keys = set()
    for words in config_set_lines():
        path = next(w for w in words if not w.startswith("--"))
        keys.add(re.split(r"[.\[]", path)[0])
    assert keys == set(PROJECT["config"]), (
        f"missing: {set(PROJECT['config']) - keys}; undeclared: {keys - set(PROJECT['config'])}"
    )


def test_config_set_lines_match_the_example_stack() -> None:
    for words in config_set_lines():
        arguments = [w for w in words if not w.startswith("--")]
        if "--secret" in words:
            assert PROJECT["config"][arguments[0]].get("secret"), words
            continue
        key, value = arguments
        expected = walk(EXAMPLE, key) if "--path" in words else EXAMPLE[key]
        if isinstance(expected, bool):
            expected = str(expected).lower()
        assert value == str(expected), (
            f"README sets {key} to {value!r}, the example to {expected!r}"
        )


def test_secrets_are_set_encrypted() -> None:
    for key, spec in PROJECT["config"].items():
        if spec.get("secret"):
            assert f"pulumi config set --secret {key}" in README, key
