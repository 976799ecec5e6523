"""Running one command and measuring it: wall time, CPU, peak RSS, the API server's CPU, and
its requests from the audit log.

Peak RSS and CPU come from `os.wait4` on the command's process: the kernel's rusage of that
one child (with any children it reaped, such as syncer's git), which is exactly what GNU
`/usr/bin/time -f %M` prints. `getrusage(RUSAGE_CHILDREN)` would not do: its maxrss is the
largest of every child the benchmark ever reaped, not this command's.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.audit import AuditEvent, AuditLog, ObjectKey, RequestCounts, count_requests

_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (None when it is not visible)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass(frozen=True)
class Server:
    """The API server being measured: how to count its requests and its CPU."""

    audit: AuditLog
    pids: tuple[int, ...] = ()
    """kube-apiserver and etcd, when known (a control plane the benchmark started, or one
    `--dir` points at); their CPU time is the server-side cost of a command."""

    def cpu_seconds(self) -> float | None:
        total = 0.0
        for pid in self.pids:
            used = process_cpu_seconds(pid)
            if used is None:
                return None
            total += used
        return total if self.pids else None


@dataclass
class Measurement:
    """One command, measured."""

    tool: str
    scenario: str
    objects: int
    argv: list[str]
    exit_code: int
    wall: float
    cpu_user: float
    cpu_system: float
    peak_rss_kb: int
    server_cpu: float | None
    requests: RequestCounts
    result: dict[str, Any] | None = None
    """What the command reported (syncer's `-o json` summary), when it reports anything."""
    notes: list[str] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    """Wall times of every repetition, when the command was repeated (this is the median one)."""

    @property
    def cpu(self) -> float:
        return self.cpu_user + self.cpu_system

    @property
    def cpu_ms_per_request(self) -> float | None:
        """The command's CPU milliseconds (start-up included) per API request it sent; None
        without requests."""
        total = self.requests.total
        return 1000 * self.cpu / total if total else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "scenario": self.scenario,
            "objects": self.objects,
            "argv": self.argv,
            "exit_code": self.exit_code,
            "wall_seconds": round(self.wall, 3),
            "cpu_seconds": {"user": round(self.cpu_user, 3), "system": round(self.cpu_system, 3)},
            "cpu_ms_per_request": None if self.cpu_ms_per_request is None else round(self.cpu_ms_per_request, 3),
            "peak_rss_mb": round(self.peak_rss_kb / 1024, 1),
            "server_cpu_seconds": None if self.server_cpu is None else round(self.server_cpu, 3),
            "requests": self.requests.to_dict(),
            "result": self.result,
            "notes": self.notes,
            "repetition_wall_seconds": [round(wall, 3) for wall in self.walls],
        }


@dataclass(frozen=True)
class Command:
    """What to run and how to recognise its requests."""

    tool: str
    scenario: str
    objects: int
    argv: Sequence[str]
    user_agent: str
    bookkeeping: tuple[ObjectKey, ...] = ()
    ok_exit_codes: frozenset[int] = frozenset({0})
    env: Mapping[str, str] | None = None


def median_run(runs: Sequence[Measurement]) -> Measurement:
    """The run with the median wall time (the lower middle one for an even count), carrying
    every run's wall time: short commands are repeated to see past a shared machine's noise."""
    if not runs:
        raise ValueError("no runs to choose from")
    ordered = sorted(runs, key=lambda run: run.wall)
    chosen = ordered[(len(ordered) - 1) // 2]
    chosen.walls = [run.wall for run in runs]
    return chosen


class CommandFailed(RuntimeError):
    """A measured command exited with an unexpected code: its numbers would mean nothing."""


def run(command: Command, *, server: Server, logs: Path) -> Measurement:
    """Run the command with stdout and stderr in files under `logs`, and measure it."""
    logs.mkdir(parents=True, exist_ok=True)
    stem = logs / f"{command.tool}-{command.scenario}-{command.objects}"
    out_path, err_path = stem.with_suffix(".out"), stem.with_suffix(".err")
    env = {**os.environ, **(command.env or {})}
    offset = server.audit.offset()
    server_before = server.cpu_seconds()
    since = time.time()
    started = time.perf_counter()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(list(command.argv), stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    until = time.time()
    server_after = server.cpu_seconds()
    if process.returncode not in command.ok_exit_codes:
        tail = err_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise CommandFailed(
            f"{' '.join(command.argv)} exited with {process.returncode} (expected "
            f"{sorted(command.ok_exit_codes)}); end of {err_path}:\n" + "\n".join(tail)
        )
    events = _settled_events(server.audit, offset, until=until)
    return Measurement(
        tool=command.tool,
        scenario=command.scenario,
        objects=command.objects,
        argv=list(command.argv),
        exit_code=process.returncode,
        wall=wall,
        cpu_user=usage.ru_utime,
        cpu_system=usage.ru_stime,
        peak_rss_kb=usage.ru_maxrss,
        server_cpu=None if server_before is None or server_after is None else server_after - server_before,
        requests=count_requests(events, user_agent=command.user_agent, since=since, until=until,
                                bookkeeping=command.bookkeeping),
        result=_json_result(out_path),
    )


def _settled_events(audit: AuditLog, offset: int, *, until: float, timeout: float = 5.0) -> list[AuditEvent]:
    """The events since `offset`, once the log holds one received after `until`.

    The API server writes a request's event as the request completes, a moment after the
    client has its answer, so the last few requests of a command may not be in the file yet
    when the command exits. Any later event (the server's own requests never stop for long)
    shows that everything before it has been written; after `timeout` we take what is there.
    """
    deadline = time.monotonic() + timeout
    while True:
        events = audit.events_from(offset)
        if any(event.received > until for event in events) or time.monotonic() >= deadline:
            return events
        time.sleep(0.2)


def _json_result(path: Path) -> dict[str, Any] | None:
    """The `summary` of syncer's `-o json` output; None for output that is not JSON."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    summary = data.get("summary")
    return {"summary": summary, "ok": data.get("ok"), "error": data.get("error")} if summary else None


def wait_until_quiet(audit: AuditLog, *, quiet_for: float = 2.0, timeout: float = 90.0,
                     ignore: frozenset[str] = frozenset()) -> float:
    """Wait until no client (kube-controller-manager catching up on a sync's Deployments,
    say) has written anything for `quiet_for` seconds, so that one command's aftermath does
    not slow down the next one's measurement. Writes to the resources in `ignore` (the
    Leases that sharded daemons renew all the time) do not count. Returns the seconds waited."""
    started = time.monotonic()
    offset = audit.offset()
    last_write = time.time()
    while time.monotonic() - started < timeout:
        time.sleep(0.5)
        events, offset = audit.read(offset)
        writes = [event.received for event in events if event.is_write and event.resource not in ignore]
        if writes:
            last_write = max(last_write, max(writes))
        if time.time() - last_write >= quiet_for:
            break
    return time.monotonic() - started
