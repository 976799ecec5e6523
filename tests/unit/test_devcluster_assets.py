"""Where the control plane binaries come from: KUBEBUILDER_ASSETS first, then syncer's own."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

import syncer.cli.devcluster  # noqa: F401  (registers `dev-cluster` on the group)
from syncer.cli import cli
from syncer.devcluster.assets import (
    MODULES_DIR,
    current_version,
    default_assets_dir,
    find_assets,
    known_versions,
    resolve_version,
)
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
    monkeypatch.delenv("SYNCER_KUBERNETES_VERSION", raising=False)


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


def test_known_versions_come_from_the_module_folders() -> None:
    """Each `kubernetes/v1.N/go.mod` is a version; 1.20 is the Debian-built one, kept as the
    oldest. Newest first, so the first is the default."""
    known = known_versions()

    modules = sorted(p.parent.name.removeprefix("v") for p in MODULES_DIR.glob("v1.*/go.mod"))
    assert modules, "no Go module of a Kubernetes version"
    assert set(known) == {*modules, "1.20"}
    assert known["1.20"] == "1.20.2"
    assert list(known) == sorted(known, key=lambda minor: int(minor.split(".")[1]), reverse=True)
    for minor, full in known.items():
        assert full.startswith(minor + ".")
    assert current_version() == next(iter(known.values()))


@pytest.mark.parametrize("spelling", ["1.20", "v1.20", "1.20.2", "v1.20.2"])
def test_a_version_is_named_by_its_minor_or_the_pinned_patch(spelling: str) -> None:
    assert resolve_version(spelling) == "1.20.2"


@pytest.mark.parametrize("unknown", ["1.19", "1.20.6", "1.99", "latest", "2"])
def test_an_unknown_version_is_refused_with_the_known_ones(unknown: str) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve_version(unknown)

    message = str(raised.value)
    assert unknown.removeprefix("v") in message
    assert "known: " + ", ".join(known_versions()) in message


def test_the_version_comes_from_the_environment_then_the_newest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SYNCER_KUBERNETES_VERSION", raising=False)
    assert resolve_version(None) == current_version()

    monkeypatch.setenv("SYNCER_KUBERNETES_VERSION", "1.20")
    assert resolve_version(None) == "1.20.2"
    assert resolve_version("1.20.2") == "1.20.2"

    monkeypatch.setenv("SYNCER_KUBERNETES_VERSION", "1.19")
    with pytest.raises(ConfigError, match="from SYNCER_KUBERNETES_VERSION"):
        resolve_version(None)


def test_each_version_has_its_own_cache_folder() -> None:
    folders = {default_assets_dir(minor) for minor in known_versions()}

    assert {folder.name for folder in folders} == {f"v{v}" for v in known_versions().values()}


def test_missing_binaries_name_the_install_command_for_the_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Path, "home", lambda: tmp_path)

    with pytest.raises(ConfigError) as raised:
        find_assets(version="1.20", install=False)

    message = str(raised.value)
    assert str(tmp_path / ".cache/syncer/control-plane/v1.20.2") in message
    assert "install-control-plane.sh --kubernetes-version 1.20 " in message


def test_dev_cluster_up_refuses_an_unknown_version_before_starting_anything(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(
        cli, ["dev-cluster", "up", "--dir", str(tmp_path / "dc"), "--kubernetes-version", "1.19"]
    )

    assert result.exit_code != 0
    known = ", ".join(known_versions())
    assert f"Kubernetes 1.19: not a version syncer builds; known: {known}" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "dc").exists()
