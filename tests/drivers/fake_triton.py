"""A stand-in for one Triton replica, for gateway-level tests only.

It speaks just enough of Triton's surface for HAProxy to route to it: KServe v2
readiness on HTTP, an HTTP inference route, and a gRPC (HTTP/2 cleartext) unary
method on its own port. Every answer carries the replica's name so a test can
count where the gateway sent each request. Real Triton runs in the end-to-end
tests; starting it costs seconds per replica, this costs a fraction of one.

It binds port 0 (so parallel tests never collide) and prints one JSON line,
``{"http_port": ..., "grpc_port": ...}``, once both ports accept connections.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

READY_PATH = "/v2/health/ready"
GRPC_INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"
"""Triton's gRPC method path; the payload here is raw bytes, not protobuf."""


def make_http_handler(
    name: str, health_status: int, delay_s: float, infer_status: int = 200
) -> type:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 keep-alive, as Triton does: HAProxy reuses server connections.
        protocol_version = "HTTP/1.1"
        # Buffer the reply so headers and body leave in one write, as Triton's small
        # replies do: a kill then loses a whole reply or none of it, never half.
        wbufsize = 65536
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            status = health_status if self.path == READY_PATH else 404
            self._reply(status, b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(length)
            if not self.path.startswith("/v2/models/"):
                self._reply(404, b"")
                return
            time.sleep(delay_s)
            self._reply(infer_status, json.dumps({"server": name}).encode())

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Silent: hundreds of requests per test would drown the useful output."""

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """HAProxy resets health-check connections once it has the status; that is normal."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def start_grpc(name: str, delay_s: float) -> tuple[grpc.Server, int]:
    def model_infer(request: bytes, context: grpc.ServicerContext) -> bytes:
        time.sleep(delay_s)
        return name.encode()

    service, method = GRPC_INFER_METHOD.strip("/").split("/")
    handler = grpc.method_handlers_generic_handler(
        service, {method: grpc.unary_unary_rpc_method_handler(model_infer)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--health-status", type=int, default=200, help="readiness answer")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per inference")
    parser.add_argument(
        "--infer-status", type=int, default=200, help="HTTP status of every inference answer"
    )
    args = parser.parse_args()

    http_server = QuietServer(
        ("127.0.0.1", 0),
        make_http_handler(args.name, args.health_status, args.delay, args.infer_status),
    )
    grpc_server, grpc_port = start_grpc(args.name, args.delay)
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    print(json.dumps({"http_port": http_server.server_address[1], "grpc_port": grpc_port}))
    sys.stdout.flush()
    grpc_server.wait_for_termination()


if __name__ == "__main__":
    main()
