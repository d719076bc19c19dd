"""The report of one `spillover load` run: its checks (p99 against the SLO, failed
requests, the generator's schedule), figures, notes, and the console summary."""

from __future__ import annotations

from loadtest.report import Check, Report, coverage_events
from loadtest.results import LoadRun
from loadtest.timeline import TimelineRow
from spillover.tables import format_table

ERRORS_SHOWN = 3


def load_report(run: LoadRun, timeline: list[TimelineRow], slo_ms: float) -> Report:
    """The checks, figures and notes of one load run (settings are the caller's)."""
    schedule = run.schedule
    p99 = run.percentile_ms(99)
    failures = ", ".join(f"{kind} x{count}" for kind, count in _common(run.errors))
    checks = [
        Check(
            "p99 latency",
            p99,
            slo_ms,
            "<=",
            "ms",
            limit=_latency_limit(run, p99, slo_ms),
        ),
        Check(
            "failed requests",
            float(run.failed),
            0,
            "<=",
            "requests",
            limit=f"{run.failed} of {run.sent} failed: {failures}" if run.failed else None,
        ),
        Check("schedule kept", 1.0 if schedule.kept else 0.0, 1, ">=", "", schedule.reason),
    ]
    planned_rps = schedule.planned / run.end_s if run.end_s > 0 else 0.0
    figures: dict[str, float | int | str | None] = {
        "planned": run.coverage.planned,
        "planned_until_end": schedule.planned,
        "sent": run.sent,
        "ok": run.succeeded,
        "failed": run.failed,
        "planned_rps": round(planned_rps, 1),
        "achieved_rps": round(run.achieved_rps, 1),
        "p50_ms": run.percentile_ms(50),
        "p99_ms": p99,
        "p999_ms": run.percentile_ms(99.9),
        "send_lag_p99_ms": round(schedule.lag_p99_ms, 2),
        "send_lag_max_ms": round(schedule.lag_max_ms, 2),
        "late_sends_share": round(schedule.late_share, 4),
        "generator_cpu_cores": round(schedule.client_cpu_share, 2),
        "max_in_flight": schedule.max_in_flight,
    }
    notes = []
    if run.error_examples:
        notes.append("first errors: " + " | ".join(run.error_examples[:ERRORS_SHOWN]))
    return Report(
        kind="load",
        title=(
            f"Load: {run.trace.name}, peak {run.trace.peak_rps:g} rps for "
            f"{run.trace.duration_s:g} s to {run.target.url} ({run.target.protocol})"
        ),
        started_at=run.started_at,
        slo_p99_ms=slo_ms,
        checks=checks,
        figures=figures,
        timeline=timeline,
        events=coverage_events(run.coverage),
        notes=notes,
        coverage=run.coverage,
    )


def format_summary(run: LoadRun) -> str:
    """The console's table of the run, and a line saying so when a bound cut it short."""

    def ms(value: float | None) -> object:
        return "-" if value is None else round(value, 1)

    headers = ["sent", "ok", "failed", "achieved rps", "p50 ms", "p99 ms", "schedule kept"]
    row = [
        run.sent,
        run.succeeded,
        run.failed,
        round(run.achieved_rps, 1),
        ms(run.percentile_ms(50)),
        ms(run.percentile_ms(99)),
        "yes" if run.schedule.kept else "no",
    ]
    table = format_table(headers, [row])
    coverage = run.coverage
    return table if coverage.complete else f"{table}\npartial run: {coverage.describe()}"


def _latency_limit(run: LoadRun, p99: float | None, slo_ms: float) -> str | None:
    if p99 is None:
        return "no request succeeded, so there is no latency to measure"
    if p99 <= slo_ms:
        return None
    if not run.schedule.kept:
        return "the generator could not keep its schedule (see that check), so latency is suspect"
    return (
        f"at {run.achieved_rps:.0f} rps the target answered slower than {slo_ms:g} ms for over "
        "1% of requests: it lacks capacity for this load (see replicas and share per second)"
    )


def _common(errors: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(errors.items(), key=lambda item: -item[1])
