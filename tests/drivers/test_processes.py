"""Process identity and group stops: what `local down` relies on to leave nothing behind."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from spillover.drivers.processes import (
    group_members,
    is_running,
    may_signal_group,
    start_process,
    start_ticks,
    stop_group,
    stop_groups,
)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
# A leader that starts a child in its own group and ignores SIGTERM, like a stuck server.
STUBBORN_PARENT = [
    sys.executable,
    "-c",
    "import signal, subprocess, sys, time;"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
    "time.sleep(60)",
]


def test_a_process_is_recognised_the_moment_it_starts(tmp_path: Path) -> None:
    # Its command line reads empty for a moment while it execs; its start time never does.
    processes = [start_process(SLEEPER, tmp_path / f"{i}.log") for i in range(20)]
    try:
        for process in processes:
            started = start_ticks(process.pid)
            assert started is not None and is_running(process.pid, started)
    finally:
        stop_groups([process.pid for process in processes], grace_s=2)


def test_another_process_at_the_same_pid_is_not_ours(tmp_path: Path) -> None:
    process = start_process(SLEEPER, tmp_path / "log")
    started = start_ticks(process.pid)
    assert started is not None
    try:
        assert not is_running(process.pid, started + 1)
        assert not may_signal_group(process.pid, started + 1)
    finally:
        stop_group(process.pid, grace_s=2)


def test_killed_process_is_not_running_but_its_group_may_be_stopped(tmp_path: Path) -> None:
    process = start_process(SLEEPER, tmp_path / "log")
    started = start_ticks(process.pid)
    assert started is not None
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not is_running(process.pid, started)
    assert may_signal_group(process.pid, started)


def test_stop_group_takes_children_and_outlasts_an_ignored_sigterm(tmp_path: Path) -> None:
    process = start_process(STUBBORN_PARENT, tmp_path / "log")
    for _ in range(100):  # bounded: the child appears within a second
        if len(group_members(process.pid)) == 2:
            break
        time.sleep(0.02)
    assert len(group_members(process.pid)) == 2
    assert stop_group(process.pid, grace_s=0.5)
    assert group_members(process.pid) == []
    assert not stop_group(process.pid), "stopping an empty group reports nothing stopped"
