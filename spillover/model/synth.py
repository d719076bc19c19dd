"""A seeded synthetic e-commerce interaction log for training and evaluating the recommender.

The generative story, chosen so that a personalised model has something to learn
that item popularity alone cannot give:

* Items belong to categories. Category popularity follows a mild Zipf law, and
  within each category item popularity follows a steeper one, so a few items
  dominate each shelf.
* Each user has a few favourite categories (more popular categories are more
  likely favourites) with Dirichlet weights over them.
* A user's activity is a sequence of sessions. A session picks one category
  (usually a favourite) and mostly stays in it; the rest of its clicks wander
  over the whole catalog by global popularity.

Everything is drawn with one ``numpy.random.Generator`` in a fixed order, so the
same ``SynthConfig`` always gives byte-identical arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

SECONDS_BETWEEN_CLICKS = 45
"""Typical gap between two clicks of one session."""

MEAN_SECONDS_BETWEEN_SESSIONS = 2 * 24 * 3600
"""Typical idle time between two sessions of one user."""


@dataclass(frozen=True)
class SynthConfig:
    """Sizes and shape parameters of the synthetic interaction log."""

    n_users: int = 8_000
    """Number of users; user ids are 0..n_users-1."""

    n_items: int = 5_000
    """Catalog size; item ids are 0..n_items-1."""

    n_categories: int = 32
    """Number of item categories (every category gets at least one item)."""

    mean_sessions_per_user: float = 6.0
    """Average sessions per user; the count is 1 + Poisson(mean - 1), so heavy users exist."""

    mean_session_length: float = 6.0
    """Average clicks per session; the length is 1 + Poisson(mean - 1)."""

    zipf_exponent: float = 1.0
    """Zipf exponent of item popularity within a category (larger = more skewed)."""

    category_zipf_exponent: float = 0.4
    """Zipf exponent of category popularity across categories."""

    favourite_categories: int = 3
    """How many favourite categories each user has."""

    preference_concentration: float = 1.0
    """Dirichlet concentration over a user's favourites (small = one dominant favourite)."""

    explore_probability: float = 0.1
    """Chance that a session is about a random category (by popularity), not a favourite."""

    session_focus: float = 0.85
    """Chance that a click stays in the session's category rather than wandering the catalog."""

    seed: int = 0
    """Seed of the random generator; the same config always yields the same log."""

    def __post_init__(self) -> None:
        _require(self.n_users >= 1, "n_users must be at least 1")
        _require(self.n_categories >= 1, "n_categories must be at least 1")
        _require(self.n_items >= self.n_categories, "n_items must be >= n_categories")
        _require(self.mean_sessions_per_user >= 1, "mean_sessions_per_user must be >= 1")
        _require(self.mean_session_length >= 1, "mean_session_length must be >= 1")
        _require(self.favourite_categories >= 1, "favourite_categories must be at least 1")
        _require(self.preference_concentration > 0, "preference_concentration must be > 0")
        _require(0 <= self.explore_probability <= 1, "explore_probability must be in [0, 1]")
        _require(0 <= self.session_focus <= 1, "session_focus must be in [0, 1]")
        _require(self.zipf_exponent >= 0, "zipf_exponent must be >= 0")
        _require(self.category_zipf_exponent >= 0, "category_zipf_exponent must be >= 0")


@dataclass(frozen=True)
class InteractionLog:
    """One row per click: rows are grouped by user, each user's rows in time order."""

    user_ids: Int64Array
    """The clicking user, shape [n_interactions]."""

    item_ids: Int64Array
    """The clicked item, shape [n_interactions]."""

    timestamps: Int64Array
    """Seconds since the start of the log, increasing within each user."""

    session_ids: Int64Array
    """Global session number, increasing along the log."""

    item_categories: Int64Array
    """Category index of every item, shape [n_items]."""

    n_users: int
    """Number of users the log was drawn for; user ids are 0..n_users-1."""

    @property
    def n_items(self) -> int:
        return int(self.item_categories.shape[0])

    @property
    def n_categories(self) -> int:
        return int(self.item_categories.max()) + 1

    def __len__(self) -> int:
        return int(self.item_ids.shape[0])


@dataclass(frozen=True)
class _Catalog:
    """Items laid out by category, with the cumulative distributions used to sample them."""

    item_categories: Int64Array
    category_popularity: FloatArray
    item_of_slot: Int64Array
    """Item id at each slot; slots are sorted by category, then by popularity rank."""
    within_category_cdf: FloatArray
    """Per-category CDFs laid end to end: category c spans the values (c, c + 1]."""
    category_first_slot: Int64Array
    category_last_slot: Int64Array
    global_cdf: FloatArray


def generate(config: SynthConfig) -> InteractionLog:
    """Draw the whole interaction log for ``config``."""
    rng = np.random.default_rng(config.seed)
    catalog = _build_catalog(config, rng)
    favourites, favourite_weights = _draw_user_preferences(config, catalog, rng)
    session_users = _draw_session_owners(config, rng)
    session_categories = _draw_session_categories(
        config, catalog, favourites, favourite_weights, session_users, rng
    )
    session_lengths = 1 + rng.poisson(config.mean_session_length - 1, size=session_users.size)
    click_sessions = np.repeat(np.arange(session_users.size), session_lengths)
    items = _draw_clicks(config, catalog, session_categories[click_sessions], rng)
    timestamps = _click_timestamps(session_users, session_lengths, click_sessions, rng)
    return InteractionLog(
        user_ids=session_users[click_sessions].astype(np.int64),
        item_ids=items,
        timestamps=timestamps,
        session_ids=click_sessions.astype(np.int64),
        item_categories=catalog.item_categories,
        n_users=config.n_users,
    )


def _build_catalog(config: SynthConfig, rng: np.random.Generator) -> _Catalog:
    # One item per category first so no category is empty, the rest uniformly.
    slot_categories = np.concatenate(
        [
            np.arange(config.n_categories),
            rng.integers(0, config.n_categories, size=config.n_items - config.n_categories),
        ]
    )
    slot_categories.sort()
    category_sizes = np.bincount(slot_categories, minlength=config.n_categories)
    first_slot = np.concatenate([[0], np.cumsum(category_sizes)[:-1]])
    rank_in_category = np.arange(config.n_items) - first_slot[slot_categories]
    within_weight = _zipf_weights(rank_in_category, config.zipf_exponent)
    within_weight /= np.bincount(slot_categories, weights=within_weight)[slot_categories]

    category_popularity = _zipf_weights(
        rng.permutation(config.n_categories), config.category_zipf_exponent
    )
    category_popularity /= category_popularity.sum()
    global_weight = within_weight * category_popularity[slot_categories]

    # Shuffle ids so an item's id says nothing about its category or popularity.
    item_of_slot = rng.permutation(config.n_items).astype(np.int64)
    item_categories = np.empty(config.n_items, dtype=np.int64)
    item_categories[item_of_slot] = slot_categories
    return _Catalog(
        item_categories=item_categories,
        category_popularity=category_popularity,
        item_of_slot=item_of_slot,
        within_category_cdf=np.cumsum(within_weight),
        category_first_slot=first_slot.astype(np.int64),
        category_last_slot=(first_slot + category_sizes - 1).astype(np.int64),
        global_cdf=np.cumsum(global_weight) / global_weight.sum(),
    )


def _zipf_weights(ranks: npt.NDArray[np.integer], exponent: float) -> FloatArray:
    return (ranks.astype(np.float64) + 1.0) ** -exponent


def _draw_user_preferences(
    config: SynthConfig, catalog: _Catalog, rng: np.random.Generator
) -> tuple[Int64Array, FloatArray]:
    """Favourite categories per user (Gumbel top-k by popularity) and Dirichlet weights."""
    n_favourites = min(config.favourite_categories, config.n_categories)
    gumbel = rng.gumbel(size=(config.n_users, config.n_categories))
    keys = np.log(catalog.category_popularity)[None, :] + gumbel
    favourites = np.argsort(-keys, axis=1, kind="stable")[:, :n_favourites].astype(np.int64)
    weights = rng.dirichlet(np.full(n_favourites, config.preference_concentration), config.n_users)
    return favourites, weights


def _draw_session_owners(config: SynthConfig, rng: np.random.Generator) -> Int64Array:
    sessions_per_user = 1 + rng.poisson(config.mean_sessions_per_user - 1, size=config.n_users)
    return np.repeat(np.arange(config.n_users, dtype=np.int64), sessions_per_user)


def _draw_session_categories(
    config: SynthConfig,
    catalog: _Catalog,
    favourites: Int64Array,
    favourite_weights: FloatArray,
    session_users: Int64Array,
    rng: np.random.Generator,
) -> Int64Array:
    n_sessions = session_users.size
    cumulative = np.cumsum(favourite_weights[session_users], axis=1)
    pick = rng.random(n_sessions)[:, None] * cumulative[:, -1:]
    favourite_index = np.minimum((pick >= cumulative).sum(axis=1), favourites.shape[1] - 1)
    favourite = favourites[session_users, favourite_index]
    explored = _sample_from_cdf(np.cumsum(catalog.category_popularity), rng.random(n_sessions))
    explores = rng.random(n_sessions) < config.explore_probability
    return np.where(explores, explored, favourite).astype(np.int64)


def _draw_clicks(
    config: SynthConfig,
    catalog: _Catalog,
    click_categories: Int64Array,
    rng: np.random.Generator,
) -> Int64Array:
    n_clicks = click_categories.size
    # Category c's CDF spans (c, c + 1], so c + u lands inside category c's slots.
    focused_slot = _sample_from_cdf(
        catalog.within_category_cdf, click_categories + rng.random(n_clicks)
    )
    focused_slot = np.clip(
        focused_slot,
        catalog.category_first_slot[click_categories],
        catalog.category_last_slot[click_categories],
    )
    wandering_slot = _sample_from_cdf(catalog.global_cdf, rng.random(n_clicks))
    stays = rng.random(n_clicks) < config.session_focus
    return catalog.item_of_slot[np.where(stays, focused_slot, wandering_slot)]


def _sample_from_cdf(cdf: FloatArray, draws: FloatArray) -> Int64Array:
    index = np.searchsorted(cdf, draws, side="right")
    return np.minimum(index, cdf.size - 1).astype(np.int64)


def _click_timestamps(
    session_users: Int64Array,
    session_lengths: Int64Array,
    click_sessions: Int64Array,
    rng: np.random.Generator,
) -> Int64Array:
    """Sessions of one user follow each other without overlap; clicks inside are seconds apart."""
    n_sessions = session_users.size
    longest_session = int(session_lengths.max()) * SECONDS_BETWEEN_CLICKS * 2
    gaps = longest_session + rng.exponential(MEAN_SECONDS_BETWEEN_SESSIONS, n_sessions)
    session_end = np.cumsum(gaps)
    first_session_of_user = np.r_[True, session_users[1:] != session_users[:-1]]
    user_origin = np.maximum.accumulate(np.where(first_session_of_user, session_end - gaps, 0.0))
    session_start = session_end - gaps - user_origin
    click_in_session = np.arange(click_sessions.size) - np.repeat(
        np.cumsum(session_lengths) - session_lengths, session_lengths
    )
    click_gaps = 1 + rng.poisson(SECONDS_BETWEEN_CLICKS, size=click_sessions.size)
    offsets = np.where(click_in_session == 0, 0, click_gaps)
    within_session = _cumsum_within_groups(offsets, click_in_session == 0)
    return (session_start[click_sessions] + within_session).astype(np.int64)


def _cumsum_within_groups(values: Int64Array, group_starts: npt.NDArray[np.bool_]) -> Int64Array:
    running = np.cumsum(values)
    base = np.maximum.accumulate(np.where(group_starts, running - values, 0))
    return running - base


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
