"""Where the control plane binaries come from: KUBEBUILDER_ASSETS first, then syncer's own."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from syncer.devcluster.assets import find_assets
from syncer.errors import ConfigError


def _folder_with(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in names:
        binary = folder / name
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
    return folder


@pytest.fixture(autouse=True)
def _no_configured_assets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.delenv("SYNCER_CONTROL_PLANE_DIR", raising=False)


def test_kubebuilder_assets_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    envtest = _folder_with(tmp_path, "etcd", "kube-apiserver", "kube-controller-manager")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(envtest))
    monkeypatch.setenv("SYNCER_CONTROL_PLANE_DIR", str(tmp_path / "elsewhere"))

    assert find_assets(install=False) == envtest


def test_kubebuilder_assets_without_controller_manager_warn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    envtest = _folder_with(tmp_path, "etcd", "kube-apiserver")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(envtest))

    with caplog.at_level(logging.WARNING):
        assert find_assets() == envtest

    assert "no kube-controller-manager" in caplog.text
    assert "namespace deletion" in caplog.text


def test_kubebuilder_assets_without_apiserver_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(_folder_with(tmp_path, "etcd")))

    with pytest.raises(ConfigError, match=r"KUBEBUILDER_ASSETS=.*missing kube-apiserver"):
        find_assets()


def test_configured_folder_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _folder_with(tmp_path, "etcd", "kube-apiserver", "kube-controller-manager")
    monkeypatch.setenv("SYNCER_CONTROL_PLANE_DIR", str(folder))

    assert find_assets(install=False) == folder


def test_missing_binaries_without_install_say_how_to_get_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _folder_with(tmp_path, "etcd")
    monkeypatch.setenv("SYNCER_CONTROL_PLANE_DIR", str(folder))

    with pytest.raises(ConfigError) as raised:
        find_assets(install=False)

    message = str(raised.value)
    assert message.startswith(str(folder))
    assert "kube-apiserver, kube-controller-manager" in message
    assert "install-control-plane.sh" in message
