"""The drill config: the packaged one is valid, bad keys are named, overrides merge
into the stack's controller config by pool name."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.drills.settings import load_drill_settings, stack_config
from spillover.config import ConfigError, load_config
from spillover.config_cli import LOCAL_DEFAULT

SHORT = Path(__file__).parent / "drills-short.yaml"


def test_the_packaged_and_the_ci_drill_configs_make_valid_stacks():
    for path in (None, SHORT):
        settings = load_drill_settings() if path is None else load_drill_settings(path)
        for drill, name in [
            (settings.failover, "failover"),
            (settings.burst, "burst"),
            (settings.spot_interruption, "spot-interruption"),
            (settings.metrics_outage, "metrics-outage"),
        ]:
            config = stack_config(settings, drill, f"{name}.overrides")
            assert {pool.role for pool in config.pools} == {"private", "burst"}


def test_overrides_change_one_pool_by_name_and_keep_the_rest():
    settings = load_drill_settings()
    config = stack_config(settings, settings.spot_interruption, "spot-interruption.overrides")
    private = next(pool for pool in config.pools if pool.name == "private")
    burst = next(pool for pool in config.pools if pool.name == "burst")
    assert (burst.min_replicas, burst.max_replicas) == (1, 4)
    assert (private.min_replicas, private.max_replicas) == (1, 1)  # the other pool stays
    assert burst.price.usd_per_replica_hour == 0.45  # untouched keys stay


def test_the_failover_drill_runs_the_packaged_config_as_it_is():
    settings = load_drill_settings()
    config = stack_config(settings, settings.failover, "failover.overrides")
    packaged = load_config(LOCAL_DEFAULT)
    # Only where the drill's stack keeps its records differs (DRILL_STACK).
    assert config.model_copy(update={"controller": packaged.controller}) == packaged
    assert config.failover.reserve_share == 1.0


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "drills.yaml"
    path.write_text(text)
    return path


def test_every_bad_key_is_named_and_nothing_runs(tmp_path):
    path = write(
        tmp_path,
        "failover:\n  load_shar: 1\n  thresholds: {recovery_s: -1}\nbursts: {}\n",
    )
    with pytest.raises(ConfigError) as error:
        load_drill_settings(path)
    message = str(error.value)
    assert "failover.load_shar: unknown key" in message
    assert "failover.thresholds.recovery_s: Input should be greater than 0" in message
    assert "bursts: unknown key" in message


def test_an_override_of_a_missing_pool_or_a_bad_value_is_named(tmp_path):
    settings = load_drill_settings(write(tmp_path, "burst:\n  overrides: {pools: {gpu: {}}}\n"))
    with pytest.raises(ConfigError, match="burst.overrides.pools: no pool named gpu"):
        stack_config(settings, settings.burst, "burst.overrides")
    settings = load_drill_settings(
        write(tmp_path, "burst:\n  overrides: {policy: {tick_seconds: 0}}\n")
    )
    with pytest.raises(ConfigError, match="policy.tick_seconds: Input should be greater"):
        stack_config(settings, settings.burst, "burst.overrides")


def test_unreadable_yaml_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_drill_settings(write(tmp_path, "failover: [\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_drill_settings(tmp_path / "missing.yaml")


def test_a_drill_config_or_its_stack_config_that_is_not_utf8_is_named(tmp_path):
    not_utf8 = "# réglages\n".encode("latin-1")
    drills = tmp_path / "bad-drills.yaml"
    drills.write_bytes(not_utf8)
    with pytest.raises(
        ConfigError, match=f"{drills} is not UTF-8 text: byte 0xe9 at byte offset 3"
    ):
        load_drill_settings(drills)
    stack = tmp_path / "stack.yaml"
    stack.write_bytes(not_utf8)
    settings = load_drill_settings(write(tmp_path, f"stack: {{config: {stack}}}\n"))
    with pytest.raises(ConfigError, match=f"{stack} is not UTF-8 text"):
        stack_config(settings, settings.burst, "burst.overrides")
