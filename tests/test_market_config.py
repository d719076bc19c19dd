"""`price.market`: a bad market price config is refused at load, naming the key and why."""

from __future__ import annotations

import pytest

from spillover.config import ConfigError, parse_config
from tests.test_config import GOOD, with_change

MARKET = {"region": "us-east-1", "instance_types": ["g5.xlarge"], "zones": ["us-east-1a"]}


def test_a_burst_pool_with_a_market_price_loads_with_its_price_book():
    config = parse_config(with_change("pools.1.price.market", MARKET))
    price = config.pool("burst").price
    assert price.market is not None and price.market.zones == ["us-east-1a"]
    assert price.hourly_usd == 0.5, "the price book until AWS answers"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        pytest.param(
            "pools.0.price",
            {"usd_per_replica_hour": 1.0, "source": "x", "market": MARKET},
            "pools[0]: price.market is for burst pools",
            id="private-pool",
        ),
        pytest.param(
            "pools.1.price.market",
            {**MARKET, "zones": ["eu-west-1a"]},
            "pools[1].price.market: zones ['eu-west-1a'] are not in region",
            id="zone-outside-region",
        ),
        pytest.param(
            "pools.1.price.market",
            {**MARKET, "instance_types": ["G5 XL"]},
            "pools[1].price.market.instance_types[0]: String should match pattern",
            id="bad-instance-type",
        ),
        pytest.param(
            "pools.1.price.market",
            {**MARKET, "instance_types": []},
            "pools[1].price.market.instance_types: List should have at least 1 item",
            id="no-instance-types",
        ),
        pytest.param(
            "pools.1.price.market",
            {**MARKET, "instance_types": ["g5.xlarge", "g5.xlarge"]},
            "instance_types repeats ['g5.xlarge']",
            id="repeated-type",
        ),
        pytest.param(
            "pools.1.price.market",
            {**MARKET, "refresh_seconds": 2},
            "pools[1].price.market.refresh_seconds: Input should be greater than or equal to 30",
            id="refresh-every-tick",
        ),
        pytest.param(
            "pools.1.price.market",
            {**MARKET, "regoin": "us-east-1"},
            "pools[1].price.market.regoin: unknown key (a typo?)",
            id="typo",
        ),
        pytest.param(
            "pools.1.price.market",
            {"instance_types": ["g5.xlarge"]},
            "pools[1].price.market.region: Field required",
            id="no-region",
        ),
        pytest.param(
            "pools.1.price",
            {
                "amortized": {
                    "purchase_usd_per_gpu": 1,
                    "lifetime_years": 1,
                    "power_kw_per_gpu": 0,
                    "usd_per_kwh": 0,
                },
                "source": "x",
                "market": MARKET,
            },
            "market needs usd_per_replica_hour as its price book",
            id="no-price-book",
        ),
    ],
)
def test_a_bad_market_price_names_the_key_and_why(path, value, message):
    with pytest.raises(ConfigError) as error:
        parse_config(with_change(path, value), source="spillover.yaml")
    assert message in str(error.value)


def test_the_readme_market_price_sample_is_a_valid_pool():
    import re

    import yaml

    from spillover.config_cli import LOCAL_DEFAULT

    readme = (LOCAL_DEFAULT.parents[2] / "README.md").read_text()
    section = readme.split("### Market prices and the bill", 1)[1]
    (sample,) = re.findall(r"```yaml\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    (pool,) = yaml.safe_load(sample)
    config = parse_config({"pools": [GOOD["pools"][0], pool]})
    assert config.pool("burst_spot").price.market is not None
