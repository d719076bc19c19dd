"""Every drill's control run: the same drill and shape with the mechanism it tests
turned off, judged on hand-made recordings. PASS only when the treatment passes and
the control fails the checks it must; a control that passes them is INCONCLUSIVE."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from loadtest.drills import DRILLS, burst, failover, metrics_outage
from loadtest.drills import cli as drill_cli
from loadtest.drills.cli import register, summary
from loadtest.drills.drill import NO_CONTROL
from loadtest.drills.harness import local_layout
from loadtest.drills.outcome import drill_report
from loadtest.drills.settings import load_drill_settings
from loadtest.report import (
    CONTROL_TIMELINE_PNG,
    EXIT_CODES,
    REPORT_JSON,
    REPORT_MD,
    Check,
    Report,
    worst,
)
from loadtest.report_files import read_report, write_report
from spillover.config import ConfigError
from tests.loadtest import drill_samples as samples
from tests.loadtest import (
    test_drill_burst,
    test_drill_failover,
    test_drill_metrics_outage,
    test_drill_spot_interruption,
)

PACKAGED = load_drill_settings()
SHORT = load_drill_settings(samples.SHORT)


def _config(setup: Any) -> dict[str, Any]:
    return setup.config.model_dump(mode="json")


@pytest.mark.parametrize("settings", [PACKAGED, SHORT], ids=["packaged", "short"])
@pytest.mark.parametrize(
    ("kind", "switched"),
    [
        ("failover", lambda config: config["failover"].pop("reserve_share")),
        ("burst", lambda config: config["budget"].pop("max_burst_usd_per_hour")),
        ("spot-interruption", lambda config: None),
        ("metrics-outage", lambda config: config["policy"].pop("safe_mode")),
    ],
)
def test_each_control_turns_one_mechanism_off_on_the_same_shape(settings, kind, switched):
    treatment, control = DRILLS[kind].setups(settings, control=True)
    assert control is not None
    # The drill's shape and thresholds are the treatment's; only its own switch differs.
    own = {"control", "drain_on_notice"}
    assert control.drill.model_dump(exclude=own) == treatment.drill.model_dump(exclude=own)
    # The controller config is the treatment's but for the one key the control sets.
    configs = _config(treatment), _config(control)
    for config in configs:
        switched(config)
    assert configs[0] == configs[1]


def test_drill_replicas_are_held_to_their_pools_capacity() -> None:
    """Else private serves any spike as fast as the CPU goes, and burst's control, with
    private alone, keeps the SLO (it did: 99.9% of 480 rps on a 300 rps replica)."""
    config = samples.control_setup("burst").config
    layout = local_layout(config, port_base=9000)
    assert {pool.name: pool.capacity_rps for pool in layout.pools} == {
        "private": 300,
        "burst": 200,
    }


def test_what_each_control_turns_off() -> None:
    setups = {kind: drill.setups(SHORT, control=True) for kind, drill in DRILLS.items()}
    treated, control = setups["failover"]
    # The packaged reserve, as the failover drill runs it; none in the control.
    assert treated.config.failover.reserve_share == 1.0
    assert control.config.failover.reserve_share == 0
    treated, control = setups["burst"]
    cap = control.config.budget.max_burst_usd_per_hour
    assert cap is not None and cap < control.pool("burst").price.usd_per_replica_hour
    treated, control = setups["spot-interruption"]
    assert treated.drill.drain_on_notice and not control.drill.drain_on_notice
    treated, control = setups["metrics-outage"]
    assert treated.config.policy.safe_mode and not control.config.policy.safe_mode


def test_a_drill_without_a_control_section_is_refused_unless_told_to_skip_it(tmp_path):
    path = tmp_path / "drills.yaml"
    path.write_text("burst:\n  warmup_s: 5\n")
    settings = load_drill_settings(path)
    with pytest.raises(ConfigError, match="burst has no control section.*--no-control"):
        DRILLS["burst"].setups(settings, control=True)
    _, control = DRILLS["burst"].setups(settings, control=False)
    assert control is None


def test_a_bad_control_key_is_named(tmp_path):
    path = tmp_path / "drills.yaml"
    path.write_text("spot-interruption:\n  control: {drain_on_notic: false}\n")
    with pytest.raises(ConfigError, match="spot-interruption.control.drain_on_notic: unknown key"):
        load_drill_settings(path)


def test_every_check_a_control_must_fail_is_one_its_drill_makes() -> None:
    """A renamed check would make every control inconclusive: each name is real."""
    made = {
        "burst": test_drill_burst.assess(),
        "failover": test_drill_failover.assess(),
        "spot-interruption": test_drill_spot_interruption.assess(),
        "metrics-outage": test_drill_metrics_outage.assess(),
    }
    for kind, outcome in made.items():
        names = {check.name for check in outcome.checks}
        assert DRILLS[kind].must_fail and set(DRILLS[kind].must_fail) <= names, kind


# --- verdicts on a treatment and its control ---------------------------------------------


def run_report(checks: list[Check], title: str = "Drill") -> Report:
    return Report(kind="burst", title=title, started_at=1_000_000.0, slo_p99_ms=100, checks=checks)


def with_control(control_checks: list[Check], treatment_passes: bool = True) -> Report:
    treatment = run_report(
        [
            Check("failed requests", 0 if treatment_passes else 3, 0, "<=", "requests"),
            Check("within SLO", 100, 99, ">=", "%"),
        ]
    )
    return DRILLS["burst"].with_control(treatment, run_report(control_checks, "Control"))


FAILING_CONTROL = [
    Check("failed requests", 0, 0, "<=", "requests"),
    Check("within SLO", 61.5, 99, ">=", "%"),
]


def _must_fail_within_slo(report: Report) -> Report:
    report.control_must_fail = ["within SLO"]
    return report


def test_pass_when_the_treatment_passes_and_the_control_fails_what_it_must() -> None:
    report = _must_fail_within_slo(with_control(FAILING_CONTROL))
    assert (report.verdict, report.verdict_text) == ("pass", "PASS")
    assert report.control_misses == []
    assert EXIT_CODES[report.verdict] == 0


@pytest.mark.parametrize(
    ("control_checks", "miss"),
    [
        pytest.param(
            [Check("within SLO", 99.8, 99, ">=", "%")],
            "within SLO: the control passed it too (99.8 %, goal >= 99)",
            id="control-passes",
        ),
        pytest.param(
            [Check("within SLO", None, 99, ">=", "%")],
            "within SLO: not measured in the control",
            id="control-unmeasured",
        ),
        pytest.param(
            [Check("actions done before the run ended", 0, 2, ">=", "actions")],
            "within SLO: not judged in the control (cut short?)",
            id="control-cut-short",
        ),
    ],
)
def test_a_control_that_does_not_fail_what_it_must_is_inconclusive(control_checks, miss):
    report = _must_fail_within_slo(with_control(control_checks))
    assert (report.verdict, report.verdict_text) == ("inconclusive", "INCONCLUSIVE")
    assert report.control_misses == [miss]
    assert EXIT_CODES[report.verdict] == 4
    assert f"control did not fail: {miss}" in summary(report)


def test_a_failing_treatment_fails_whatever_its_control_did() -> None:
    report = _must_fail_within_slo(with_control(FAILING_CONTROL, treatment_passes=False))
    assert report.verdict == "fail"
    report = _must_fail_within_slo(with_control([Check("within SLO", 100, 99, ">=", "%")], False))
    assert report.verdict == "fail"


def test_several_drills_together_take_the_worst_with_inconclusive_below_fail() -> None:
    assert worst(["pass", "inconclusive"]) == "inconclusive"
    assert worst(["inconclusive", "fail"]) == "fail"
    assert worst(["partial", "inconclusive", "pass"]) == "inconclusive"


# --- each drill's control on hand-made recordings ------------------------------------------


def _drill_pair(kind: str, treatment: Any, control: Any, observed: Any) -> Report:
    """Both runs' reports, as `Drill.run` joins them (the same recording for both, the
    control's outcome hand-made)."""
    drill = DRILLS[kind]
    setup = samples.setup(kind)
    control_setup = samples.control_setup(kind)
    return drill.with_control(
        drill_report(kind, treatment, observed, setup),
        drill_report(kind, control, observed, control_setup),
    )


def _observed() -> Any:
    run = samples.load_run(burst.spike(samples.setup("burst")))
    return samples.observed(run, [], [], [], {}, None)


def test_burst_without_burst_must_break_the_slo() -> None:
    held = test_drill_burst.assess()
    spike_s = test_drill_burst.SPIKE_S
    broken = test_drill_burst.assess(slow=(spike_s, spike_s + 6))
    assert _drill_pair("burst", held, broken, _observed()).verdict == "pass"
    assert _drill_pair("burst", held, held, _observed()).verdict == "inconclusive"


def test_failover_without_the_warm_reserve_must_fail_requests() -> None:
    held = test_drill_failover.assess()
    t0 = test_drill_failover.T0_S
    lost = test_drill_failover.assess(failed=tuple(t0 + i / 10 for i in range(30)))
    assert lost.check("failed requests").value == 30
    assert _drill_pair("failover", held, lost, _observed()).verdict == "pass"
    assert _drill_pair("failover", held, held, _observed()).verdict == "inconclusive"


def test_failover_figures_set_the_failures_against_the_cold_start_times_the_rate() -> None:
    figures = test_drill_failover.assess(failed=(test_drill_failover.T0_S + 1,)).figures
    rps = failover.load_rps(test_drill_failover.SETUP)
    assert figures["cold_start_x_rate_requests"] == round(6 * rps)
    assert figures["failed_vs_cold_start_x_rate"] == round(1 / (6 * rps), 2)
    assert figures["burst_serving_after_t0_s"] == 0  # the warm replica was UP all along
    assert figures["burst_up_at_t0"] == 1


def test_spot_interruption_without_draining_must_be_seen_serving_to_the_end() -> None:
    drained = test_drill_spot_interruption.assess()
    unheeded = test_drill_spot_interruption.assess(
        drained_after_s=None, status_at_reclaim="UP", in_flight_at_reclaim=1
    )
    assert _drill_pair("spot-interruption", drained, unheeded, _observed()).verdict == "pass"
    assert _drill_pair("spot-interruption", drained, drained, _observed()).verdict == (
        "inconclusive"
    )


def test_metrics_outage_without_safe_mode_must_scale_down_while_blind() -> None:
    safe = test_drill_metrics_outage.assess()
    blind = test_drill_metrics_outage.assess(safe_after_s=None, blind_scale_down_after_s=4.0)
    assert blind.check(metrics_outage.SCALE_DOWNS_BLIND).value == 1
    assert _drill_pair("metrics-outage", safe, blind, _observed()).verdict == "pass"
    assert _drill_pair("metrics-outage", safe, safe, _observed()).verdict == "inconclusive"


# --- one report on both runs -------------------------------------------------------------


def test_both_runs_are_in_one_report_side_by_side_with_both_timelines(tmp_path: Path) -> None:
    held = test_drill_metrics_outage.assess()
    blind = test_drill_metrics_outage.assess(safe_after_s=None, blind_scale_down_after_s=4.0)
    report = _drill_pair("metrics-outage", held, blind, _observed())
    directory = write_report(report, tmp_path)
    assert (directory / CONTROL_TIMELINE_PNG).stat().st_size > 0
    text = (directory / REPORT_MD).read_text()
    assert text.splitlines()[0].endswith("— PASS")
    assert "## Treatment and control" in text
    row = (
        "| scale-downs while blind | <= 0 decisions | 0 decisions pass "
        "| 1 decisions **FAIL** | yes |"
    )
    assert row in text
    assert "without safe mode (control) — FAIL" in text
    assert f"![timeline]({CONTROL_TIMELINE_PNG})" in text
    assert "| Figure | Treatment | Control |" in text
    data = json.loads((directory / REPORT_JSON).read_text())
    assert data["verdict"] == "pass" and data["control"]["verdict"] == "fail"
    assert data["control_must_fail"] == ["scale-downs while blind"]
    assert data["control_misses"] == []
    back = read_report(directory)
    assert back.verdict == "pass" and back.control is not None
    assert [c.name for c in back.control.checks] == [c.name for c in blind.checks]


def test_a_run_without_its_control_says_so(tmp_path: Path) -> None:
    report = run_report([Check("failed requests", 0, 0, "<=", "requests")])
    report.control_skipped = NO_CONTROL
    assert report.verdict == "pass"
    text = (write_report(report, tmp_path) / REPORT_MD).read_text()
    assert "**No control run**: --no-control skipped it." in text
    assert "no control run: --no-control skipped it" in summary(report)


# --- the command ------------------------------------------------------------------------


class RecordingDrill:
    """Stands in for a drill in `spillover drill`: returns a set report, records how it
    was asked to run."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.asked: list[bool] = []

    def run(self, settings: Any, where: Any, control: bool = True) -> Report:
        self.asked.append(control)
        return self.report


def command(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("flags", "control", "exit_code"),
    [([], True, 4), (["--no-control"], False, 0)],
    ids=["with-control-inconclusive", "no-control"],
)
def test_the_command_runs_the_control_unless_told_not_to_and_exits_with_the_verdict(
    flags, control, exit_code, monkeypatch, tmp_path, capsys
):
    passing = run_report([Check("within SLO", 100, 99, ">=", "%")])
    report = (
        _must_fail_within_slo(with_control([Check("within SLO", 99.5, 99, ">=", "%")]))
        if control
        else passing
    )
    if not control:
        report.control_skipped = NO_CONTROL
    fake = RecordingDrill(report)
    monkeypatch.setattr(drill_cli, "DRILLS", {"burst": fake})
    args = command(["drill", "burst", "--reports-dir", str(tmp_path), *flags])
    assert args.func(args) == exit_code
    assert fake.asked == [control]
    out = capsys.readouterr().out
    assert ("INCONCLUSIVE" if control else "no control run: --no-control skipped it") in out
