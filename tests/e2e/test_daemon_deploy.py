"""The example deployment is accepted by a real API server (server-side dry run)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from syncer.kube import Kube

DEPLOY = Path(__file__).resolve().parents[2] / "examples" / "deploy"


def test_example_manifests_pass_server_side_validation(kube: Kube, namespace: str) -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        objects += [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]
    assert {o["kind"] for o in objects} >= {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                                            "ConfigMap", "Deployment", "Service"}
    for obj in objects:
        body = copy.deepcopy(obj)
        resource = kube.resource_for(body["apiVersion"], body["kind"])
        if resource.namespaced:
            assert body["metadata"]["namespace"] == "syncer-system"
            body["metadata"]["namespace"] = namespace  # syncer-system does not exist in a dry run
        subject = f"{body['kind']}/{body['metadata']['name']}"
        kube.apply(resource, body, subject=subject, field_manager="test", force=True, dry_run=True)
