"""Applying an object with get + update where the API server cannot server-side apply it.

Kubernetes before 1.21 (1.20.6, 1.19.10 and 1.18.18 with the backport) serves APIServices from
the kube-aggregator, which has no field manager: a server-side apply of an APIService makes
the server panic ("FieldManager must be installed to run apply", kubernetes#89264, fixed by
kubernetes#98576). kubectl apply --server-side fails the same way. metrics-server,
kube-prometheus and Pinniped all ship an APIService, so syncer applies those with an update
(PUT) under optimistic concurrency instead: the object's resourceVersion is sent back, and a
concurrent change makes the server refuse the update (409), after which it is read and merged
again.

Three-way semantics without managedFields: what syncer applied last is kept in the object's
`syncer.dev/last-applied` annotation (as `kubectl apply` does with its own annotation). A field
that was applied before and is no longer in Git is removed; fields set by others stay; a field
in Git is set. Objects here are small (an APIService is a few hundred bytes), far from the
annotation size limit that rules this design out for large objects.
"""

from __future__ import annotations

import json
from typing import Any

from syncer.errors import Conflict
from syncer.kube import Kube, Resource
from syncer.model import Object

LAST_APPLIED_ANNOTATION = "syncer.dev/last-applied"
MAX_ATTEMPTS = 4

_NO_SERVER_SIDE_APPLY: dict[str, tuple[tuple[int, int, int], ...]] = {
    "APIService.apiregistration.k8s.io": ((1, 18, 18), (1, 19, 10), (1, 20, 6), (1, 21, 0)),
}
"""Group-kinds some API servers cannot server-side apply, and the first fixed release of each
minor version (the last entry: every later minor version is fixed)."""

def fallback_reason(group_kind: str, server_version: tuple[int, int, int] | None) -> str | None:
    """Why `group_kind` cannot be server-side applied on this server, or None when it can."""
    fixed_in = _NO_SERVER_SIDE_APPLY.get(group_kind)
    if fixed_in is None or server_version is None:
        return None
    for fixed in fixed_in:
        if server_version[:2] == fixed[:2]:
            broken = server_version < fixed
            break
    else:
        broken = server_version < fixed_in[0]
    if not broken:
        return None
    version = ".".join(map(str, server_version))
    return (
        f"Kubernetes {version} cannot server-side apply {group_kind} (kubernetes#89264, fixed in 1.21): "
        f"syncer updates it instead, remembering what it applied in the {LAST_APPLIED_ANNOTATION} annotation"
    )


def three_way_merge(live: Any, last_applied: Any, desired: Any) -> Any:
    """`live` with `desired` set and what `last_applied` had but `desired` no longer has removed.

    Mappings merge key by key; anything else (lists included) is replaced as a whole, as in
    a JSON merge patch. Keys only `live` has belong to others and stay.
    """
    if not isinstance(desired, dict) or not isinstance(live, dict):
        return desired
    previous = last_applied if isinstance(last_applied, dict) else {}
    merged = {key: value for key, value in live.items() if key in desired or key not in previous}
    for key, value in desired.items():
        merged[key] = three_way_merge(live.get(key), previous.get(key), value)
    return merged


def update_apply(kube: Kube, resource: Resource, obj: Object, *, subject: str, field_manager: str, dry_run: bool) -> Object:
    """What a server-side apply of `obj` would do, done with create or get + update.

    Nothing is written when the merge changes nothing, so a resync stays free of writes. With
    dry_run the server validates and predicts the create or update (dryRun=All).
    """
    metadata = obj["metadata"]
    namespace, name = metadata.get("namespace"), metadata["name"]
    applied = _without_last_applied(obj)
    query = {"fieldManager": field_manager, **kube.field_validation(), **({"dryRun": "All"} if dry_run else {})}
    verb = "dry-run" if dry_run else "update"
    for attempt in range(MAX_ATTEMPTS):
        live = kube.get(resource, name, namespace=namespace)
        try:
            if live is None:
                body = _with_last_applied(applied, applied)
                created = kube.request("POST", resource.path(namespace=namespace), subject=subject,
                                       verb="dry-run" if dry_run else "create", query=query, body=body)
                assert isinstance(created, dict)
                return created
            annotations = (live.get("metadata") or {}).get("annotations") or {}
            last_applied = _decode(annotations.get(LAST_APPLIED_ANNOTATION))
            current = {key: value for key, value in live.items() if key != "status"}
            current["metadata"] = {k: v for k, v in live["metadata"].items() if k != "managedFields"}
            merged = _with_last_applied(three_way_merge(current, last_applied, applied), applied)
            if merged == current:
                return live
            updated = kube.request("PUT", resource.path(namespace=namespace, name=name), subject=subject,
                                   verb=verb, query=query, body=merged)
            assert isinstance(updated, dict)
            return updated
        except Conflict:
            # The object changed since it was read (or was created meanwhile): read it again.
            if attempt == MAX_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _without_last_applied(obj: Object) -> Object:
    metadata = dict(obj["metadata"])
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k != LAST_APPLIED_ANNOTATION}
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    return {**obj, "metadata": metadata}


def _with_last_applied(obj: Object, applied: Object) -> Object:
    metadata = dict(obj["metadata"])
    record = json.dumps(applied, separators=(",", ":"), sort_keys=True)
    metadata["annotations"] = {**(metadata.get("annotations") or {}), LAST_APPLIED_ANNOTATION: record}
    return {**obj, "metadata": metadata}


def _decode(text: object) -> Object | None:
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def apply_or_update(
    kube: Kube, resource: Resource, obj: Object, *, subject: str, field_manager: str, force: bool, dry_run: bool,
    update_instead: str | None, encoded: bytes | None = None, decode: bool = True,
) -> Object | None:
    """Write a desired object the way the plan decided: server-side apply, or, where the plan
    found that this server cannot apply the kind (`update_instead` says why), `update_apply`.
    The object as written, or with `decode=False` None (a server-side apply's answer is then
    not decoded)."""
    if update_instead is not None:
        updated = update_apply(kube, resource, obj, subject=subject, field_manager=field_manager, dry_run=dry_run)
        return updated if decode else None
    return kube.apply(resource, obj, subject=subject, field_manager=field_manager, force=force, dry_run=dry_run,
                      encoded=encoded, decode=decode)
