"""The lean transport keeps what the official client's kubeconfig loading provides: an exec
plugin's expiring token is renewed while a client runs.

syncer sends requests through the client's connection pool directly and asks the client for
credentials at most once a second (syncer.kube.transport.CREDENTIALS_TTL); this checks, against the real
API server, that a token which expires is still renewed and that requests made with it succeed.
(Impersonation is covered by tests/e2e/test_apps.py, retries by test_kube_retries.py.)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from syncer.kube import ClientOptions, Kube
from syncer.kube.transport import CREDENTIALS_TTL
from tests.conftest import ClusterAccess

PLUGIN = """
import json, sys, datetime
calls = sys.argv[1]
with open(calls, "a") as log:
    log.write("call\\n")
# Expires within the client's 5-minute skew, so every refresh runs the plugin again.
expires = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                  "status": {"token": sys.argv[2], "expirationTimestamp": expires}}))
"""


def _with_exec_plugin(cluster: ClusterAccess, tmp_path: Path) -> tuple[Path, Path]:
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
                             "args": [str(plugin), str(calls), token]}}
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
    kubeconfig, calls = _with_exec_plugin(cluster, tmp_path)
    client.CoreV1Api(kube_api).create_namespaced_config_map(namespace, {"metadata": {"name": "present"}})
    kube = Kube.connect(ClientOptions(kubeconfig=str(kubeconfig)))
    try:
        configmaps = kube.resource_for("v1", "ConfigMap")
        runs_before = len(calls.read_text().splitlines())
        for _ in range(3):
            time.sleep(CREDENTIALS_TTL + 0.1)
            names = {o["metadata"]["name"] for o in kube.list(configmaps, namespace=namespace)}
            assert "present" in names
        runs = len(calls.read_text().splitlines()) - runs_before
    finally:
        kube.close()
    assert runs >= 3, f"the expiring token was renewed on each of 3 requests a second apart (plugin ran {runs}x)"

