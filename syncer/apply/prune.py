"""Pruning: deleting what Git no longer has. The most dangerous thing syncer does, so:

- candidates come only from objects carrying this app's ApplySet `part-of` label (found by
  label selector in the recorded group-kinds and namespaces: see plan.py);
- `syncer.dev/prune: disabled` keeps an object;
- every delete carries a UID precondition: an object re-created since we looked is not ours
  to delete;
- a Namespace is deleted only when nothing in it is foreign to this app, and a
  CustomResourceDefinition only when no custom resource of it is foreign (deleting either
  deletes everything inside);
- deletion runs in reverse dependency order, and only after every apply succeeded (the
  caller's duty: see applier.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from syncer.apply.applyset import ID_LABEL, is_member
from syncer.apply.changeset import Change
from syncer.apply.order import deletion_steps
from syncer.apply.plan import PruneCandidate, run_concurrently
from syncer.errors import ClusterError, Conflict, NotFound
from syncer.kube import Kube, Resource
from syncer.model import Object, ObjectRef

log = logging.getLogger(__name__)

_SYSTEM_MADE_CONFIGMAPS = frozenset({"kube-root-ca.crt"})


def _made_by_the_system(obj: Object, *, services: set[str]) -> bool:
    """Objects Kubernetes creates by itself in every namespace, which are nobody's."""
    kind = obj.get("kind")
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    if metadata.get("ownerReferences"):
        return True  # garbage-collected with its owner, which is checked itself
    if kind == "ServiceAccount" and name == "default":
        return True
    if kind == "Secret" and obj.get("type") == "kubernetes.io/service-account-token":
        return True
    if kind == "ConfigMap" and name in _SYSTEM_MADE_CONFIGMAPS:
        return True
    if kind in ("Event",):
        return True
    if kind == "Endpoints" and name in services:
        return True
    return False


def foreign_objects(
    kube: Kube, namespace: str, *, applyset: str, limit: int = 5
) -> list[str]:
    """Up to `limit` objects in the namespace that this app does not own (empty = safe to delete).

    A kind that cannot be listed counts as foreign: when in doubt, keep the namespace.
    """
    found: list[str] = []
    resources = [r for r in kube.namespaced_resources() if r.group not in ("events.k8s.io", "metrics.k8s.io")]
    services: set[str] = set()
    for resource in sorted(resources, key=lambda r: r.kind != "Service"):
        try:
            objs = kube.list(resource, namespace=namespace)
        except ClusterError as error:
            found.append(f"{resource.group_kind} (cannot list: {error.message})")
            continue
        for obj in objs:
            if resource.kind == "Service" and resource.group == "":
                services.add(obj["metadata"]["name"])
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if is_member(obj, applyset) or labels.get(ID_LABEL) == applyset:
                continue
            if _made_by_the_system(obj, services=services):
                continue
            found.append(f"{resource.kind}/{obj['metadata']['name']}")
            if len(found) >= limit:
                return found
    return found


def foreign_custom_resources(kube: Kube, crd: Object, *, applyset: str, limit: int = 5) -> list[str]:
    """Custom resources of a CRD that this app does not own (deleting the CRD deletes them)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    found: list[str] = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        resource = Resource(group=spec.get("group", ""), version=version["name"], kind=names.get("kind", ""),
                            plural=names.get("plural", ""), namespaced=spec.get("scope") == "Namespaced")
        try:
            objs = kube.list(resource)
        except ClusterError as error:
            return [f"{resource.group_kind} (cannot list: {error.message})"]
        for obj in objs:
            if not is_member(obj, applyset):
                found.append(str(ObjectRef.of(obj)))
                if len(found) >= limit:
                    break
        return found
    return found


def _keep_reason(kube: Kube, candidate: PruneCandidate, *, applyset: str) -> str | None:
    ref = candidate.ref
    if ref.group == "" and ref.kind == "Namespace":
        foreign = foreign_objects(kube, ref.name, applyset=applyset)
        if foreign:
            return f"kept: the namespace holds objects not managed by this app ({', '.join(foreign)})"
    if ref.group == "apiextensions.k8s.io" and ref.kind == "CustomResourceDefinition":
        foreign = foreign_custom_resources(kube, candidate.live, applyset=applyset)
        if foreign:
            return f"kept: custom resources of it are not managed by this app ({', '.join(foreign)})"
    return None


def prune(
    kube: Kube,
    candidates: Sequence[PruneCandidate],
    *,
    applyset: str,
    dry_run: bool,
    workers: int,
    report: Callable[[Change], None] = lambda change: None,
) -> tuple[list[Change], list[ClusterError]]:
    """Delete the candidates in reverse dependency order; returns the changes and the errors."""
    changes: list[Change] = []
    errors: list[ClusterError] = []
    by_ref = {c.ref: c for c in candidates}
    for c in candidates:
        if c.keep:
            change = Change(ref=c.ref, api_version=c.api_version, action="skipped", message=c.keep)
            changes.append(change)
            report(change)

    def delete(candidate: PruneCandidate) -> Change | ClusterError:
        keep = _keep_reason(kube, candidate, applyset=applyset)
        if keep:
            return Change(ref=candidate.ref, api_version=candidate.api_version, action="skipped", message=keep)
        try:
            kube.delete(candidate.resource, candidate.ref.name, namespace=candidate.ref.namespace,
                        subject=str(candidate.ref), uid=candidate.live["metadata"].get("uid"), dry_run=dry_run)
        except Conflict:
            return Change(ref=candidate.ref, api_version=candidate.api_version, action="skipped",
                          message="kept: it was replaced by another object of the same name since it was read")
        except NotFound:
            pass
        except ClusterError as error:
            return error
        return Change(ref=candidate.ref, api_version=candidate.api_version, action="deleted",
                      message="pruned: no longer in the source")

    for step in deletion_steps(c.ref for c in candidates if not c.keep):
        for result in run_concurrently(delete, [by_ref[ref] for ref in step], workers=workers):
            if isinstance(result, ClusterError):
                errors.append(result)
            else:
                changes.append(result)
                report(result)
        if errors:
            break
    return changes, errors
