"""A paced load through the local gateway that counts every failed request."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from spillover.local.stack import LocalStack
from spillover.serving.client import RecommenderClient


@dataclass
class PacedLoad:
    """A steady `rps` of single requests over HTTP and gRPC, counting outcomes."""

    stack: LocalStack
    rps: float = 20.0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> PacedLoad:
        protocols: tuple[Literal["http", "grpc"], ...] = ("http", "grpc")
        for protocol in protocols:
            thread = threading.Thread(target=self._loop, args=(protocol,), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _loop(self, protocol: Literal["http", "grpc"]) -> None:
        interval = 2 / self.rps  # two protocols share the rate
        endpoint = self.stack.gateway_endpoints[protocol]
        with RecommenderClient(endpoint, protocol) as client:
            next_at = time.monotonic()
            user = 0
            while not self.stop.is_set():
                user = (user + 1) % 400
                try:
                    client.recommend([user], [[user + 1]])
                    with self.lock:
                        self.ok += 1
                except Exception as error:  # counted: the test asserts there are none
                    self.failures.append(f"{protocol}: {error}")
                next_at += interval
                self.stop.wait(max(next_at - time.monotonic(), 0.0))

    def wait_for(self, requests: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.ok < requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.ok >= requests, f"load stalled at {self.ok} ok, failures {self.failures}"

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
