"""Stopping control plane processes, and never anybody else's."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncer.devcluster import ControlPlaneError, RunningControlPlane, read_state, stop_detached
from syncer.devcluster.config import Ports
from syncer.devcluster.processes import Detached, free_ports, terminate


def _sleeper(*args: str, ignore_sigterm: bool = False) -> subprocess.Popen[bytes]:
    """A Python process sleeping for a minute, `args` on its command line."""
    code = "import signal, time\n"
    if ignore_sigterm:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('ready', flush=True)\ntime.sleep(60)\n"
    process = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"  # the signal handler is installed
    return process


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    process = _sleeper("--not-a-control-plane")
    yield process
    process.kill()
    process.wait()


def _state(workdir: Path, pid: int) -> RunningControlPlane:
    return RunningControlPlane(
        workdir=workdir,
        kubeconfig=workdir / "kubeconfig",
        server="https://127.0.0.1:6443",
        ports=Ports(etcd_client=2379, etcd_peer=2380, apiserver=6443),
        etcd_pid=pid,
        apiserver_pid=pid,
        controller_manager_pid=None,
        audit_log=None,
        detached=True,
        admin_token="token",
    )


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(3)

    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_terminate_kills_what_ignores_sigterm() -> None:
    stubborn = _sleeper(ignore_sigterm=True)

    terminate([stubborn], timeout=0.5)

    assert stubborn.wait(timeout=5) == -signal.SIGKILL


def test_detached_signals_a_process_naming_its_marker(tmp_path: Path) -> None:
    ours = _sleeper(f"--data-dir={tmp_path}/etcd")

    terminate([Detached(ours.pid, marker=str(tmp_path))], timeout=5)

    # Detached reaped its exit status (it is our child here), so /proc no longer has it.
    assert not Path(f"/proc/{ours.pid}").exists()


def test_detached_leaves_a_reused_pid_alone(
    tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    detached = Detached(bystander.pid, marker=str(tmp_path))

    assert detached.poll() == 0  # "gone": the pid is not ours any more
    terminate([detached], timeout=0.5)

    assert bystander.poll() is None


def test_stop_detached_spares_unrelated_processes_and_cleans_up(
    tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    state = _state(tmp_path, bystander.pid)
    (tmp_path / "state.json").write_text(json.dumps(state.to_json()))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "etcd.log").write_text("...")

    assert stop_detached(tmp_path) == state

    assert bystander.poll() is None
    assert not tmp_path.exists()


def test_state_round_trips_through_the_state_file(tmp_path: Path) -> None:
    state = _state(tmp_path, 4242)
    (tmp_path / "state.json").write_text(json.dumps(state.to_json()))

    assert read_state(tmp_path) == state


def test_no_state_file_means_nothing_runs(tmp_path: Path) -> None:
    assert read_state(tmp_path) is None
    assert stop_detached(tmp_path) is None


def test_a_damaged_state_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"workdir": "/x"}')

    with pytest.raises(ControlPlaneError, match=r"state\.json: not a control plane state file"):
        read_state(tmp_path)
