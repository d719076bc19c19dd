"""The synthetic log is reproducible and has the structure the model is meant to learn."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from spillover.model.synth import InteractionLog, SynthConfig, generate

TINY = SynthConfig(n_users=300, n_items=200, n_categories=10, seed=3)

LOG_ARRAYS = ("user_ids", "item_ids", "timestamps", "session_ids", "item_categories")


def test_same_config_gives_byte_identical_arrays() -> None:
    first, second = generate(TINY), generate(TINY)
    for name in LOG_ARRAYS:
        assert getattr(first, name).tobytes() == getattr(second, name).tobytes(), name


def test_different_seed_gives_a_different_log() -> None:
    first = generate(TINY)
    other = generate(SynthConfig(**{**_as_dict(TINY), "seed": TINY.seed + 1}))
    assert first.item_ids.tobytes() != other.item_ids.tobytes()
    assert first.item_categories.tobytes() != other.item_categories.tobytes()


def test_ids_are_in_range_and_every_user_and_category_appears(small_log: InteractionLog) -> None:
    assert small_log.item_ids.min() >= 0 and small_log.item_ids.max() < small_log.n_items
    assert np.unique(small_log.user_ids).size == small_log.n_users
    assert np.unique(small_log.item_categories).size == small_log.n_categories


def test_each_users_clicks_are_grouped_and_in_time_order(small_log: InteractionLog) -> None:
    same_user = np.diff(small_log.user_ids) == 0
    assert np.all(np.diff(small_log.user_ids) >= 0)
    assert np.all(np.diff(small_log.timestamps)[same_user] > 0)


def test_popularity_is_heavy_tailed(small_log: InteractionLog) -> None:
    counts = np.sort(np.bincount(small_log.item_ids, minlength=small_log.n_items))[::-1]
    top_5_percent = counts[: counts.size // 20].sum() / counts.sum()
    assert top_5_percent > 0.25, "the top 5% of items should draw far more than 5% of clicks"
    ranks = np.arange(1, 101)
    slope = np.polyfit(np.log(ranks), np.log(counts[:100]), 1)[0]
    assert slope < -0.4, f"log-count should fall with log-rank like Zipf, slope {slope:.2f}"


def test_popularity_is_skewed_within_a_category(small_log: InteractionLog) -> None:
    largest = np.bincount(small_log.item_categories).argmax()
    in_category = np.flatnonzero(small_log.item_categories == largest)
    counts = np.bincount(small_log.item_ids, minlength=small_log.n_items)[in_category]
    assert counts.max() > 5 * np.median(counts)


def test_users_concentrate_on_a_few_categories(small_log: InteractionLog) -> None:
    click_category = small_log.item_categories[small_log.item_ids]
    per_user = np.zeros((small_log.n_users, small_log.n_categories))
    np.add.at(per_user, (small_log.user_ids, click_category), 1)
    favourite_share = (per_user.max(axis=1) / per_user.sum(axis=1)).mean()
    biggest_global_share = (np.bincount(click_category) / click_category.size).max()
    assert favourite_share > 3 * biggest_global_share


def test_sessions_mostly_stay_in_one_category(small_log: InteractionLog) -> None:
    click_category = small_log.item_categories[small_log.item_ids]
    same_category = click_category[1:] == click_category[:-1]
    same_session = small_log.session_ids[1:] == small_log.session_ids[:-1]
    assert same_category[same_session].mean() > 0.65
    assert same_category[~same_session].mean() < 0.4


def test_a_100k_item_catalog_generates() -> None:
    # How fast is measured by the build's own timing summary, not asserted here.
    log = generate(SynthConfig(n_items=100_000))
    assert log.n_items == 100_000
    assert log.item_ids.min() >= 0 and log.item_ids.max() < 100_000


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"n_items": 5, "n_categories": 10}, id="fewer-items-than-categories"),
        pytest.param({"n_users": 0}, id="no-users"),
        pytest.param({"session_focus": 1.5}, id="focus-above-one"),
    ],
)
def test_impossible_configs_are_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SynthConfig(**overrides)  # type: ignore[arg-type]


def _as_dict(config: SynthConfig) -> dict[str, object]:
    return {field.name: getattr(config, field.name) for field in fields(config)}
