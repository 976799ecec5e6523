"""What an App's objects look like after a tick: their health, and whether they drifted from Git.

Both read the cluster with the app's own identity (its impersonated service account), so an
App learns nothing about objects its service account may not read. Both answer None when
they cannot tell (a read was refused, the API server did not answer): the status then keeps
what it said before rather than guessing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from syncer.apply import SyncOptions, plan_sync
from syncer.daemon.appstatus import AppHealth, aggregate_health
from syncer.errors import NotFound, SyncerError
from syncer.kube import Kube, Resource
from syncer.model import Manifest, Object, ObjectRef

log = logging.getLogger(__name__)


def observe_health(kube: Kube, manifests: Sequence[Manifest]) -> AppHealth | None:
    """The app's health from the live state of its desired objects: one LIST per kind and
    namespace, one GET per cluster-scoped object."""
    try:
        return aggregate_health(_live_objects(kube, manifests))
    except SyncerError as error:
        log.info("cannot read the objects for their health: %s", error)
        return None


def _live_objects(kube: Kube, manifests: Sequence[Manifest]) -> list[tuple[ObjectRef, Object | None]]:
    by_list: dict[tuple[Resource, str], list[ObjectRef]] = {}
    found: list[tuple[ObjectRef, Object | None]] = []
    for manifest in manifests:
        ref = manifest.ref
        try:
            resource = kube.resource_for(manifest.api_version, manifest.kind)
        except NotFound:  # its CustomResourceDefinition is gone
            found.append((ref, None))
            continue
        if resource.namespaced and ref.namespace:
            by_list.setdefault((resource, ref.namespace), []).append(ref)
        else:
            found.append((ref, kube.get(resource, ref.name)))
    for (resource, namespace), refs in by_list.items():
        live = {obj["metadata"]["name"]: obj for obj in kube.list(resource, namespace=namespace)}
        found += [(ref, live.get(ref.name)) for ref in refs]
    return found


def observe_drift(
    kube: Kube, manifests: Sequence[Manifest], *, options: SyncOptions, revision: str
) -> tuple[str, ...] | None:
    """The objects a sync of these manifests would change (and, with pruning, delete): the
    plan's changed objects, found the same way `syncer diff` finds them."""
    try:
        plan = plan_sync(kube, manifests, options=options, revision=revision)
    except SyncerError as error:
        log.info("app %s: cannot plan to find drift: %s", options.app, error)
        return None
    drifted = [str(planned.ref) for planned in plan.changed]
    if options.prune:
        drifted += [str(candidate.ref) for candidate in plan.deletions]
    return tuple(drifted)
