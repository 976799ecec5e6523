"""syncer's own kubeconfig loader against the real API server: an exec plugin's expiring token
is renewed while a client runs, a token the server refuses is replaced, and a client
certificate with the cluster's CA (the control plane's admin kubeconfig is written with
tokens; these tests build the other kinds from it).
(Impersonation is covered by tests/e2e/test_apps.py, retries by test_kube_retries.py.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from syncer.kube import ClientOptions, Kube
from tests.conftest import ClusterAccess

PLUGIN = """
import json, sys, datetime
calls = sys.argv[1]
with open(calls, "a") as log:
    log.write("call\\n")
status = {"token": sys.argv[2]}
if sys.argv[3] == "expiring":
    # Expires within syncer's margin (syncer.kube.credentials.EXPIRY_MARGIN): every use runs the plugin again.
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=30)
    status["expirationTimestamp"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
elif sys.argv[3] == "revoked-first" and open(calls).read().count("call") == 1:
    status["token"] = "revoked"  # no expiry: only the server's 401 tells it is no good
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential", "status": status}))
"""


def _with_exec_plugin(cluster: ClusterAccess, tmp_path: Path, behaviour: str) -> tuple[Path, Path]:
    """A copy of the cluster's kubeconfig whose user's token comes from an exec plugin that
    counts its runs in a file; (kubeconfig, that file)."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c["context"] for c in config["contexts"] if c["name"] == cluster.context)
    user = next(u for u in config["users"] if u["name"] == context["user"])
    token = user["user"].get("token")
    if not token:
        pytest.skip("needs a token in the kubeconfig (the local control plane's)")
    plugin, calls = tmp_path / "plugin.py", tmp_path / "calls"
    plugin.write_text(PLUGIN)
    user["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                             "args": [str(plugin), str(calls), token, behaviour]}}
    for cluster_entry in config["clusters"]:
        authority = cluster_entry["cluster"].get("certificate-authority")
        if authority and not Path(authority).is_absolute():
            cluster_entry["cluster"]["certificate-authority"] = str(cluster.kubeconfig.parent / authority)
    config["current-context"] = cluster.context
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path, calls


def test_an_exec_plugins_expiring_token_is_renewed_while_the_client_runs(
    cluster: ClusterAccess, namespace: str, kube_api: client.ApiClient, tmp_path: Path
) -> None:
    kubeconfig, calls = _with_exec_plugin(cluster, tmp_path, "expiring")
    client.CoreV1Api(kube_api).create_namespaced_config_map(namespace, {"metadata": {"name": "present"}})
    kube = Kube.connect(ClientOptions(kubeconfig=str(kubeconfig)))
    try:
        configmaps = kube.resource_for("v1", "ConfigMap")
        runs_before = len(calls.read_text().splitlines())
        for _ in range(3):
            names = {o["metadata"]["name"] for o in kube.list(configmaps, namespace=namespace)}
            assert "present" in names
        runs = len(calls.read_text().splitlines()) - runs_before
    finally:
        kube.close()
    assert runs >= 3, f"the expiring token was renewed for each of 3 requests (plugin ran {runs}x)"




def test_a_token_the_server_refuses_is_replaced_by_the_plugins_next_one(
    cluster: ClusterAccess, namespace: str, kube_api: client.ApiClient, tmp_path: Path
) -> None:
    """A token revoked before its expiry (or one without any): the server answers 401, syncer
    runs the plugin again once and the request succeeds with the new token, as kubectl does."""
    kubeconfig, calls = _with_exec_plugin(cluster, tmp_path, "revoked-first")
    client.CoreV1Api(kube_api).create_namespaced_config_map(namespace, {"metadata": {"name": "present"}})
    kube = Kube.connect(ClientOptions(kubeconfig=str(kubeconfig)))
    try:
        names = {o["metadata"]["name"] for o in kube.list(kube.resource_for("v1", "ConfigMap"), namespace=namespace)}
    finally:
        kube.close()
    assert "present" in names
    assert calls.read_text().count("call") == 2, "the plugin ran at connect and once more after the 401"
