"""The spend ledger charges every replica-second exactly once, whatever happens to the
controller; the decision log and saved state read back as written."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

import pytest

from spillover.config import parse_config
from spillover.controller.decisions import Alert, Mode, ScalePool, SetMode, SetWeights
from spillover.controller.ledger import Ledger, LedgerError, PoolUsage, SpendRow
from tests.controller import ledger_writer as writer

REPO = Path(__file__).resolve().parents[2]
USD_PER_SECOND = 0.001
PRICE = USD_PER_SECOND * 3600
"""$3.60 per replica-hour: one replica-second costs a tenth of a cent."""
EVER = (-1e10, 1e10)


def usage(
    replicas: int = 1,
    pool: str = "private",
    role: str = "private",
    price: float = PRICE,
    source: str = "amortized",
    requests: int | None = None,
    errors: int | None = None,
) -> PoolUsage:
    return PoolUsage(pool, role, replicas, price, source, requests, errors)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "controller.db") as opened:
        yield opened


def replica_seconds_by_window(ledger: Ledger) -> dict[int, float]:
    return {row.window_start: row.replica_seconds for row in ledger.windows(*EVER)}


def only_row(ledger: Ledger, by: str = "pool") -> SpendRow:
    rows = ledger.spend(*EVER, by=by)  # type: ignore[arg-type]
    assert len(rows) == 1, rows
    return rows[0]


def record_all(ledger: Ledger, ticks: Sequence[tuple[float, PoolUsage]]) -> None:
    for at, one in ticks:
        ledger.record(at, [one])


# -- charging intervals ---------------------------------------------------------------


def test_a_pools_first_record_only_sets_its_watermark(ledger: Ledger) -> None:
    ledger.record(100.0, [usage(replicas=5, requests=1000)])

    assert ledger.windows(*EVER) == []
    assert ledger.watermark("private") == 100.0
    assert ledger.watermark("burst") is None


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (61.0, 65.0, {60: 8.0}),
        (55.0, 130.0, {0: 10.0, 60: 120.0, 120: 20.0}),
        (60.0, 120.0, {60: 120.0}),
        (120.0, 125.0, {120: 10.0}),
        (59.5, 60.25, {0: 1.0, 60: 0.5}),
        (-30.0, 30.0, {-60: 60.0, 0: 60.0}),
    ],
    ids=[
        "inside-one-window",
        "across-two-boundaries",
        "exactly-one-window",
        "starts-on-a-boundary",
        "fractional-seconds",
        "across-the-epoch",
    ],
)
def test_an_interval_is_split_exactly_at_window_boundaries(
    ledger: Ledger, first: float, second: float, expected: dict[int, float]
) -> None:
    ledger.record(first, [usage(replicas=2)])
    ledger.record(second, [usage(replicas=7)])

    assert replica_seconds_by_window(ledger) == expected
    assert only_row(ledger).usd == pytest.approx(sum(expected.values()) * USD_PER_SECOND)


def test_an_interval_is_charged_at_the_count_running_during_it(ledger: Ledger) -> None:
    """Left Riemann sum: 1 replica for 10 s, then 5 for 10 s; the 0 at the end costs nothing."""
    record_all(ledger, [(0.0, usage(1)), (10.0, usage(5)), (20.0, usage(0))])

    assert only_row(ledger).replica_hours * 3600 == pytest.approx(10 * 1 + 10 * 5)


def test_a_controller_down_for_an_hour_is_charged_at_the_last_count(ledger: Ledger) -> None:
    """The replicas kept running (and billing) while nobody recorded them."""
    record_all(ledger, [(0.0, usage(3)), (3600.0, usage(0))])

    windows = replica_seconds_by_window(ledger)
    assert len(windows) == 60
    assert set(windows.values()) == {180.0}
    assert only_row(ledger).usd == pytest.approx(3 * 3600 * USD_PER_SECOND)


@pytest.mark.parametrize("replayed_at", [50.0, 49.0, 10.0], ids=["same-time", "earlier", "first"])
def test_replaying_a_recorded_tick_charges_nothing(ledger: Ledger, replayed_at: float) -> None:
    record_all(ledger, [(10.0, usage(2, requests=0)), (50.0, usage(2, requests=100))])
    before = ledger.windows(*EVER)

    ledger.record(replayed_at, [usage(9, requests=5000)])

    assert ledger.windows(*EVER) == before
    assert ledger.watermark("private") == 50.0
    ledger.record(60.0, [usage(2, requests=130)])  # the counter baseline was not moved
    assert only_row(ledger).requests == 130


def test_a_restarted_controller_continues_where_the_last_one_stopped(tmp_path: Path) -> None:
    database = tmp_path / "controller.db"
    with Ledger(database) as first:
        record_all(first, [(0.0, usage(2, requests=0)), (30.0, usage(4, requests=60))])
    with Ledger(database) as second:
        record_all(second, [(30.0, usage(4, requests=60)), (90.0, usage(1, requests=100))])
        row = only_row(second)

    assert row.replica_hours * 3600 == pytest.approx(30 * 2 + 60 * 4)
    assert row.requests == 100


def test_each_pool_is_charged_its_own_count_and_price(ledger: Ledger) -> None:
    pools = [usage(2, "private"), usage(3, "burst", role="burst", price=2 * PRICE, source="spot")]
    ledger.record(0.0, pools)
    ledger.record(10.0, pools)

    rows = {row.key: row for row in ledger.spend(*EVER, by="pool")}
    assert rows["private"].usd == pytest.approx(20 * USD_PER_SECOND)
    assert rows["burst"].usd == pytest.approx(60 * USD_PER_SECOND)
    assert rows["burst"].price_sources == ("spot",)


def test_a_price_change_mid_window_starts_a_second_row_for_that_window(ledger: Ledger) -> None:
    """Each interval is charged at the price recorded at its start; rows are never blended."""
    record_all(
        ledger,
        [
            (0.0, usage(1, source="list price")),
            (20.0, usage(1, price=2 * PRICE, source="new contract")),
            (90.0, usage(1, price=2 * PRICE, source="new contract")),
        ],
    )

    rows = [
        (row.window_start, row.price_source, row.replica_seconds, round(row.usd, 9))
        for row in ledger.windows(*EVER)
    ]
    assert rows == [
        (0, "list price", 20.0, 0.02),
        (0, "new contract", 40.0, 0.08),
        (60, "new contract", 30.0, 0.06),
    ]
    assert only_row(ledger).price_sources == ("list price", "new contract")


def test_usage_of_a_configured_pool_carries_its_price_and_source() -> None:
    config = parse_config(
        {
            "pools": [
                {
                    "name": "onprem",
                    "role": "private",
                    "max_replicas": 4,
                    "capacity_type": "owned",
                    "price": {
                        "amortized": {
                            "purchase_usd_per_gpu": 8760.0,
                            "lifetime_years": 1.0,
                            "power_kw_per_gpu": 0.0,
                            "usd_per_kwh": 0.0,
                        },
                        "source": "finance sheet",
                    },
                }
            ]
        }
    )

    made = PoolUsage.of(config.pool("onprem"), replicas=2, requests_total=7, errors_total=None)

    assert made == PoolUsage("onprem", "private", 2, 1.0, "finance sheet", 7, None)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([usage(1), usage(2)], "once per tick"),
        ([usage(-1)], "negative"),
    ],
    ids=["pool-twice", "negative-replicas"],
)
def test_a_tick_that_would_corrupt_the_sums_is_refused(
    ledger: Ledger, bad: list[PoolUsage], message: str
) -> None:
    ledger.record(0.0, [usage(1)])
    with pytest.raises(ValueError, match=message):
        ledger.record(10.0, bad)
    assert ledger.watermark("private") == 0.0


# -- requests and errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("counters", "expected"),
    [
        ([100, 150, 175], 75),
        ([100, 150, 30, 40], 50 + 30 + 10),
        ([100, None, 180], 80),
        ([None, 100, 130], 30),
        ([100, None, 20], 20),
        ([100, None, None], 0),
        ([100, 100, 100], 0),
    ],
    ids=[
        "steady",
        "gateway-restart-resets-the-counter",
        "unknown-tick-covered-by-the-next",
        "first-known-value-is-a-baseline",
        "reset-while-unknown",
        "never-known-again",
        "no-traffic",
    ],
)
def test_requests_and_errors_are_counter_deltas(
    ledger: Ledger, counters: list[int | None], expected: int
) -> None:
    for tick, value in enumerate(counters):
        ledger.record(tick * 10.0, [usage(requests=value, errors=value)])

    row = only_row(ledger)
    assert (row.requests, row.errors) == (expected, expected)


@pytest.mark.parametrize(
    ("end", "window"),
    [(119.0, 60), (120.0, 60), (121.0, 120)],
    ids=["inside", "on-a-boundary-credits-the-window-that-ended", "just-past-a-boundary"],
)
def test_requests_are_credited_to_the_window_holding_the_intervals_end(
    ledger: Ledger, end: float, window: int
) -> None:
    record_all(ledger, [(50.0, usage(1, requests=0)), (end, usage(1, requests=10))])

    credited = {row.window_start: row.requests for row in ledger.windows(*EVER)}
    assert credited[window] == 10
    assert sum(credited.values()) == 10


@pytest.mark.parametrize(
    ("requests", "expected"),
    [(0, None), (2000, 0.3 / 2)],
    ids=["no-requests", "2000-requests"],
)
def test_cost_per_thousand_requests(ledger: Ledger, requests: int, expected: float | None) -> None:
    record_all(ledger, [(0.0, usage(3, requests=0)), (100.0, usage(3, requests=requests))])

    per_1k = only_row(ledger).usd_per_1k_requests
    assert per_1k == (None if expected is None else pytest.approx(expected))


# -- spend queries --------------------------------------------------------------------


def test_spend_by_role_and_by_window(ledger: Ledger) -> None:
    pools = [
        usage(1, "private"),
        usage(1, "onprem2"),
        usage(2, "burst", role="burst", source="spot"),
    ]
    ledger.record(30.0, pools)
    ledger.record(90.0, pools)

    by_role = {row.key: row.replica_hours * 3600 for row in ledger.spend(*EVER, by="role")}
    by_window = {row.key: row.replica_hours * 3600 for row in ledger.spend(*EVER, by="window")}
    assert by_role == pytest.approx({"private": 120.0, "burst": 120.0})
    assert by_window == pytest.approx({0: 120.0, 60: 120.0})


@pytest.mark.parametrize(
    ("since", "until", "windows"),
    [(60.0, 120.0, [60]), (61.0, 119.0, [60]), (59.0, 60.0, [0]), (0.0, 180.0, [0, 60, 120])],
    ids=["one-window", "inside-one-window", "end-of-a-window", "all"],
)
def test_spend_counts_the_windows_a_range_overlaps(
    ledger: Ledger, since: float, until: float, windows: list[int]
) -> None:
    record_all(ledger, [(0.0, usage(1)), (180.0, usage(1))])

    assert [row.key for row in ledger.spend(since, until, by="window")] == windows


def test_spend_refuses_an_unknown_grouping(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="pool, window, role"):
        ledger.spend(*EVER, by="replica")  # type: ignore[arg-type]


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    "boundary", ["2026-12-01T00:00:00", "2027-01-01T00:00:00"], ids=["nov-dec", "dec-jan"]
)
def test_month_to_date_starts_at_the_utc_month_boundary(ledger: Ledger, boundary: str) -> None:
    start = _utc(boundary)
    burst = [usage(2, "burst", role="burst"), usage(5, "private")]
    for at in (start - 120, start + 60, start + 180):
        ledger.record(at, burst)

    assert ledger.month_to_date_usd(start + 180) == pytest.approx(2 * 180 * USD_PER_SECOND)
    assert ledger.month_to_date_usd(start - 1) == pytest.approx(2 * 120 * USD_PER_SECOND)
    assert ledger.month_to_date_usd(start + 180, role="private") == pytest.approx(0.9)
    assert ledger.month_to_date_usd(start + 120 + 31 * 86400) == 0.0


def test_month_to_date_counts_a_straddling_window_whole_so_caps_trip_early(
    tmp_path: Path,
) -> None:
    """A 7 s window does not divide a day: the one across the month start counts in full."""
    start = _utc("2026-12-01T00:00:00")
    with Ledger(tmp_path / "controller.db", window_seconds=7) as ledger:
        record_all(ledger, [(start - 20, usage(1, role="burst")), (start + 10, usage(0))])
        month_to_date = ledger.month_to_date_usd(start + 10)

    straddling = start - start % 7
    assert straddling < start  # the premise: the month starts inside a window
    assert month_to_date == pytest.approx((start + 10 - straddling) * USD_PER_SECOND)


# -- concurrency and crashes ----------------------------------------------------------


def test_a_reader_never_sees_half_a_tick(tmp_path: Path) -> None:
    """Reads run between the writer's statements, inside its transaction: all see before."""
    database = tmp_path / "controller.db"
    pools = [usage(1, f"pool_{n}") for n in range(20)]
    with Ledger(database) as controller, Ledger(database, window_seconds=None) as cli:
        controller.record(0.0, pools)
        controller.record(10.0, pools)
        before = cli.spend(*EVER, by="pool")
        seen_during: list[list[SpendRow]] = []
        # The trace callback runs before each statement the controller's connection executes.
        controller._file.db.set_trace_callback(
            lambda _: seen_during.append(cli.spend(*EVER, "pool"))
        )
        controller.record(20.0, pools)
        controller._file.db.set_trace_callback(None)
        after = cli.spend(*EVER, by="pool")

    assert len(seen_during) >= 3  # BEGIN, the writes, COMMIT
    assert all(rows == before for rows in seen_during)
    assert [row.replica_hours * 3600 for row in after] == pytest.approx([20.0] * 20)


def test_readers_in_other_threads_see_whole_ticks_while_the_controller_writes(
    tmp_path: Path,
) -> None:
    database = tmp_path / "controller.db"
    pools = [usage(1, "a"), usage(1, "b")]
    ticks = 300
    errors: list[BaseException] = []
    observations: list[tuple[float, float]] = []
    done = threading.Event()

    def read() -> None:
        try:
            with Ledger(database, window_seconds=None) as cli:
                while not done.is_set():
                    rows = {row.key: row.replica_hours for row in cli.spend(*EVER, "pool")}
                    observations.append((rows.get("a", 0.0), rows.get("b", 0.0)))
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    with Ledger(database) as controller:
        controller.record(0.0, pools)
        reader = threading.Thread(target=read)
        reader.start()
        try:
            for tick in range(1, ticks + 1):
                controller.record(tick * 1.0, pools)
        finally:
            done.set()
            reader.join()

    assert errors == []
    assert len(observations) > 0
    assert all(a == b for a, b in observations)


def _last_tick_before(process: subprocess.Popen[str], stop: Callable[[str], bool]) -> int:
    """Read the writer's progress until `stop(line)`; the last tick it reported committed."""
    assert process.stdout is not None
    last = -1
    for line in process.stdout:
        if stop(line.strip()):
            return last
        last = int(line)
    raise AssertionError(f"the writer ended before it was killed (exit {process.wait()})")


def _killed_writer(database: Path, pause_at: int | None, kill_after: int) -> int:
    """Run the writer in its own process group and SIGKILL it by PID, paused at statement
    `pause_at`, or running free once it reported tick `kill_after`; its last committed tick."""
    command = [sys.executable, "-m", "tests.controller.ledger_writer", str(database), "0"]
    command += ["1000000"] if pause_at is None else ["1000000", str(pause_at)]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        if pause_at is None:
            _last_tick_before(process, lambda line: int(line) == kill_after)
            seen = kill_after
        else:
            seen = _last_tick_before(process, lambda line: line == "paused")
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert process.stdout is not None
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL  # killed while running, not finished
    return seen


def _last_known_counter_tick(pool: int, end: int) -> int:
    return max(tick for tick in range(end + 1) if writer.counter_known(pool, tick))


KILLS = [("paused-mid-write", seed) for seed in range(1, 7)] + [
    ("running-free", seed) for seed in range(1, 3)
]


@pytest.mark.parametrize(("how", "seed"), KILLS, ids=[f"{how}-{seed}" for how, seed in KILLS])
def test_sigkill_at_a_random_point_then_restart_charges_everything_once(
    tmp_path: Path, how: str, seed: int
) -> None:
    rng = random.Random(seed)
    database = tmp_path / "controller.db"
    if how == "paused-mid-write":  # ~130 statements a tick: somewhere in the first 20 ticks
        seen = _killed_writer(database, pause_at=rng.randrange(0, 2600), kill_after=0)
    else:
        seen = _killed_writer(database, pause_at=None, kill_after=rng.randrange(20, 250))

    with Ledger(database, window_seconds=writer.WINDOW) as restarted:
        marks = {restarted.watermark(f"pool_{pool}") for pool in range(writer.POOLS)}
        (mark,) = marks  # one transaction per tick: every pool stopped at the same tick
        reached = -1 if mark is None else round((mark - writer.T0) / writer.DT)
        assert reached >= seen
        end = reached + 40
        # The new controller replays from some earlier tick, then carries on past the kill.
        for tick in range(rng.randrange(0, max(seen, 0) + 1), end + 1):
            restarted.record(writer.at(tick), writer.usages(tick))
        windows = restarted.windows(*EVER)

    for pool in range(writer.POOLS):
        rows = [row for row in windows if row.pool == f"pool_{pool}"]
        schedule = [writer.replicas(pool, tick) for tick in range(end)]
        counted = range(1, _last_known_counter_tick(pool, end) + 1)
        assert sum(row.replica_seconds for row in rows) == sum(schedule) * writer.DT
        assert sum(row.usd for row in rows) == pytest.approx(
            sum(schedule) * writer.DT * (0.5 + pool / 8) / 3600
        )
        assert sum(row.requests for row in rows) == sum(writer.served(pool, t) for t in counted)
        assert sum(row.errors for row in rows) == sum(writer.failed(pool, t) for t in counted)


# -- opening the file -----------------------------------------------------------------


def test_a_file_keeps_the_window_length_it_was_created_with(tmp_path: Path) -> None:
    database = tmp_path / "controller.db"
    Ledger(database, window_seconds=300).close()

    with pytest.raises(LedgerError, match="keeps 300 s ledger windows, not 60 s"):
        Ledger(database, window_seconds=60)
    with Ledger(database, window_seconds=None) as reader:
        assert reader.window_seconds == 300


def test_a_file_from_a_newer_spillover_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "controller.db"
    Ledger(database).close()
    with sqlite3.connect(database) as raw:
        raw.execute("PRAGMA user_version = 99")
    raw.close()

    with pytest.raises(LedgerError, match="newer spillover"):
        Ledger(database)


def test_the_file_is_in_wal_mode_for_concurrent_readers(ledger: Ledger) -> None:
    with sqlite3.connect(ledger.path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    raw.close()


# -- decisions and state --------------------------------------------------------------


def test_recent_decisions_are_newest_first(ledger: Ledger) -> None:
    ledger.log_decisions(
        10.0,
        [
            SetMode(Mode.BURST, "demand 120 rps > private capacity 100 rps"),
            ScalePool("burst", 2, "overflow 20 rps needs 2 replicas"),
        ],
    )
    ledger.log_decisions(
        12.0,
        [
            SetWeights((("private", 80), ("burst", 20)), "burst ready"),
            Alert("budget", "80% of the monthly cap spent"),
        ],
    )

    assert [(d.at, d.kind, d.decision, d.reason) for d in ledger.recent_decisions(3)] == [
        (12.0, "Alert", "alert budget", "80% of the monthly cap spent"),
        (12.0, "SetWeights", "route private=80% burst=20%", "burst ready"),
        (10.0, "ScalePool", "scale burst to 2", "overflow 20 rps needs 2 replicas"),
    ]
    assert len(ledger.recent_decisions()) == 4


def test_decisions_since_a_time_are_oldest_first_from_that_time_on(ledger: Ledger) -> None:
    ledger.log_decisions(10.0, [SetMode(Mode.BURST, "overflow"), ScalePool("burst", 2, "a")])
    ledger.log_decisions(12.0, [ScalePool("burst", 3, "b"), Alert("budget", "80% spent")])
    # A clock stepped back (NTP) logs an earlier time later: the log order still holds.
    ledger.log_decisions(11.5, [SetMode(Mode.SAFE, "gateway stats stale")])
    ledger.log_decisions(14.0, [SetMode(Mode.NORMAL, "back")])

    assert [(d.at, d.decision) for d in ledger.decisions_since(12.0)] == [
        (12.0, "scale burst to 3"),
        (12.0, "alert budget"),
        (14.0, "mode normal"),
    ]
    assert [d.at for d in ledger.decisions_since(11.0)] == [12.0, 12.0, 11.5, 14.0]
    assert len(ledger.decisions_since(0.0)) == 6
    assert ledger.decisions_since(14.5) == []


def test_controller_state_round_trips_and_is_replaced(tmp_path: Path) -> None:
    database = tmp_path / "controller.db"
    with Ledger(database) as controller:
        assert controller.load_controller_state() is None
        controller.save_controller_state(1.0, '{"peak": 1}', '{"mode": "normal"}')
        controller.save_controller_state(2.0, '{"peak": 2}', '{"mode": "burst"}')

    with Ledger(database) as restarted:
        state = restarted.load_controller_state()

    assert state is not None
    assert (state.at, state.policy_state, state.status) == (2.0, '{"peak": 2}', '{"mode": "burst"}')


def test_controller_state_must_be_json(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="JSON"):
        ledger.save_controller_state(1.0, "{not json", "{}")
    assert ledger.load_controller_state() is None
