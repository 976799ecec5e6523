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
from syncer.apply.membercache import MemberReads
from syncer.apply.live import ListKey, read_live
from syncer.daemon.appstatus import AppHealth, aggregate_health
from syncer.errors import ClusterError, NotFound, SyncerError
from syncer.kube import Kube
from syncer.model import Manifest, Object, ObjectRef

log = logging.getLogger(__name__)


def observe_health(
    kube: Kube, manifests: Sequence[Manifest], *, applyset: str, cache: MemberReads | None = None
) -> AppHealth | None:
    """The app's health from the live state of its desired objects: from the daemon's cache
    where it holds them, else one LIST per kind and namespace."""
    try:
        return aggregate_health(_live_objects(kube, manifests, applyset=applyset, cache=cache))
    except SyncerError as error:
        log.info("cannot read the objects for their health: %s", error)
        return None


def _live_objects(
    kube: Kube, manifests: Sequence[Manifest], *, applyset: str, cache: MemberReads | None
) -> list[tuple[ObjectRef, Object | None]]:
    wanted: dict[ListKey, set[str]] = {}
    found: list[tuple[ObjectRef, Object | None]] = []
    located: list[tuple[ObjectRef, ListKey]] = []
    for manifest in manifests:
        ref = manifest.ref
        try:
            resource = kube.resource_for(manifest.api_version, manifest.kind)
        except NotFound:  # its CustomResourceDefinition is gone
            found.append((ref, None))
            continue
        key = (resource, ref.namespace if resource.namespaced else None)
        wanted.setdefault(key, set()).add(ref.name)
        located.append((ref, key))
    listed = read_live(kube, wanted, applyset=applyset, cache=cache, workers=1)
    for key, objects in listed.items():
        if isinstance(objects, ClusterError):
            raise objects
    by_name = {key: {obj["metadata"]["name"]: obj for obj in objects}
               for key, objects in listed.items() if isinstance(objects, list)}
    return found + [(ref, by_name[key].get(ref.name)) for ref, key in located]


def observe_drift(
    kube: Kube, manifests: Sequence[Manifest], *, options: SyncOptions, revision: str,
    cache: MemberReads | None = None,
) -> tuple[str, ...] | None:
    """The objects a sync of these manifests would change (and, with pruning, delete): the
    plan's changed objects, found the same way `syncer diff` finds them."""
    try:
        plan = plan_sync(kube, manifests, options=options, revision=revision, cache=cache)
    except SyncerError as error:
        log.info("app %s: cannot plan to find drift: %s", options.app, error)
        return None
    return plan.drift
