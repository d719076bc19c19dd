"""Traffic shares through the gateway actuator: the gateway's own errors decide whether
the actuators retry within the tick (TemporaryError) or record the failure at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from spillover.controller.actuators import Actuators, GatewayActuator
from spillover.controller.decisions import SetWeights
from spillover.drivers.haproxy import BACKENDS, RuntimeApi, ServerStats
from spillover.settings import ActuationSettings
from tests.drivers.gateway_harness import stats_row


def _route(**shares: int) -> SetWeights:
    return SetWeights(tuple(shares.items()), reason="test")


class _OneServer(RuntimeApi):
    """A gateway whose stats list one ready private server, and which answers every other
    command with `answer` (None: no command may be sent)."""

    def __init__(self, address: Path, answer: str | None) -> None:
        super().__init__(address)
        self.answer = answer

    def server_stats(self) -> list[ServerStats]:
        return [stats_row(backend, "private-0") for backend in BACKENDS]

    def execute(self, command: str) -> str:
        assert self.answer is not None, f"sent {command!r}"
        return self.answer


def _actuators(api: RuntimeApi, waits: list[float]) -> Actuators:
    return Actuators({}, GatewayActuator(api), ActuationSettings(attempts=3), sleep=waits.append)


def test_an_unreachable_gateway_is_retried_within_the_tick_then_recorded(tmp_path: Path):
    waits: list[float] = []
    actuators = _actuators(RuntimeApi(tmp_path / "haproxy.sock"), waits)
    failures = actuators.apply([_route(private=100)])
    assert waits == [0.5, 0.5], "two retries, half a second apart"
    assert [failure.error for failure in failures] == [
        f"no gateway answers on {tmp_path / 'haproxy.sock'} "
        "([Errno 2] No such file or directory); is it running?"
    ]


@pytest.mark.parametrize(
    ("shares", "answer", "error"),
    [
        pytest.param(
            {"private": 50, "cloud": 50},
            None,
            "unknown pool(s) cloud; the gateway's pools are private",
            id="shares-it-cannot-spread",
        ),
        pytest.param(
            {"private": 100},
            "No such server.\n",
            "haproxy refused 'set weight triton_http/private-0 256': No such server.",
            id="a-command-it-refuses",
        ),
    ],
)
def test_what_the_gateway_refuses_fails_at_once(
    tmp_path: Path, shares: dict[str, int], answer: str | None, error: str
):
    waits: list[float] = []
    actuators = _actuators(_OneServer(tmp_path / "haproxy.sock", answer), waits)
    failures = actuators.apply([_route(**shares)])
    assert waits == [], "retried what no retry can fix"
    assert [failure.error for failure in failures] == [error]
