"""Ask the recommender for items through Triton's HTTP or gRPC API with tritonclient."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from spillover.model.contract import (
    INPUT_HISTORY,
    INPUT_USER_ID,
    MODEL_NAME,
    OUTPUT_ITEM_IDS,
    OUTPUT_SCORES,
)
from spillover.serving.batching import pad_histories

Protocol = Literal["http", "grpc"]


@dataclass(frozen=True)
class Recommendations:
    """What one call returns: per user, item ids best first and their scores."""

    item_ids: np.ndarray
    scores: np.ndarray


def build_inputs(
    protocol: Protocol, user_ids: Sequence[int] | np.ndarray, histories: np.ndarray
) -> list:
    """tritonclient InferInputs for a batch of users and their padded histories."""
    module = triton_http if protocol == "http" else triton_grpc
    users = np.asarray(user_ids, dtype=np.int64).reshape(-1, 1)
    user_input = module.InferInput(INPUT_USER_ID, list(users.shape), "INT64")
    user_input.set_data_from_numpy(users)
    history_input = module.InferInput(INPUT_HISTORY, list(histories.shape), "INT64")
    history_input.set_data_from_numpy(histories)
    return [user_input, history_input]


def requested_outputs(protocol: Protocol) -> list:
    module = triton_http if protocol == "http" else triton_grpc
    return [module.InferRequestedOutput(name) for name in (OUTPUT_ITEM_IDS, OUTPUT_SCORES)]


class RecommenderClient:
    """A blocking client for one Triton endpoint (a replica or the gateway)."""

    def __init__(self, url: str, protocol: Protocol = "http", timeout_s: float = 10.0) -> None:
        self.protocol = protocol
        if protocol == "http":
            self._client = triton_http.InferenceServerClient(
                url, connection_timeout=timeout_s, network_timeout=timeout_s
            )
        else:
            self._client = triton_grpc.InferenceServerClient(url)
        self._timeout_s = timeout_s

    def recommend(
        self, user_ids: Sequence[int], histories: Sequence[Sequence[int]] | np.ndarray
    ) -> Recommendations:
        padded = histories if isinstance(histories, np.ndarray) else pad_histories(histories)
        options = {} if self.protocol == "http" else {"client_timeout": self._timeout_s}
        result = self._client.infer(
            MODEL_NAME,
            build_inputs(self.protocol, user_ids, padded),
            outputs=requested_outputs(self.protocol),
            **options,
        )
        return Recommendations(result.as_numpy(OUTPUT_ITEM_IDS), result.as_numpy(OUTPUT_SCORES))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RecommenderClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncRecommenderClient:
    """The asyncio twin of RecommenderClient, for load that must not block on answers."""

    def __init__(self, url: str, protocol: Protocol = "http", connections: int = 64) -> None:
        self.protocol = protocol
        if protocol == "http":
            import tritonclient.http.aio as http_aio

            self._client = http_aio.InferenceServerClient(url, conn_limit=connections)
        else:
            import tritonclient.grpc.aio as grpc_aio

            self._client = grpc_aio.InferenceServerClient(url)
        self._outputs = requested_outputs(protocol)

    async def recommend(self, user_ids: np.ndarray, histories: np.ndarray) -> Recommendations:
        result = await self._client.infer(
            MODEL_NAME, build_inputs(self.protocol, user_ids, histories), outputs=self._outputs
        )
        return Recommendations(result.as_numpy(OUTPUT_ITEM_IDS), result.as_numpy(OUTPUT_SCORES))

    async def close(self) -> None:
        await self._client.close()
