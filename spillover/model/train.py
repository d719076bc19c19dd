"""Train the two-tower recommender with numpy alone.

Every click in the log is one example: predict the clicked item from the user id
and the items that user clicked just before (the last HISTORY_WINDOW of them).
The loss is a softmax over in-batch negatives with the logQ correction: other
examples' targets serve as negatives, and since they turn up in proportion to
their popularity, each logit is lowered by log(item frequency) during training
only. The served score ``dot(user, item) + bias`` then estimates the full softmax,
and the item bias ends up holding (log) popularity.

To make the out-of-vocabulary user row meaningful, a share of the examples is
trained with the user id dropped to that row, so unknown users get
recommendations from their history (or from popularity when it is empty).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spillover.model.contract import HISTORY_WINDOW
from spillover.model.reference import Float32Array, Int64Array, ModelWeights
from spillover.model.synth import InteractionLog

MASKED_LOGIT = np.float32(-1e9)
"""Logit given to in-batch duplicates of the positive, so they are not counted as negatives."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the numpy training loop."""

    dim: int = 32
    """Embedding width of both towers."""

    epochs: int = 3
    """Passes over the training clicks."""

    learning_rate: float = 0.1
    """Adagrad step size."""

    batch_size: int = 1024
    """Examples per minibatch; also the number of in-batch negatives."""

    oov_rate: float = 0.15
    """Share of examples whose user id is replaced by the out-of-vocabulary row."""

    init_scale: float = 0.05
    """Standard deviation of the initial embeddings."""

    l2: float = 1e-6
    """L2 penalty on the embedding rows a batch touches."""

    seed: int = 0
    """Seed for initialisation, shuffling and OOV dropping; same seed, same weights."""

    def __post_init__(self) -> None:
        for message, valid in (
            ("dim must be at least 1", self.dim >= 1),
            ("epochs must be at least 1", self.epochs >= 1),
            ("batch_size must be at least 2 (in-batch negatives)", self.batch_size >= 2),
            ("learning_rate must be > 0", self.learning_rate > 0),
            ("init_scale must be > 0", self.init_scale > 0),
            ("l2 must be >= 0", self.l2 >= 0),
            ("oov_rate must be in [0, 1]", 0 <= self.oov_rate <= 1),
        ):
            if not valid:
                raise ValueError(message)


@dataclass(frozen=True)
class TrainResult:
    """The trained weights and how the loss went."""

    weights: ModelWeights
    """Parameters ready for the reference forward pass and the ONNX export."""

    epoch_losses: list[float] = field(default_factory=list)
    """Mean sampled-softmax loss per epoch (should fall)."""


@dataclass(frozen=True)
class _Examples:
    """Every click as a (user, history, target) example, histories read from the log lazily."""

    users: Int64Array
    items: Int64Array
    first_row_of_user: Int64Array
    log_q: Float32Array

    def histories(self, rows: Int64Array) -> tuple[Int64Array, Int64Array]:
        """Items each row's user clicked just before it (at most HISTORY_WINDOW), flattened.

        Returns the concatenated item ids and how many of them belong to each row.
        """
        per_row = np.minimum(rows - self.first_row_of_user[rows], HISTORY_WINDOW)
        offsets = np.arange(HISTORY_WINDOW)[None, :]
        positions = rows[:, None] - per_row[:, None] + offsets
        return self.items[positions[offsets < per_row[:, None]]], per_row


class _SparseAdagrad:
    """Adagrad that only touches the rows a batch used (embedding tables are mostly idle)."""

    def __init__(self, table: Float32Array, learning_rate: float) -> None:
        self.table = table
        self.learning_rate = np.float32(learning_rate)
        self.accumulator = np.full_like(table, 1e-8)

    def step(self, rows: Int64Array, grads: Float32Array, l2: float) -> None:
        if rows.size == 0:  # e.g. a batch of first clicks has no history at all
            return
        rows, grads = _sum_by_row(rows, grads)
        grads = grads + np.float32(l2) * self.table[rows]
        self.accumulator[rows] += grads * grads
        self.table[rows] -= self.learning_rate * grads / np.sqrt(self.accumulator[rows])


def train(log: InteractionLog, config: TrainConfig) -> TrainResult:
    """Fit the two towers on every click of ``log`` (rows grouped by user, in time order)."""
    rng = np.random.default_rng(config.seed)
    weights = _initial_weights(log.n_users, log.n_items, config, rng)
    examples = _examples_from_log(log)
    optimizers = {
        name: _SparseAdagrad(getattr(weights, name), config.learning_rate)
        for name in ("user_embeddings", "history_embeddings", "item_embeddings", "item_bias")
    }
    losses = []
    for _ in range(config.epochs):
        order = rng.permutation(len(examples.items))
        batch_losses = [
            _train_step(weights, optimizers, examples, batch, config, rng)
            for batch in np.array_split(order, max(1, len(order) // config.batch_size))
        ]
        losses.append(float(np.mean(batch_losses)))
    return TrainResult(weights=weights, epoch_losses=losses)


def _initial_weights(
    n_users: int, n_items: int, config: TrainConfig, rng: np.random.Generator
) -> ModelWeights:
    def table(rows: int) -> Float32Array:
        return (rng.standard_normal((rows, config.dim)) * config.init_scale).astype(np.float32)

    return ModelWeights(
        user_embeddings=table(n_users + 1),
        history_embeddings=table(n_items),
        item_embeddings=table(n_items),
        item_bias=np.zeros(n_items, dtype=np.float32),
    )


def _examples_from_log(log: InteractionLog) -> _Examples:
    rows = np.arange(len(log), dtype=np.int64)
    starts_user = np.r_[True, log.user_ids[1:] != log.user_ids[:-1]]
    first_row_of_user = np.maximum.accumulate(np.where(starts_user, rows, 0))
    frequency = np.bincount(log.item_ids, minlength=log.n_items) / max(len(log), 1)
    # Items never clicked are never sampled as negatives; their correction is irrelevant.
    log_q = np.log(np.maximum(frequency, 1e-12)).astype(np.float32)
    return _Examples(log.user_ids, log.item_ids, first_row_of_user, log_q)


def _train_step(
    weights: ModelWeights,
    optimizers: dict[str, _SparseAdagrad],
    examples: _Examples,
    batch: Int64Array,
    config: TrainConfig,
    rng: np.random.Generator,
) -> float:
    user_rows = np.where(
        rng.random(batch.size) < config.oov_rate, weights.oov_user_row, examples.users[batch]
    )
    history_items, per_row = examples.histories(batch)
    history_sum = _sum_rows_of_ragged(weights.history_embeddings[history_items], per_row)
    count = np.maximum(per_row, 1).astype(np.float32)[:, None]
    user_vectors = weights.user_embeddings[user_rows] + history_sum / count

    targets = examples.items[batch]
    logits = _corrected_in_batch_logits(weights, examples, user_vectors, targets)
    loss, grad_logits = _softmax_cross_entropy_on_diagonal(logits)

    target_vectors = weights.item_embeddings[targets]
    grad_user = grad_logits @ target_vectors
    optimizers["item_embeddings"].step(targets, grad_logits.T @ user_vectors, config.l2)
    optimizers["item_bias"].step(targets, grad_logits.sum(axis=0), 0.0)
    optimizers["user_embeddings"].step(user_rows, grad_user, config.l2)
    grad_history = np.repeat(grad_user / count, per_row, axis=0)
    optimizers["history_embeddings"].step(history_items, grad_history, config.l2)
    return loss


def _corrected_in_batch_logits(
    weights: ModelWeights, examples: _Examples, user_vectors: Float32Array, targets: Int64Array
) -> Float32Array:
    logits = user_vectors @ weights.item_embeddings[targets].T
    logits += (weights.item_bias[targets] - examples.log_q[targets])[None, :]
    duplicate = targets[:, None] == targets[None, :]
    np.fill_diagonal(duplicate, False)
    np.copyto(logits, MASKED_LOGIT, where=duplicate)
    return logits


def _softmax_cross_entropy_on_diagonal(logits: Float32Array) -> tuple[float, Float32Array]:
    """Mean loss with row i's positive in column i, and d(loss)/d(logits)."""
    logits -= logits.max(axis=1, keepdims=True)
    diagonal = np.arange(logits.shape[0])
    positive = logits[diagonal, diagonal].copy()
    probabilities = np.exp(logits, out=logits)
    total = probabilities.sum(axis=1, keepdims=True)
    loss = float(np.mean(np.log(total[:, 0]) - positive))
    # d(loss)/d(logit) = softmax - one-hot, averaged over the batch.
    probabilities *= np.float32(1.0 / logits.shape[0]) / total
    probabilities[diagonal, diagonal] -= np.float32(1.0 / logits.shape[0])
    return loss, probabilities


def _sum_rows_of_ragged(values: Float32Array, per_row: Int64Array) -> Float32Array:
    """Sum consecutive runs of ``values`` rows, ``per_row`` rows per run (runs may be empty)."""
    sums = np.zeros((per_row.size, values.shape[1]), dtype=values.dtype)
    non_empty = per_row > 0
    if values.shape[0]:
        starts = (np.cumsum(per_row) - per_row)[non_empty]
        sums[non_empty] = np.add.reduceat(values, starts, axis=0)
    return sums


def _sum_by_row(rows: Int64Array, values: Float32Array) -> tuple[Int64Array, Float32Array]:
    """Add up the gradient rows that hit the same table row (deterministic, no np.add.at)."""
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    starts = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
    return sorted_rows[starts], np.add.reduceat(values[order], starts, axis=0)
