"""Reading what is live, for the plan: the desired objects' live state, the app's ApplySet
parent, its members, and (when the parent is missing) the members found by their label.

Reads only, and plain values out: each function returns what it read and what it has to say
about it (warnings), and `build_plan` assembles the plan from them. One LIST per kind and
namespace, never a GET per object; the daemon's cache of the apps' members answers where it
can.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from syncer.apply.applyset import PART_OF_LABEL, Inventory, is_member, split_group_kind
from syncer.apply.filters import NOT_CONTENT_GROUPS
from syncer.apply.membercache import MemberReads
from syncer.apply.pool import run_concurrently
from syncer.errors import ClusterError, Forbidden, NotFound
from syncer.kube import Kube, Resource
from syncer.model import Object, ObjectRef

ListKey = tuple[Resource, str | None]


def read_live(
    kube: Kube, wanted: dict[ListKey, set[str]], *, applyset: str, cache: MemberReads | None, workers: int
) -> dict[ListKey, list[Object] | ClusterError]:
    """Each kind and namespace's live objects: from the cache when every wanted name there is
    a member of this app's ApplySet, else one LIST. An object that is missing, unlabelled or
    another app's is read from the API server, with this sync's credentials. Only the LISTs
    go to the worker pool: a pool started for answers the cache has cost more CPU than them."""
    def cached(key: ListKey) -> list[Object] | None:
        resource, namespace = key
        members = cache.members(resource, namespace, applyset=applyset) if cache is not None else None
        if members is not None:
            ours = [obj for obj in members if is_member(obj, applyset)]
            if wanted[key] <= {obj["metadata"]["name"] for obj in ours}:
                return ours
        return None

    def read(key: ListKey) -> list[Object] | ClusterError:
        resource, namespace = key
        try:
            return kube.list(resource, namespace=namespace)
        except ClusterError as error:
            return error

    found: dict[ListKey, list[Object] | ClusterError] = {}
    for key in wanted:
        if (objects := cached(key)) is not None:
            found[key] = objects
    unanswered = [key for key in wanted if key not in found]
    found.update(zip(unanswered, run_concurrently(read, unanswered, workers=workers)))
    return {key: found[key] for key in wanted}


@dataclass(frozen=True)
class Recovery:
    """The members a label scan found, and what it has to say about them."""

    members: tuple[ObjectRef, ...]
    warnings: tuple[str, ...]


def recover_inventory(
    kube: Kube, inventory: Inventory, *, namespaces: Iterable[str], cache: MemberReads | None, workers: int,
) -> Recovery:
    """The parent is missing: find the app's members by their `part-of` label, so that what
    Git removed meanwhile is still pruned. Per kind, the daemon's watch of it where one is
    established (`MemberCache.labelled`), else one LIST (cluster-wide, or per namespace for
    credentials that may not list cluster-wide), `workers` at a time: without the cache these
    are most of a first sync's reads, and each makes the server read every object of its kind.

    The watch is as good as the LIST here: it has seen every object written before its last
    event, and no member of this app is being written now, since a sync writes the parent
    before any member, under the app's lock (a member written after the scan escapes a LIST
    just the same)."""
    selector = f"{PART_OF_LABEL}={inventory.id}"
    resources, undiscovered = kube.listable_resources()
    searched = sorted(set(namespaces))

    def search(resource: Resource) -> tuple[list[ObjectRef], list[str]]:
        try:
            return [ObjectRef.of(o) for o in kube.list(resource, label_selector=selector)], []
        except (Forbidden, NotFound) as error:
            if not resource.namespaced:
                return [], [f"{resource.group_kind} ({error.message})"]
        except ClusterError as error:
            return [], [f"{resource.group_kind} ({error.message})"]
        found, unsearched = [], []
        for namespace in searched:
            try:
                found += [ObjectRef.of(o) for o in kube.list(resource, namespace=namespace, label_selector=selector)]
            except ClusterError:
                unsearched.append(f"{resource.group_kind} in {namespace}")
        return found, unsearched

    # A kind nobody may create or patch (ComponentStatus) holds no object a sync wrote; its
    # answer cannot come from a watch either (no watch verb): it was a LIST per new App.
    content = [r for r in resources if r.group not in NOT_CONTENT_GROUPS and r.kind != "Event"
               and (not r.verbs or r.verbs & {"create", "patch"})]
    watched = {r: refs for r in content
               if cache is not None and (refs := cache.labelled(r, inventory.id)) is not None}
    unwatched = [r for r in content if r not in watched]
    results: list[tuple[list[ObjectRef], list[str]]] = [(refs, []) for refs in watched.values()]
    results += run_concurrently(search, unwatched, workers=workers)
    found = [ref for refs, _ in results for ref in refs]
    unsearched = [f"{group_version} (cannot discover: {why})" for group_version, why in sorted(undiscovered.items())]
    unsearched += [where for _, missed in results for where in missed]
    warnings = []
    if found:
        warnings.append(
            f"{inventory.parent} was missing; recovered the app's inventory from the labels of "
            f"{len(found)} object(s) ({', '.join(sorted({r.group_kind for r in found}))})")
    if unsearched and found:
        warnings.append("could not search for members of this app in: " + ", ".join(unsearched[:10]))
    return Recovery(tuple(found), tuple(warnings))


def read_parent(
    kube: Kube, inventory: Inventory, listed: dict[ListKey, list[Object] | ClusterError], *,
    cache: MemberReads | None,
) -> Object | None:
    """The app's ApplySet parent: from the cache (which knows when there is none, see
    `MemberCache.parent`), from a LIST the plan made anyway, or read. Where the cache cannot
    tell, the parent is read: trusting a "no parent" the cache cannot vouch for, a replica
    refused its every heal as a moved record (found by the daemon model test)."""
    parent = inventory.parent
    if cache is not None:
        known, live = cache.parent(parent.namespace or "", parent.name)
        if known:
            return live
    configmaps = kube.resource_for("v1", "ConfigMap")
    parent_list = listed.get((configmaps, parent.namespace))
    if isinstance(parent_list, list):
        return next((o for o in parent_list if o["metadata"]["name"] == parent.name), None)
    return kube.get(configmaps, parent.name, namespace=parent.namespace)


def members(
    kube: Kube, inventory: Inventory, listed: dict[ListKey, list[Object] | ClusterError], *,
    cache: MemberReads | None,
) -> tuple[list[tuple[Resource, Object]], list[str]]:
    """Live members of the ApplySet, by label, in the recorded group-kinds and namespaces, and
    warnings about recorded kinds that are no longer served."""
    selector = f"{PART_OF_LABEL}={inventory.id}"
    found: list[tuple[Resource, Object]] = []
    warnings: list[str] = []
    for group_kind in sorted(inventory.group_kinds):
        group, kind = split_group_kind(group_kind)
        try:
            resource = kube.preferred_resource(group, kind)
        except NotFound:
            warnings.append(
                f"{group_kind}: recorded in the inventory but no longer served; its objects cannot be pruned")
            continue
        namespaces: list[str | None] = list(inventory.search_namespaces()) if resource.namespaced else [None]
        for namespace in namespaces:
            cached = next((objs for (res, ns), objs in listed.items()
                           if ns == namespace and res.group == resource.group and res.kind == resource.kind), None)
            if not isinstance(cached, list) and cache is not None:
                cached = cache.members(resource, namespace, applyset=inventory.id)
            if isinstance(cached, list):
                live = [o for o in cached if is_member(o, inventory.id)]
            else:
                live = kube.list(resource, namespace=namespace, label_selector=selector)
            found.extend((resource, o) for o in live)
    return found, warnings
