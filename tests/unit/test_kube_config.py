"""A wrong kubeconfig or context is an error naming the file and the context."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import urllib3

from syncer.errors import ConfigError
from syncer.kube import ClientOptions, default_namespace, load_connection

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
        load_connection(ClientOptions(kubeconfig=str(missing)))


def test_unknown_context_names_file_and_context(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    with pytest.raises(ConfigError, match=f"kubeconfig {path}, context two: no such context; the contexts are: one"):
        load_connection(ClientOptions(kubeconfig=str(path), context="two"))


def test_valid_kubeconfig_points_the_client_at_its_server(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    assert load_connection(ClientOptions(kubeconfig=str(path))).server == "https://127.0.0.1:1"


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


CLUSTERS = """apiVersion: v1
kind: Config
clusters:
- {name: dev, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}
- {name: prod, cluster: {server: "https://10.0.0.1:6443"}}
users: [{name: admin, user: {token: from-first-file}}]
current-context: dev
"""
CONTEXTS = """apiVersion: v1
kind: Config
clusters: [{name: dev, cluster: {server: "https://shadowed.invalid:1"}}]
users: [{name: admin, user: {token: shadowed}}]
contexts:
- {name: dev, context: {cluster: dev, user: admin, namespace: shop}}
- {name: prod, context: {cluster: prod, user: admin}}
current-context: prod
"""


def test_kubeconfig_list_is_merged_as_kubectl_merges_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A context in the second file uses the cluster and user of the first; the first
    definition of a name wins, and so does the first current-context."""
    listed = write(tmp_path / "clusters", CLUSTERS) + ":" + str(tmp_path / "missing") + ":" + write(
        tmp_path / "contexts", CONTEXTS)
    monkeypatch.setenv("KUBECONFIG", listed)
    connection = load_connection(ClientOptions())
    assert connection.server == "https://127.0.0.1:6443"
    assert connection.credentials.headers() == {"Authorization": "Bearer from-first-file"}
    assert load_connection(ClientOptions(context="prod")).server == "https://10.0.0.1:6443"
    assert default_namespace(ClientOptions()) == ("shop", "context dev")
    assert default_namespace(ClientOptions(context="prod")) == ("default", "default")


def test_unknown_context_lists_the_contexts_of_every_file(tmp_path: Path) -> None:
    listed = write(tmp_path / "a", CLUSTERS) + ":" + write(tmp_path / "b", CONTEXTS)
    with pytest.raises(ConfigError, match="context staging: no such context; the contexts are: dev, prod$"):
        load_connection(ClientOptions(kubeconfig=listed, context="staging"))


def test_insecure_skip_tls_verify_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("syncer.kube.config._insecure_servers_warned", set())
    listed = write(tmp_path / "a", CLUSTERS) + ":" + write(tmp_path / "b", CONTEXTS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3):
            client = load_connection(ClientOptions(kubeconfig=listed, context="dev"))
            assert client.insecure is True
            warnings.warn("simulated", urllib3.exceptions.InsecureRequestWarning, stacklevel=1)
    assert [r.getMessage() for r in caplog.records if "not verified" in r.getMessage()] == [
        "TLS certificates of https://127.0.0.1:6443 are not verified (insecure-skip-tls-verify in the kubeconfig)"]
    assert not [w for w in caught if issubclass(w.category, urllib3.exceptions.InsecureRequestWarning)]
