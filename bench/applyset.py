"""kubectl's ApplySet parent for an app spread over several namespaces: a cluster-scoped
custom resource, which kubectl accepts as parent only from a CRD labelled
`applyset.kubernetes.io/is-parent-type` and does not create itself.

Why a custom resource: kubectl's `-n` forces every object into the parent's namespace, so a
ConfigMap or Secret parent cannot hold an app spread over ten namespaces; a cluster-scoped
parent can. Used by the benchmark and by conformance/ (`kubectl apply --prune --applyset`).
"""

from __future__ import annotations

from typing import Any

from syncer.apply.applyset import applyset_id

APPLYSET_GROUP = "bench.syncer.dev"
APPLYSET_RESOURCE = f"applysets.{APPLYSET_GROUP}"
APPLYSET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {
        "name": APPLYSET_RESOURCE,
        "labels": {"applyset.kubernetes.io/is-parent-type": "true"},
    },
    "spec": {
        "group": APPLYSET_GROUP,
        "scope": "Cluster",
        "names": {"kind": "ApplySet", "plural": "applysets", "singular": "applyset"},
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {"type": "object"}}}],
    },
}
PARENT_FIELD_MANAGER = "kubectl-applyset"
"""kubectl's own field manager for the parent, so that its updates take the fields over
without conflicts when the parent is applied with it."""


def applyset_parent(name: str, *, kubectl_version: str) -> dict[str, Any]:
    """The parent object, to apply (server-side, as PARENT_FIELD_MANAGER) before kubectl's
    first `apply --prune --applyset=applysets.bench.syncer.dev/<name>`."""
    return {
        "apiVersion": f"{APPLYSET_GROUP}/v1", "kind": "ApplySet",
        "metadata": {
            "name": name,
            "labels": {"applyset.kubernetes.io/id": applyset_id(name=name, namespace="", kind="ApplySet",
                                                                group=APPLYSET_GROUP)},
            "annotations": {"applyset.kubernetes.io/tooling": f"kubectl/{kubectl_version}",
                            "applyset.kubernetes.io/contains-group-kinds": ""},
        },
    }
