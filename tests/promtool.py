"""Run Debian's promtool (scripts/install-system-deps.sh installs it with Prometheus)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`promtool <args>`; fails the test naming the setup script when it is missing."""
    binary = shutil.which("promtool") or "/usr/bin/promtool"
    assert Path(binary).exists(), "promtool missing: run scripts/install-system-deps.sh"
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
