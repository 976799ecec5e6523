"""Starting, recognising and stopping the control plane's processes.

A control plane started by this process holds `subprocess.Popen` handles. A detached one
(`syncer dev-cluster up`) is known only by the pids in its state file, and a pid may have been
reused by an unrelated process since: `Detached` therefore only signals a pid whose command
line still mentions the control plane's work directory.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class Process(Protocol):
    """What stopping needs of a process; `subprocess.Popen` is one."""

    def send_signal(self, sig: int) -> None: ...

    def poll(self) -> int | None: ...


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago.

    All sockets are held open until every port is chosen, so the ports differ from each
    other; another program may still grab one before our process binds it, which the caller
    detects ("address already in use" in its log) and retries.
    """
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec hook making the child receive SIGTERM when its parent dies, so that a test
    run killed hard leaves no apiserver behind. Linux only; elsewhere there is no hook.

    libc is resolved here, before fork: the hook runs between fork and exec, where loading a
    library is not safe.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


def spawn(argv: Sequence[str], *, log_file: Path, detached: bool) -> subprocess.Popen[bytes]:
    """Starts `argv` with stdout and stderr appended to `log_file`.

    A detached process gets its own session so it outlives the command that started it and a
    Ctrl-C in that terminal does not reach it. An attached one shares our process group and
    dies with us (see `_die_with_parent_hook`); note that on Linux "us" is the *thread* that
    started it.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        hook = None if detached else _die_with_parent_hook()
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=detached,
            preexec_fn=hook,
        )


def _proc_state(pid: int) -> str | None:
    """The process state letter from /proc (`Z` for a zombie), None when there is no such
    process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may contain spaces; the state follows the last ')'.
    return stat.rpartition(")")[2].split()[0]


def _cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


class Detached:
    """A control plane process we did not start in this Python process, known by pid."""

    def __init__(self, pid: int, *, marker: str) -> None:
        self.pid = pid
        self.marker = marker

    def _is_ours(self) -> bool:
        if not Path("/proc").is_dir():
            # No /proc (macOS): the best available check is that the pid exists.
            self._reap()
            try:
                os.kill(self.pid, 0)
            except (ProcessLookupError, PermissionError):
                return False
            return True
        cmdline = _cmdline(self.pid)
        if cmdline == "" and _proc_state(self.pid) is not None:
            return True  # exiting: the kernel has dropped its command line, not yet its pid
        return cmdline is not None and self.marker in cmdline

    def poll(self) -> int | None:
        """None while the process runs; 0 once it is gone (or is no longer ours)."""
        if _proc_state(self.pid) == "Z":
            self._reap()
            return 0
        return None if self._is_ours() else 0

    def send_signal(self, sig: int) -> None:
        if self.poll() is not None:
            return
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def _reap(self) -> None:
        """Collects the exit status when the process happens to be our own child (it was
        started detached by this same Python process), so it does not linger as a zombie."""
        try:
            os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pass


def terminate(processes: Sequence[Process], *, timeout: float) -> None:
    """SIGTERM, then SIGKILL for whatever still runs after `timeout` seconds."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    if _wait_gone(running, timeout=timeout):
        return
    for process in running:
        if process.poll() is None:
            log.warning("process did not stop within %.0fs of SIGTERM; killing it", timeout)
            process.send_signal(signal.SIGKILL)
    _wait_gone(running, timeout=5.0)


def _wait_gone(processes: Sequence[Process], *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if all(p.poll() is not None for p in processes):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def tail(path: Path, *, lines: int = 25) -> str:
    """The last lines of a log file, for error messages; empty when it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
