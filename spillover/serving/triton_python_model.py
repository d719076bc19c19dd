"""Triton Python-backend adapter that serves the recommender's ONNX file locally.

Copied into the local model repository as `model.py`. It stays thin: Triton's
dynamic batcher hands it several requests, they run as one ONNX Runtime call,
and each request gets its own response; a failure becomes a per-request error
instead of taking the replica down. With SPILLOVER_CAPACITY_RPS set, each batch is held
for its service time at that capacity (see service_time.py), so the replica saturates
like the GPU replica it stands for.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import onnxruntime
import triton_python_backend_utils as pb_utils  # provided by the Python backend stub

from spillover.model.contract import (
    INPUT_HISTORY,
    INPUT_USER_ID,
    OUTPUT_ITEM_IDS,
    OUTPUT_SCORES,
)
from spillover.serving.batching import merge_requests, split_outputs
from spillover.serving.service_time import capacity_from_environment, remaining_seconds


def _parameters(model_config: dict) -> dict[str, str]:
    return {key: value["string_value"] for key, value in model_config.get("parameters", {}).items()}


def _instances(model_config: dict) -> int:
    return sum(int(group.get("count", 1)) for group in model_config.get("instance_group", [])) or 1


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        model_config = json.loads(args["model_config"])
        parameters = _parameters(model_config)
        # A bad value fails the model load, naming the variable, rather than serving uncapped.
        self.capacity_rps = capacity_from_environment(os.environ)
        self.instances = _instances(model_config)
        options = onnxruntime.SessionOptions()
        # One replica stands for one GPU; keep it to its share of the CPU.
        options.intra_op_num_threads = int(parameters.get("intra_op_threads", "1"))
        options.inter_op_num_threads = 1
        model_path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        self.session = onnxruntime.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )

    def execute(self, requests: list) -> list:
        started = time.perf_counter()
        responses = self._infer(requests)
        rows = sum(self._rows(request) for request in requests)
        pause = remaining_seconds(
            rows, time.perf_counter() - started, self.capacity_rps, self.instances
        )
        if pause > 0:
            time.sleep(pause)
        return responses

    def _infer(self, requests: list) -> list:
        try:
            users = [self._input(request, INPUT_USER_ID) for request in requests]
            histories = [self._input(request, INPUT_HISTORY) for request in requests]
            user_batch, history_batch, sizes = merge_requests(users, histories)
            item_ids, scores = self.session.run(
                [OUTPUT_ITEM_IDS, OUTPUT_SCORES],
                {INPUT_USER_ID: user_batch, INPUT_HISTORY: history_batch},
            )
        except Exception as error:  # every request gets the error; the replica stays up
            message = f"recommender failed: {type(error).__name__}: {error}"
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(message))] * len(requests)
        return [
            pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor(OUTPUT_ITEM_IDS, ids),
                    pb_utils.Tensor(OUTPUT_SCORES, score),
                ]
            )
            for ids, score in zip(
                split_outputs(item_ids, sizes), split_outputs(scores, sizes), strict=True
            )
        ]

    @staticmethod
    def _rows(request) -> int:
        tensor = pb_utils.get_input_tensor_by_name(request, INPUT_USER_ID)
        return 0 if tensor is None else len(tensor.as_numpy())

    @staticmethod
    def _input(request, name: str):
        return pb_utils.get_input_tensor_by_name(request, name).as_numpy()
