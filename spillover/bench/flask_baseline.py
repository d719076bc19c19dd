"""The seed articles' way of serving: a Flask app that runs the model once per request.

Started as its own process by the serving benchmark, so it gets a CPU of its own
like Triton does. JSON in, JSON out, no batching.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnxruntime
from flask import Flask, Response, jsonify, request
from werkzeug.serving import WSGIRequestHandler

from spillover.model.contract import INPUT_HISTORY, INPUT_USER_ID, OUTPUT_ITEM_IDS, OUTPUT_SCORES
from spillover.serving.batching import pad_histories


def create_app(model_path: Path, intra_op_threads: int = 1) -> Flask:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    session = onnxruntime.InferenceSession(
        str(model_path), options, providers=["CPUExecutionProvider"]
    )
    app = Flask(__name__)

    @app.post("/recommend")
    def recommend() -> tuple[Response, int] | Response:
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("user_id"), int):
            return jsonify(error="body must be JSON with an integer user_id"), 400
        history = body.get("history", [])
        if not isinstance(history, list) or not all(isinstance(i, int) for i in history):
            return jsonify(error="history must be a list of integer item ids"), 400
        item_ids, scores = session.run(
            [OUTPUT_ITEM_IDS, OUTPUT_SCORES],
            {
                INPUT_USER_ID: np.array([[body["user_id"]]], dtype=np.int64),
                INPUT_HISTORY: pad_histories([history]),
            },
        )
        return jsonify(item_ids=item_ids[0].tolist(), scores=scores[0].tolist())

    @app.get("/health")
    def health() -> str:
        return "ok"

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--intra-op-threads", type=int, default=1)
    args = parser.parse_args()
    # Flask's threaded development server, as the seed articles run it; loopback only.
    # HTTP/1.1 keeps connections alive, so the baseline is not slowed by reconnects.
    WSGIRequestHandler.protocol_version = "HTTP/1.1"
    create_app(args.model, args.intra_op_threads).run("127.0.0.1", args.port, threaded=True)


if __name__ == "__main__":
    main()
