"""Two renders of one path, at two revisions, made comparable without a cluster.

The offline diff (`syncer diff --from A --to B`) pairs the objects of two renders by identity,
and an object's identity includes its namespace. Whether a kind is namespaced is a question for
the API server's discovery, which an offline diff does not ask. What it knows instead:

- the built-in kinds: those of the API groups Kubernetes itself serves (`BUILT_IN_GROUPS`)
  are namespaced unless `validate.CLUSTER_SCOPED` lists them;
- every CustomResourceDefinition in either revision's render: a CRD removed by the change still
  says what scope its objects had at the other revision, and a revision's own CRD wins;
- nothing else. An object of any other kind keeps the namespace its manifest writes, and one
  that writes none stays without (the render filled in `-n`, taken out again here), so both
  revisions are treated alike and the diff does not guess; `unknown_scope` names those kinds
  for the output to say so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from syncer.model import Manifest, split_api_version
from syncer.sources.snapshot import Snapshot
from syncer.sources.validate import cluster_scoped_kinds


BUILT_IN_GROUPS = frozenset({
    "", "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io", "apps", "autoscaling",
    "batch", "certificates.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io", "extensions",
    "flowcontrol.apiserver.k8s.io", "internal.apiserver.k8s.io", "networking.k8s.io", "node.k8s.io", "policy",
    "rbac.authorization.k8s.io", "resource.k8s.io", "scheduling.k8s.io", "storage.k8s.io",
    "storagemigration.k8s.io",
})
"""The API groups of Kubernetes' own kinds that manifests hold (the review groups, whose kinds
are only ever created as requests, are left out)."""


@dataclass(frozen=True)
class AlignedRenders:
    before: list[Manifest]
    after: list[Manifest]
    unknown_scope: tuple[str, ...]
    """Kinds (`Widget.example.com`) whose scope is not known offline and whose objects were
    compared without a namespace because their manifests name none."""


def align_scopes(before: Sequence[Manifest], after: Sequence[Manifest]) -> AlignedRenders:
    """`before` and `after` with every object's namespace decided by what both renders know."""
    scopes_before = cluster_scoped_kinds(m.obj for m in before)
    scopes_after = cluster_scoped_kinds(m.obj for m in after)
    unknown: set[str] = set()
    aligned_before = [_scoped(m, {**scopes_after, **scopes_before}, unknown) for m in before]
    aligned_after = [_scoped(m, {**scopes_before, **scopes_after}, unknown) for m in after]
    return AlignedRenders(before=aligned_before, after=aligned_after, unknown_scope=tuple(sorted(unknown)))


def _scoped(manifest: Manifest, scopes: dict[tuple[str, str], bool], unknown: set[str]) -> Manifest:
    metadata = manifest.obj.get("metadata") or {}
    group, _ = split_api_version(manifest.api_version)
    cluster_scoped = scopes.get((group, manifest.kind), False if group in BUILT_IN_GROUPS else None)
    if cluster_scoped is False or "namespace" not in metadata:
        return manifest
    if cluster_scoped is None:
        if not manifest.namespace_defaulted:
            return manifest
        unknown.add(manifest.ref.group_kind)
    written = {key: value for key, value in metadata.items() if key != "namespace"}
    return replace(manifest, obj={**manifest.obj, "metadata": written}, namespace_defaulted=False)


def path_exists(snapshot: Snapshot, path: str) -> bool:
    """Whether `path` is in the snapshot; a path the render would refuse anyway (absolute, or
    with `..`) counts as there, so that the render says what is wrong with it."""
    relative = PurePosixPath(path or ".")
    if relative.is_absolute() or ".." in relative.parts:
        return True
    return os.path.lexists(snapshot.root.joinpath(*relative.parts))
