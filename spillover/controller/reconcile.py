"""`spillover spend reconcile`: the ledger's burst spend against AWS's bill, per cost tag.

The Pulumi program tags every AWS resource `spillover:pool` = private, burst or shared
(infra/components/tagging.py); Cost Explorer groups the bill by that tag. A ledger pool
whose name is a tag value on the bill is compared on its own; the other burst pools run in
the one burst cluster, tagged `burst`, so they are summed under it. Private pools are owned
GPUs, not on the AWS bill, and are left out. Drift is (ledger − bill) / bill.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Protocol

from spillover.errors import SpilloverError
from spillover.tables import format_table

POOL_TAG = "spillover:pool"
"""The cost-allocation tag key; tests/infra checks it is the one the program puts on."""
BURST_TAG = "burst"
SHARED_TAG = "shared"
UNTAGGED = ""

EXPLAIN_BILL_HIGHER = (
    "the bill also holds what the ledger does not charge per replica: nodes' EBS volumes, "
    "NAT gateway hours and bytes, data transfer out, load balancers, the EKS control plane, "
    "and nodes up without a replica (scale-down lag, system nodes)"
)
EXPLAIN_LEDGER_HIGHER = (
    "the ledger charged more than AWS billed: a price book above the market price (AWS "
    "unreachable, or no market price configured), credits or savings plans, or a bill not "
    "final yet (Cost Explorer lags up to a day)"
)
EXPLAIN_UNTAGGED = (
    "resources without the spillover:pool tag, or billed before the tag was activated as a "
    "cost-allocation tag (activation is not retroactive)"
)
EXPLAIN_SHARED = "shared by every pool (the model bucket, the VPC): in no pool's ledger"
CAUSES = {
    EXPLAIN_BILL_HIGHER: "bill above ledger: EBS, NAT, data transfer, idle nodes",
    EXPLAIN_LEDGER_HIGHER: "ledger above bill: price book, credits, bill not final",
    EXPLAIN_UNTAGGED: "untagged resources",
    EXPLAIN_SHARED: "shared resources",
}
"""Each explanation's short name, for the table; the table's notes give it in full."""


class ChargedRow(Protocol):
    """What reconciling needs of one ledger row (the ledger's WindowRow has it)."""

    @property
    def pool(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def usd(self) -> float: ...


@dataclass(frozen=True)
class Month:
    first_day: date
    next_first_day: date

    @staticmethod
    def parse(text: str) -> Month:
        match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
        if match is None or not 1 <= int(match[2]) <= 12:
            raise SpilloverError(f"--month must be YYYY-MM (2026-11), not {text!r}")
        year, month = int(match[1]), int(match[2])
        after = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
        return Month(date(year, month, 1), after)

    @property
    def start_s(self) -> float:
        return epoch(self.first_day)

    @property
    def end_s(self) -> float:
        return epoch(self.next_first_day)


@dataclass(frozen=True)
class Reconciled:
    tag: str
    """The bill's spillover:pool value ('' untagged)."""
    pools: tuple[str, ...]
    """The ledger pools compared with it; none for bill-only lines."""
    ledger_usd: float | None
    bill_usd: float

    @property
    def drift_percent(self) -> float | None:
        """(ledger − bill) / bill in %; None for bill-only lines, inf for a ledger with no bill."""
        if self.ledger_usd is None:
            return None
        if self.bill_usd == 0:
            return 0.0 if self.ledger_usd == 0 else math.inf
        return (self.ledger_usd - self.bill_usd) / self.bill_usd * 100

    @property
    def explanation(self) -> str:
        drift = self.drift_percent
        if self.ledger_usd is None:
            if self.tag == UNTAGGED:
                return EXPLAIN_UNTAGGED
            if self.tag == SHARED_TAG:
                return EXPLAIN_SHARED
            return f"tagged {self.tag}: no burst pool in the ledger is charged for these"
        if drift is None or drift == 0:
            return ""
        return EXPLAIN_LEDGER_HIGHER if drift > 0 else EXPLAIN_BILL_HIGHER


def reconcile(rows: Iterable[ChargedRow], bill: Mapping[str, float]) -> list[Reconciled]:
    """Compared lines first (by tag), then what the bill holds that no ledger pool is."""
    # Burst costs on the bill are compared even when the ledger charged none for them.
    ledger: dict[str, dict[str, float]] = {BURST_TAG: {}} if BURST_TAG in bill else {}
    for row in rows:
        if row.role != "burst":
            continue
        tag = row.pool if row.pool in bill else BURST_TAG
        pools = ledger.setdefault(tag, {})
        pools[row.pool] = pools.get(row.pool, 0.0) + row.usd
    compared = [
        Reconciled(tag, tuple(sorted(pools)), sum(pools.values()), bill.get(tag, 0.0))
        for tag, pools in sorted(ledger.items())
    ]
    bill_only = [
        Reconciled(tag, (), None, usd)
        for tag, usd in sorted(bill.items())
        if tag not in ledger and usd > 0
    ]
    return compared + bill_only


def over(lines: Iterable[Reconciled], max_drift_percent: float) -> list[Reconciled]:
    """Compared lines whose drift exceeds the limit, either way."""
    return [
        line
        for line in lines
        if line.drift_percent is not None and abs(line.drift_percent) > max_drift_percent
    ]


HEADERS = ["spillover:pool", "ledger pools", "ledger $", "bill $", "drift", "typical cause"]


def format_reconciled(lines: list[Reconciled], month: Month, estimated: bool, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(
            {
                "month": month.first_day.strftime("%Y-%m"),
                "bill_estimated": estimated,
                "lines": [
                    {
                        "tag": line.tag,
                        "pools": list(line.pools),
                        "ledger_usd": line.ledger_usd,
                        "bill_usd": line.bill_usd,
                        "drift_percent": line.drift_percent,
                        "explanation": line.explanation,
                    }
                    for line in lines
                ],
            },
            indent=2,
        )
    table = format_table(HEADERS, [_cells(line) for line in lines])
    said = f"ledger vs AWS bill for {month.first_day:%Y-%m} (Cost Explorer, UnblendedCost)"
    if estimated:
        said += "; the bill is estimated: AWS has not closed the month"
    notes = [
        f"  {line.tag or '(untagged)'}: {line.explanation}" for line in lines if line.explanation
    ]
    if notes:
        notes.insert(0, "\nwhat typically explains each drift:")
    return "\n".join([said, table, *notes])


def _cells(line: Reconciled) -> list[object]:
    drift = line.drift_percent
    if drift is None:
        drift_text = "-"
    elif math.isinf(drift):
        drift_text = "no bill"
    else:
        drift_text = f"{drift:+.1f}%"
    return [
        line.tag or "(untagged)",
        ", ".join(line.pools) or "-",
        "-" if line.ledger_usd is None else f"{line.ledger_usd:.2f}",
        f"{line.bill_usd:.2f}",
        drift_text,
        CAUSES.get(line.explanation, line.explanation),
    ]


def epoch(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()
