"""The example deployments (Apps, and the file mode) are accepted by a real API server
(server-side dry run of what `kubectl kustomize` builds)."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncer.kube import Kube

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(("directory", "kinds"), [
    ("deploy", {"CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                "Role", "RoleBinding", "Deployment", "Service"}),
    ("deploy-file-mode", {"ConfigMap"}),
    ("deploy-sharded", {"Deployment", "Role"}),
])
def test_example_manifests_pass_server_side_validation(
    kube: Kube, namespace: str, directory: str, kinds: set[str]
) -> None:
    built = subprocess.run(["kubectl", "kustomize", str(EXAMPLES / directory)], check=True, capture_output=True,
                           text=True).stdout
    objects: list[dict[str, Any]] = [doc for doc in yaml.safe_load_all(built) if doc]
    assert {o["kind"] for o in objects} >= kinds
    for obj in objects:
        body = copy.deepcopy(obj)
        resource = kube.resource_for(body["apiVersion"], body["kind"])
        if resource.namespaced:
            assert body["metadata"]["namespace"] == "syncer-system"
            body["metadata"]["namespace"] = namespace  # syncer-system does not exist in a dry run
        subject = f"{body['kind']}/{body['metadata']['name']}"
        kube.apply(resource, body, subject=subject, field_manager="test", force=True, dry_run=True)
