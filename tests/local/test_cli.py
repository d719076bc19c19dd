"""`spillover local ...` refuses bad arguments before touching any stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_command_refuses_a_notice_of_no_time(tmp_path: Path):
    command = [sys.executable, "-m", "spillover", "local", "--run-dir", str(tmp_path / "run")]
    result = subprocess.run(
        [*command, "interrupt", "burst-0", "--in", "0"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "above 0" in result.stderr
