"""A report's directory: ``write_report`` makes one per run with ``report.json``,
``report.md`` and ``timeline.png``; ``read_report`` reads one back.

Above both the text forms (report.py) and the drawing (plot.py), so neither needs
the other: the plot draws a report, the report never draws.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from loadtest.report import (
    CONTROL_TIMELINE_PNG,
    REPORT_JSON,
    REPORT_MD,
    TIMELINE_PNG,
    Report,
    report_from_json,
    report_to_json,
)
from loadtest.report_markdown import render_markdown


def write_report(report: Report, reports_dir: Path) -> Path:
    """Write report.json, report.md and timeline.png (and a control run's
    control-timeline.png) into a new directory; return it.

    The directory is ``<kind>-<UTC start YYYYmmddTHHMMSSZ>`` under reports_dir, with
    ``-2``, ``-3``... when runs start within the same second: never overwrite a report.
    """
    directory = _new_directory(Path(reports_dir), report)
    (directory / REPORT_JSON).write_text(
        json.dumps(report_to_json(report), indent=2, allow_nan=False) + "\n"
    )
    (directory / REPORT_MD).write_text(render_markdown(report))
    from loadtest.plot import render_timeline_png  # matplotlib only when drawing

    render_timeline_png(report, directory / TIMELINE_PNG)
    if report.control is not None:
        render_timeline_png(report.control, directory / CONTROL_TIMELINE_PNG)
    return directory


def read_report(directory: Path) -> Report:
    """The report a previous ``write_report`` left in directory (from its report.json)."""
    return report_from_json(json.loads((Path(directory) / REPORT_JSON).read_text()))


def _new_directory(reports_dir: Path, report: Report) -> Path:
    reports_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(report.started_at))
    base = f"{report.kind}-{stamp}"
    for attempt in range(1, 1000):
        directory = reports_dir / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            # exist_ok=False: two runs finishing together each get their own directory.
            directory.mkdir()
        except FileExistsError:
            continue
        return directory
    raise FileExistsError(f"{reports_dir}: 999 reports named {base} already")
