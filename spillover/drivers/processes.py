"""Start and stop local server processes by process group, and find them again later.

Every server starts in a session of its own, so its PID is also its process-group
ID and stopping the group takes its children (Triton's backend stubs) with it.
A process is recorded as its PID plus its start time (clock ticks after boot, from
/proc/<pid>/stat): the pair names one process for its whole life, so a reused PID
is never signalled. (Its command line would not do: it reads empty for a moment
while the process execs, just after Popen returns.)
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from spillover.settings import DEFAULTS


def start_process(
    command: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a server in its own session with stdout and stderr appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )


START_TIME_FIELD = 19
"""Index of `starttime` (field 22 of /proc/<pid>/stat) among the fields after the name."""


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name in parentheses may contain spaces; fields follow the last ')'.
    return text[text.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """When pid started, in clock ticks after boot; None if there is no such process."""
    fields = _stat_fields(pid)
    return int(fields[START_TIME_FIELD]) if fields is not None else None


@functools.cache
def _boot_time() -> int:
    """Seconds since the epoch at boot: fixed while the machine runs, so read once."""
    return next(
        int(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )


def started_at_epoch(started: int) -> float:
    """A start time in clock ticks after boot, as seconds since the epoch."""
    return _boot_time() + started / os.sysconf("SC_CLK_TCK")


def is_running(pid: int, started: int) -> bool:
    """True when pid is still the live (not zombie) process that started at `started`."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z" and int(fields[START_TIME_FIELD]) == started


def may_signal_group(pid: int, started: int) -> bool:
    """True when pid's group is ours to stop: pid is our process, or it is already dead.

    A dead leader (gone or a zombie) may leave children in its group; the kernel does
    not reuse a PID while a group of that ID has members, so they are still ours.
    """
    fields = _stat_fields(pid)
    return fields is None or fields[0] == "Z" or int(fields[START_TIME_FIELD]) == started


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group pgid."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def reap(pid: int) -> None:
    """Collect pid's exit status if it is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_group(pgid: int, grace_s: float = DEFAULTS.local.stop_grace_s) -> bool:
    """Stop one process group; True if it had live members."""
    return stop_groups([pgid], grace_s) == 1


def stop_groups(pgids: Iterable[int], grace_s: float = DEFAULTS.local.stop_grace_s) -> int:
    """Stop several process groups at once; returns how many had live members.

    The leader gets SIGTERM first so it can shut its own children down cleanly (Triton
    unloads its models and stops its backend stubs); whatever is left after
    grace_s gets SIGKILL. Groups stop in parallel, so N servers take one grace
    period, not N.
    """
    pgids = list(pgids)
    live = [pgid for pgid in pgids if group_members(pgid)]
    for pgid in live:
        _terminate(pgid)
    remaining = _wait_until_empty(live, grace_s)
    for pgid in remaining:
        _signal_group(pgid, signal.SIGKILL)
    _wait_until_empty(remaining, 5.0)
    for pgid in pgids:
        reap(pgid)
    return len(live)


def terminate_group(pgid: int) -> None:
    """Ask a group to stop and return at once (stop_groups waits; this does not): the
    leader gets SIGTERM, or the whole group when the leader is already dead. Whoever
    calls it watches `group_members` and calls `kill_group` if the grace runs out."""
    _terminate(pgid)


def kill_group(pgid: int) -> None:
    """SIGKILL every member of a group and return at once."""
    _signal_group(pgid, signal.SIGKILL)


def _terminate(pgid: int) -> None:
    """SIGTERM the leader, or the whole group when the leader is already dead."""
    fields = _stat_fields(pgid)
    try:
        if fields is not None and fields[0] != "Z":
            os.kill(pgid, signal.SIGTERM)
        else:
            os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:  # it exited since we looked; the wait below sees that
        pass


def _wait_until_empty(pgids: list[int], timeout_s: float) -> list[int]:
    """Wait for the groups to empty; returns the ones that still have members."""
    deadline = time.monotonic() + timeout_s
    remaining = list(pgids)
    while remaining:
        for pgid in remaining:
            reap(pgid)
        remaining = [pgid for pgid in remaining if group_members(pgid)]
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return remaining


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])
