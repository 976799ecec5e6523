"""kubectl's ApplySets (KEP-3659, alpha: `KUBECTL_APPLYSET=true kubectl apply --prune
--applyset=...`) and syncer's, against the installed kubectl (1.32).

What syncer relies on, pinned here: the parent's `applyset.kubernetes.io/id` label (KEP-3659's
id formula, which kubectl computes the same way), the members' `applyset.kubernetes.io/part-of`
label, and the parent's `applyset.kubernetes.io/tooling` annotation, by which each tool refuses
the other's set: kubectl will not apply to or prune syncer's, syncer will not apply to or prune
kubectl's, and neither changes anything when it refuses.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from syncer.apply import sync
from syncer.apply.applyset import ID_LABEL, PART_OF_LABEL, TOOLING_ANNOTATION, applyset_id
from syncer.errors import ValidationFailed
from syncer.kube import Kube
from tests.conftest import ClusterAccess
from tests.e2e.apps import configmap, options, render_app, write_app

pytestmark = pytest.mark.oldest
"""Also run on Kubernetes 1.20, the oldest leg of scripts/test: what differs there is tested there."""

PINNED_KUBECTL = (1, 32)
"""The kubectl minor version these tests pin (README: kubectl ApplySets)."""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 0
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
"""


def cm(name: str, value: str = "1") -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{v: '{value}'}}\n"


def kubectl(cluster: ClusterAccess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECTL_APPLYSET": "true"}
    return subprocess.run(["kubectl", "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context, *args],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def kubectl_version() -> str:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run(["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True,
                         check=True).stdout
    version = json.loads(out)["clientVersion"]
    minor = re.match(r"\d+", version["minor"])  # "32+" on some builds
    if (int(version["major"]), int(minor[0]) if minor else -1) != PINNED_KUBECTL:
        pytest.skip(f"pinned to kubectl {PINNED_KUBECTL[0]}.{PINNED_KUBECTL[1]}; "
                    f"installed: {version['gitVersion']}")
    return str(version["gitVersion"])


def versions(kube_api: client.ApiClient, namespace: str) -> dict[str, str]:
    """Every ConfigMap and Deployment of the namespace: name -> resourceVersion."""
    found = {f"ConfigMap/{c.metadata.name}": c.metadata.resource_version
             for c in client.CoreV1Api(kube_api).list_namespaced_config_map(namespace).items}
    found.update({f"Deployment/{d.metadata.name}": d.metadata.resource_version
                  for d in client.AppsV1Api(kube_api).list_namespaced_deployment(namespace).items})
    found.pop("ConfigMap/kube-root-ca.crt", None)
    return found


def parent_of(kube_api: client.ApiClient, namespace: str, name: str) -> Any:
    parent = configmap(kube_api, namespace, name)
    assert parent is not None, f"no ApplySet parent ConfigMap/{namespace}/{name}"
    return parent


def test_kubectl_lists_exactly_syncers_members_by_the_parents_id(
    tmp_path: Path, kube: Kube, kube_api: client.ApiClient, namespace: str, cluster: ClusterAccess,
    kubectl_version: str,
) -> None:
    app = write_app(tmp_path / "app", {"a.yaml": cm("first"), "b.yaml": cm("second"), "web.yaml": DEPLOYMENT})
    sync(kube, render_app(app, namespace=namespace), options=options("interop", namespace), revision="r1")
    client.CoreV1Api(kube_api).create_namespaced_config_map(namespace, {"metadata": {"name": "not-syncers"}})

    parent = parent_of(kube_api, namespace, "syncer-interop")
    set_id = parent.metadata.labels[ID_LABEL]
    assert set_id == applyset_id(name="syncer-interop", namespace=namespace)
    listed = kubectl(cluster, "get", "configmaps,deployments.apps", "-n", namespace, "-o", "name",
                     "-l", f"{PART_OF_LABEL}={set_id}")
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split()) == ["configmap/first", "configmap/second", "deployment.apps/web"]


def test_kubectl_refuses_to_apply_to_or_prune_syncers_applyset(
    tmp_path: Path, kube: Kube, kube_api: client.ApiClient, namespace: str, cluster: ClusterAccess,
    kubectl_version: str,
) -> None:
    app = write_app(tmp_path / "app", {"a.yaml": cm("first"), "web.yaml": DEPLOYMENT})
    sync(kube, render_app(app, namespace=namespace), options=options("ours", namespace), revision="r1")
    before = versions(kube_api, namespace)

    theirs = write_app(tmp_path / "theirs", {"other.yaml": cm("other"), "a.yaml": cm("first", "changed")})
    result = kubectl(cluster, "apply", "--server-side", "--prune", "--applyset=configmap/syncer-ours",
                     "-n", namespace, "-f", str(theirs))
    assert result.returncode != 0, result.stdout
    assert f'"syncer-ours"' in result.stderr or "syncer-ours" in result.stderr, result.stderr
    assert 'managed by tooling "syncer" instead of "kubectl"' in result.stderr, result.stderr
    assert versions(kube_api, namespace) == before, "kubectl changed, created or pruned nothing"


def test_syncer_refuses_to_apply_to_or_prune_kubectls_applyset(
    tmp_path: Path, kube: Kube, kube_api: client.ApiClient, namespace: str, cluster: ClusterAccess,
    kubectl_version: str,
) -> None:
    theirs = write_app(tmp_path / "theirs", {"k1.yaml": cm("k1"), "k2.yaml": cm("k2")})
    made = kubectl(cluster, "apply", "--server-side", "--prune", "--applyset=configmap/syncer-mine",
                   "-n", namespace, "-f", str(theirs))
    assert made.returncode == 0, made.stderr
    parent = parent_of(kube_api, namespace, "syncer-mine")
    tooling = parent.metadata.annotations[TOOLING_ANNOTATION]
    assert tooling == f"kubectl/{kubectl_version}"
    # kubectl computes the parent's id with KEP-3659's formula, as syncer does.
    assert parent.metadata.labels[ID_LABEL] == applyset_id(name="syncer-mine", namespace=namespace)
    assert configmap(kube_api, namespace, "k1").metadata.labels[PART_OF_LABEL] == parent.metadata.labels[ID_LABEL]
    before = versions(kube_api, namespace)

    # syncer's app "mine" has the same parent, so the same id: only the tooling tells them apart.
    app = write_app(tmp_path / "app", {"k1.yaml": cm("k1", "changed"), "ours.yaml": cm("ours")})
    with pytest.raises(ValidationFailed) as refused:
        sync(kube, render_app(app, namespace=namespace), options=options("mine", namespace), revision="r1")
    [failure] = refused.value.failures
    assert failure.subject == f"ConfigMap/{namespace}/syncer-mine"
    assert f"is managed by {tooling} (its {TOOLING_ANNOTATION} annotation), not by syncer" in failure.message
    assert versions(kube_api, namespace) == before, "syncer changed, created or pruned nothing (k2 included)"
