"""A wrong kubeconfig or context is an error naming the file and the context."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncer.errors import ConfigError
from syncer.kube import ClientOptions, load_api_client

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: one, context: {cluster: c, user: u}}]
current-context: one
"""


def test_missing_kubeconfig_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=f"kubeconfig {missing}: no such file"):
        load_api_client(ClientOptions(kubeconfig=str(missing)))


def test_unknown_context_names_file_and_context(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    with pytest.raises(ConfigError, match=f"kubeconfig {path}, context two: .*two"):
        load_api_client(ClientOptions(kubeconfig=str(path), context="two"))


def test_valid_kubeconfig_points_the_client_at_its_server(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    assert load_api_client(ClientOptions(kubeconfig=str(path))).configuration.host == "https://127.0.0.1:1"
