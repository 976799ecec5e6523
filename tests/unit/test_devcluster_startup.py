"""Startup failures of the control plane: the error shows why, and nothing keeps running.

The binaries are small shell scripts standing in for etcd and kube-apiserver, so these run
in well under a second and need no real control plane.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from syncer.devcluster import ControlPlane, ControlPlaneError


def _assets(tmp_path: Path, *, apiserver: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    scripts = {
        # Answers the `--help` probe for flags, then never becomes healthy: the apiserver
        # fails first.
        "etcd": '[ "$1" = --help ] && exit 0\nexec sleep 30\n',
        # Answers the `--version` probe that picks its flags, then does as told.
        "kube-apiserver": '[ "$1" = --version ] && echo "Kubernetes v1.37.2" && exit 0\n'
        + apiserver,
    }
    for name, body in scripts.items():
        script = folder / name
        script.write_text("#!/bin/sh\n" + body)
        script.chmod(0o755)
    return folder


def test_a_dying_process_is_reported_with_its_log(tmp_path: Path) -> None:
    assets = _assets(tmp_path, apiserver='echo "Error: unknown flag: --frobnicate" >&2\nexit 3\n')
    control_plane = ControlPlane(workdir=tmp_path / "cp", assets=assets, ready_timeout=20)

    with pytest.raises(ControlPlaneError) as raised:
        control_plane.start()

    message = str(raised.value)
    assert message.startswith("kube-apiserver exited with code 3 during startup")
    assert "Error: unknown flag: --frobnicate" in message
    assert (tmp_path / "cp" / "logs" / "kube-apiserver.log").is_file()  # kept for reading
    control_plane.stop()
    assert not (tmp_path / "cp").exists()


def test_a_port_race_is_retried_then_reported(tmp_path: Path) -> None:
    taken = 'echo "listen tcp 127.0.0.1:$$: bind: address already in use" >&2\nexit 1\n'
    assets = _assets(tmp_path, apiserver=taken)
    control_plane = ControlPlane(workdir=tmp_path / "cp", assets=assets, ready_timeout=20)

    with pytest.raises(ControlPlaneError, match=r"no free ports after 3 attempts"):
        control_plane.start()

    log = (tmp_path / "cp" / "logs" / "kube-apiserver.log").read_text()
    assert log.count("address already in use") == 3
    control_plane.stop()
