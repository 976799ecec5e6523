"""Finding and running a rendering tool (Kustomize, Helm, sops), its output counted and its
time bounded.

The tool's stdout is counted against the render's byte budget as it arrives: past the bound
the tool is killed and nothing more is read (LimitExceeded), so a kustomization that
multiplies its bases or a chart that loops cannot fill memory. Past `timeout` seconds it is
killed too. Its stderr is kept for the error message (the last 64 KiB of a flood).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from syncer.sources.limits import Budget

CHUNK = 1024 * 1024
STDERR_KEPT = 64 * 1024
"""Tools' messages are short; a flood of them is cut to its last 64 KiB."""


def find_tool(name: str, *, version: str) -> str | None:
    """`SYNCER_<NAME>`, else `name` on PATH, else the pinned build that `tools/build.sh NAME`
    keeps in ~/.cache/syncer/tools/NAME-VERSION/; None when there is none. ValueError names the
    variable when it is set to something that is not an executable file."""
    variable = f"SYNCER_{name.upper()}"
    configured = os.environ.get(variable)
    if configured:
        if not os.access(configured, os.X_OK):
            raise ValueError(f"{variable}={configured}: not an executable file")
        return configured
    found = shutil.which(name)
    if found is not None:
        return found
    cached = Path.home() / ".cache" / "syncer" / "tools" / f"{name}-{version}" / name
    return str(cached) if os.access(cached, os.X_OK) else None


class ToolFailed(Exception):
    """The tool could not be started, timed out, or exited non-zero. `stderr` is what it
    said (empty when it did not run); `timed_out` tells a time bound from a failure."""

    def __init__(self, message: str, *, stderr: str = "", returncode: int | None = None,
                 timed_out: bool = False) -> None:
        super().__init__(message)
        self.stderr = stderr
        self.returncode = returncode
        self.timed_out = timed_out


def run_bounded(
    command: list[str], *, cwd: Path, budget: Budget | None, where: str, timeout: float,
    env: Mapping[str, str] | None = None,
) -> bytes:
    """The stdout of `command`, counted against `budget` (when given) while it arrives."""
    name = Path(command[0]).name
    try:
        process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=None if env is None else dict(env))
    except OSError as error:
        raise ToolFailed(f"cannot run {command[0]}: {error.strerror}") from None
    assert process.stdout is not None and process.stderr is not None
    stderr = bytearray()
    drain = threading.Thread(target=_read_tail, args=(process.stderr, stderr), daemon=True)
    drain.start()
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        process.kill()

    timer = threading.Timer(timeout, stop)
    timer.start()
    chunks: list[bytes] = []
    try:
        while chunk := process.stdout.read(CHUNK):
            if budget is not None:
                budget.add_bytes(len(chunk), where=where)
            chunks.append(chunk)
        returncode = process.wait()
    except BaseException:  # the bound passed (LimitExceeded), or anything else: the tool stops too
        process.kill()
        process.wait()
        raise
    finally:
        timer.cancel()
        drain.join()
        process.stdout.close()
        process.stderr.close()
    said = stderr.decode(errors="replace")
    if timed_out.is_set():
        raise ToolFailed(f"{name} timed out after {timeout:.0f}s", stderr=said, timed_out=True)
    if returncode != 0:
        raise ToolFailed(f"{name} failed (exit status {returncode})", stderr=said, returncode=returncode)
    return b"".join(chunks)


def _read_tail(stream: Any, kept: bytearray) -> None:
    while chunk := stream.read(CHUNK):
        kept += chunk
        del kept[:-STDERR_KEPT]
