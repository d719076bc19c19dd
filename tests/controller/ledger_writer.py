"""A controller stand-in that records ticks on a fake clock until it is killed.

`python -m tests.controller.ledger_writer DB FIRST_TICK LAST_TICK [PAUSE_AT]` records
ticks FIRST_TICK..LAST_TICK and prints each tick number once its record() returned, so a
test knows which ticks were certainly committed. With PAUSE_AT it stops dead before the
PAUSE_AT-th SQL statement of the run (most of them run inside a record() transaction),
prints "paused" and waits for the test's SIGKILL: a kill at a chosen point mid-write,
not one that merely follows the test's reading of the output.
The schedule is a pure function of (pool, tick): the test recomputes the exact spend.
"""

from __future__ import annotations

import functools
import itertools
import signal
import sys
from collections.abc import Callable

from spillover.controller.ledger import Ledger, PoolUsage

T0 = 1_800_000_000.25
"""Not on a window boundary, and a multiple of 1/4 so every time below is exact in binary."""
DT = 0.75
"""Tick length: ticks straddle window boundaries often."""
WINDOW = 10
POOLS = 40
"""Enough pools that most of the writer's time is spent inside a record() transaction."""
RESET_EVERY = 97
"""The gateway restarts (counters drop to zero) on these ticks."""


def at(tick: int) -> float:
    return T0 + tick * DT


def replicas(pool: int, tick: int) -> int:
    return (tick // (5 + pool % 7) + pool) % 4


def served(pool: int, tick: int) -> int:
    """Requests served during (tick - 1, tick]."""
    return (tick * 31 + pool * 7) % 50 + 1


def failed(pool: int, tick: int) -> int:
    return (tick + pool) % 3


def counter_known(pool: int, tick: int) -> bool:
    """Some ticks miss the gateway's counters, never around a reset (that would lose data)."""
    near_reset = tick % RESET_EVERY in (0, RESET_EVERY - 1)
    return near_reset or (tick + pool) % 13 != 0


@functools.cache
def counter(increment: Callable[[int, int], int], pool: int, tick: int, start: int) -> int:
    """Cumulative counter at `tick`: from `start` at tick 0, from 0 again at each reset.

    Cached and recursive back to the last reset only, so each tick costs one addition.
    """
    if tick == 0:
        return start
    before = 0 if tick % RESET_EVERY == 0 else counter(increment, pool, tick - 1, start)
    return before + increment(pool, tick)


def usages(tick: int) -> list[PoolUsage]:
    return [
        PoolUsage(
            pool=f"pool_{pool}",
            role="private" if pool % 2 == 0 else "burst",
            replicas=replicas(pool, tick),
            usd_per_replica_hour=0.5 + pool / 8,
            price_source=f"price of pool {pool}",
            requests_total=counter(served, pool, tick, 1000) if counter_known(pool, tick) else None,
            errors_total=counter(failed, pool, tick, 20) if counter_known(pool, tick) else None,
        )
        for pool in range(POOLS)
    ]


def pause_before_statement(ledger: Ledger, number: int) -> None:
    """Freeze the process before its `number`-th statement (0 = the first) until killed."""
    statements = itertools.count()

    def maybe_pause(_: str) -> None:
        if next(statements) == number:
            print("paused", flush=True)
            while True:
                signal.pause()

    ledger._file.db.set_trace_callback(maybe_pause)


def main(database: str, first: int, last: int, pause_at: int | None) -> None:
    with Ledger(database, window_seconds=WINDOW) as ledger:
        if pause_at is not None:
            pause_before_statement(ledger, pause_at)
        for tick in range(first, last + 1):
            ledger.record(at(tick), usages(tick))
            print(tick, flush=True)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(
        arguments[0],
        int(arguments[1]),
        int(arguments[2]),
        int(arguments[3]) if len(arguments) > 3 else None,
    )
