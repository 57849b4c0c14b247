"""Processes of the local servers: start in their own session, check by pid and start time, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STOP_GRACE_S = 5.0


class ProcessError(RuntimeError):
    pass


@dataclass
class ProcessRecord:
    pid: int
    # Start time of the process (clock ticks since boot): guards against a reused pid.
    start_ticks: int
    log: str


def proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # Fields after "pid (comm)"; comm may contain spaces and parentheses.
    return raw[raw.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int:
    stat = proc_stat(pid)
    return int(stat[19]) if stat else 0


def is_alive(record: ProcessRecord) -> bool:
    stat = proc_stat(record.pid)
    return stat is not None and stat[0] != "Z" and int(stat[19]) == record.start_ticks


def reap(pid: int) -> None:
    """Collect our own exited children so they do not linger as zombies."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def spawn(name: str, argv: list[str], state_dir: Path, env: dict[str, str] | None = None) -> ProcessRecord:
    log_path = state_dir / "logs" / f"{name}.log"
    with log_path.open("ab") as log:
        # Own session = own process group: down() kills the group, and the process
        # outlives the `transferctl dev-cluster up` that started it.
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=state_dir,
            env=env,
            start_new_session=True,
        )
    return ProcessRecord(pid=process.pid, start_ticks=start_ticks(process.pid), log=str(log_path))


def stop(record: ProcessRecord, grace_s: float = STOP_GRACE_S) -> None:
    if not is_alive(record):
        reap(record.pid)
        return
    signal_group(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        reap(record.pid)
        if not is_alive(record):
            return
        time.sleep(0.05)
    signal_group(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + grace_s
    while is_alive(record) and time.monotonic() < deadline:  # SIGKILL is not instant either
        reap(record.pid)
        time.sleep(0.05)
    reap(record.pid)


def signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def log_tail(record: ProcessRecord, lines: int = 20) -> str:
    try:
        return "\n".join(Path(record.log).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    what: str,
    ready: Callable[[], bool],
    timeout_s: float,
    watch: ProcessRecord | None = None,
    interval_s: float = 0.25,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if watch is not None and not is_alive(watch):
            raise ProcessError(f"{what}: process exited; log tail:\n{log_tail(watch)}")
        time.sleep(interval_s)
    tail = f"; log tail:\n{log_tail(watch)}" if watch else ""
    raise ProcessError(f"timed out after {timeout_s:.0f}s waiting for {what}{tail}")
