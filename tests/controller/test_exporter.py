"""The exporter's metrics as Prometheus reads them: counters that `rate()` turns back
into the observed rates, a tick-duration histogram, targets in base units."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from spillover.controller.decisions import Mode, SetMode
from spillover.controller.exporter import Exporter
from spillover.controller.policy import PolicyState
from spillover.controller.snapshot import PoolObservation, ReplicaObservation, Snapshot
from tests.controller.simulated import START, scenario_config


def scrape(exporter: Exporter) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by name and labels, parsed from the text format a scrape gets."""
    text = generate_latest(exporter.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def snapshot(at: float, demand: float | None, served: float | None, failed: float) -> Snapshot:
    return Snapshot(
        at=at,
        demand_rps=demand,
        pools=(PoolObservation("private", served_rps=served, failed_rps=failed),),
    )


def tick(exporter: Exporter, observed: Snapshot, duration_s: float = 0.02) -> None:
    exporter.update(observed, PolicyState(), [], duration_s)


def test_request_counters_integrate_the_observed_rates_between_ticks():
    exporter = Exporter(scenario_config())
    tick(exporter, snapshot(START, 100, 90, 10))  # the first tick has no interval behind it
    tick(exporter, snapshot(START + 5, 100, 90, 10))
    tick(exporter, snapshot(START + 7, 50, 40, 0))
    samples = scrape(exporter)
    assert samples[("spillover_requests_arrived_total", ())] == 5 * 100 + 2 * 50
    private = (("outcome", "served"), ("pool", "private"))
    assert samples[("spillover_requests_total", private)] == 5 * 90 + 2 * 40
    failed = (("outcome", "failed"), ("pool", "private"))
    assert samples[("spillover_requests_total", failed)] == 5 * 10


def test_a_rate_the_observer_could_not_read_adds_nothing_and_the_counter_never_falls():
    exporter = Exporter(scenario_config())
    tick(exporter, snapshot(START, 100, 100, 0))
    tick(exporter, snapshot(START + 5, 100, 100, 0))
    before = scrape(exporter)[("spillover_requests_arrived_total", ())]
    tick(exporter, snapshot(START + 10, None, None, 0))  # metrics blind: stale rates
    after = scrape(exporter)[("spillover_requests_arrived_total", ())]
    assert after == before == 500


def test_tick_durations_fill_a_histogram_in_seconds():
    exporter = Exporter(scenario_config())
    for duration_s in (0.004, 0.03, 0.3, 20.0):
        tick(exporter, snapshot(START, 0, 0, 0), duration_s)
    samples = scrape(exporter)

    def bucket(le: str) -> float:
        return samples[("spillover_tick_duration_seconds_bucket", (("le", le),))]

    assert bucket("0.005") == 1
    assert bucket("0.05") == 2
    assert bucket("0.5") == 3
    assert bucket("10.0") == 3
    assert bucket("+Inf") == 4
    assert samples[("spillover_tick_duration_seconds_count", ())] == 4
    assert abs(samples[("spillover_tick_duration_seconds_sum", ())] - 20.334) < 1e-9


def test_decisions_that_changed_something_are_counted_by_kind():
    exporter = Exporter(scenario_config())
    said = [SetMode(Mode.BURST, "demand above private capacity")]
    exporter.update(snapshot(START, 0, 0, 0), PolicyState(), [], 0.01, said)
    exporter.update(snapshot(START + 5, 0, 0, 0), PolicyState(), [], 0.01, said)
    assert scrape(exporter)[("spillover_decisions_total", (("kind", "SetMode"),))] == 2


def test_slo_and_budget_targets_are_exported_in_base_units():
    config = scenario_config(budget={"monthly_cap_usd": 500.0, "max_burst_usd_per_hour": 4.0})
    exporter = Exporter(config)
    samples = scrape(exporter)
    assert samples[("spillover_slo_queue_time_seconds", ())] == config.slo.queue_time_ms / 1000
    assert samples[("spillover_slo_p99_latency_seconds", ())] == config.slo.p99_latency_ms / 1000
    assert samples[("spillover_budget_monthly_cap_usd", ())] == 500.0
    assert samples[("spillover_budget_hourly_cap_usd", ())] == 4.0


def test_the_oldest_starting_replica_s_age_is_exported_beside_the_cold_start():
    exporter = Exporter(scenario_config())
    replicas = (
        ReplicaObservation("spot-0", "starting", START - 30),
        ReplicaObservation("spot-1", "starting", START - 5),
        ReplicaObservation("spot-2", "ready", START - 300),
    )
    observed = Snapshot(at=START, demand_rps=0, pools=(PoolObservation("spot", replicas),))
    exporter.update(observed, PolicyState(), [], 0.01)
    samples = scrape(exporter)
    assert samples[("spillover_pool_oldest_starting_seconds", (("pool", "spot"),))] == 30
    assert samples[("spillover_pool_oldest_starting_seconds", (("pool", "private"),))] == 0
    assert samples[("spillover_pool_cold_start_seconds", (("pool", "spot"),))] == 20
