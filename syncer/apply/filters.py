"""Prune filters: each reason to keep an object that Git no longer has, as a named decision
made once, at plan time (in the manner of cli-utils' `ValidationFilter`).

A filter gets one prune candidate and what the plan knows (`PruneContext`) and returns why
the candidate must be kept, or None. The plan records the first filter that keeps a
candidate, by name, and every output shows that name and reason; the executor never decides
again (its only guard at delete time is the UID precondition).

Namespaces and CustomResourceDefinitions are the dangerous candidates: deleting either
deletes everything inside it, so they are kept while they hold anything Git still wants or
anything this app does not own. Even empty, they (and PersistentVolumeClaims and
PersistentVolumes, which hold data) are deleted only when the sync names them in a
confirmation: the `protected` filter, last, so that its advice to confirm is given only where
a confirmation would let the deletion happen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from syncer.apply.applyset import ID_LABEL, PARENT_PREFIX, is_member
from syncer.apply.crds import crd_group_kind, crd_resource, is_crd, is_namespace
from syncer.apply.lock import lock_name
from syncer.errors import ClusterError
from syncer.kube import Kube, Resource
from syncer.model import Object, ObjectRef, is_protected

PRUNE_ANNOTATION = "syncer.dev/prune"
_SYSTEM_MADE_CONFIGMAPS = frozenset({"kube-root-ca.crt"})
NOT_CONTENT_GROUPS = frozenset({"events.k8s.io", "metrics.k8s.io"})
"""Groups that hold no app content: events, and live metrics (never stored, never owned)."""


@dataclass(frozen=True)
class Candidate:
    """A live member of the app's ApplySet that Git no longer has."""

    ref: ObjectRef
    api_version: str
    resource: Resource
    live: Object


@dataclass
class PruneContext:
    """What the filters may look at: the desired objects, and (read lazily, once per
    namespace or CRD) what a Namespace or CustomResourceDefinition holds."""

    kube: Kube
    applyset: str
    app: str
    field_manager: str
    desired: frozenset[ObjectRef]
    desired_uids: dict[str, ObjectRef]
    """UID of each desired object that exists -> its ref (one stored object can be served
    under two API groups: an Ingress in extensions/v1beta1 and networking.k8s.io/v1)."""
    home: str = ""
    """The namespace that holds the app's inventory (its ApplySet parent) and its lock."""
    confirmed: frozenset[ObjectRef] = frozenset()
    """Objects of a protected kind the sync may delete (`SyncOptions.confirm_prune`)."""
    _namespace_contents: dict[str, list[str]] = field(default_factory=dict)

    def foreign_in_namespace(self, namespace: str, *, limit: int = 5) -> list[str]:
        if namespace not in self._namespace_contents:
            self._namespace_contents[namespace] = foreign_objects(
                self.kube, namespace, applyset=self.applyset, app=self.app)
        return self._namespace_contents[namespace][:limit]


PruneFilter = Callable[[Candidate, PruneContext], "str | None"]


def never_applied(candidate: Candidate, context: PruneContext) -> str | None:
    managers = {entry.get("manager") for entry in (candidate.live.get("metadata") or {}).get("managedFields") or []}
    if context.field_manager not in managers:
        return (f"it carries the app's label but {context.field_manager} never applied it (a controller "
                "copies labels: the endpoints controller gives a Service's to its Endpoints)")
    return None


def prune_disabled(candidate: Candidate, context: PruneContext) -> str | None:
    annotations = (candidate.live.get("metadata") or {}).get("annotations") or {}
    if annotations.get(PRUNE_ANNOTATION) == "disabled":
        return f'annotated {PRUNE_ANNOTATION}: "disabled"'
    return None


def desired_uid(candidate: Candidate, context: PruneContext) -> str | None:
    uid = (candidate.live.get("metadata") or {}).get("uid")
    same = context.desired_uids.get(str(uid)) if uid else None
    if same is not None:
        return (f"it is the same stored object as {same.qualified()}, which the source has "
                f"(the API server serves it under both {candidate.ref.group or 'core'} and "
                f"{same.group or 'core'}); deleting it here would delete that object")
    return None


def terminating(candidate: Candidate, context: PruneContext) -> str | None:
    metadata = candidate.live.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        finalizers = metadata.get("finalizers") or []
        waiting = f" (waiting for finalizers: {', '.join(finalizers)})" if finalizers else ""
        return f"already being deleted{waiting}"
    return None


def inventory_home(candidate: Candidate, context: PruneContext) -> str | None:
    """Deleting the namespace that holds the app's own inventory and lock would delete the
    app's record of what it owns: the next sync finds no app, `syncer status` lists none."""
    ref = candidate.ref
    if is_namespace(ref) and context.home and ref.name == context.home:
        return (f"it holds this app's inventory and lock (ConfigMap/{context.home}/{PARENT_PREFIX}{context.app}); "
                "to move the app, sync it with its new --namespace first, then delete this one by hand")
    return None


def desired_inside(candidate: Candidate, context: PruneContext) -> str | None:
    ref = candidate.ref
    if is_namespace(ref):
        inside = sorted(str(d) for d in context.desired if d.namespace == ref.name)
        if inside:
            return f"the source still has objects in it ({_some(inside)})"
    if is_crd(ref):
        group, kind = crd_group_kind(candidate.live)
        inside = sorted(str(d) for d in context.desired if (d.group, d.kind) == (group, kind))
        if inside:
            return f"the source still has custom resources of it ({_some(inside)})"
    return None


def foreign_inside(candidate: Candidate, context: PruneContext) -> str | None:
    ref = candidate.ref
    if is_namespace(ref):
        foreign = context.foreign_in_namespace(ref.name)
        if foreign:
            return f"it holds objects this app does not manage ({', '.join(foreign)})"
    if is_crd(ref):
        foreign = foreign_custom_resources(context.kube, candidate.live, applyset=context.applyset)
        if foreign:
            return f"custom resources of it are not managed by this app ({', '.join(foreign)})"
    return None


_PROTECTED_WHY = {
    "Namespace": "deleting a Namespace deletes everything in it",
    "CustomResourceDefinition": "deleting a CustomResourceDefinition deletes every object of its kind, "
                                "in every namespace",
    "PersistentVolumeClaim": "deleting a PersistentVolumeClaim may delete its volume and the data on it",
    "PersistentVolume": "deleting a PersistentVolume may delete the data on it",
}


def confirmation_hint(ref: ObjectRef) -> str:
    """How to confirm the prune of one protected object, in the words of the flag and the field."""
    return f"--confirm-prune {ref}, or pruneConfirmations: [{ref}] in the app's spec"


def protected(candidate: Candidate, context: PruneContext) -> str | None:
    """A protected kind is deleted only when the sync names it: the deletion takes more than
    the object (a hold-out upgrade that dropped a CRD from a public install deleted every
    object of its kind)."""
    ref = candidate.ref
    if not is_protected(ref) or ref in context.confirmed:
        return None
    return f"a protected kind: {_PROTECTED_WHY[ref.kind]}; to delete it, confirm it: {confirmation_hint(ref)}"


PRUNE_FILTERS: tuple[tuple[str, PruneFilter], ...] = (
    ("never-applied", never_applied),
    ("prune-disabled", prune_disabled),
    ("desired-uid", desired_uid),
    ("terminating", terminating),
    ("inventory-home", inventory_home),
    ("desired-inside", desired_inside),
    ("foreign-inside", foreign_inside),
    ("protected", protected),
)
"""(name, filter), cheapest first: the first that keeps a candidate decides."""

NOT_THE_APPS = frozenset({"never-applied", "desired-uid"})
"""Filters whose kept objects are not the app's own (a controller's copy of its label, the
desired object under another group): the inventory does not record them."""


def keep_reason(candidate: Candidate, context: PruneContext) -> tuple[str, str] | None:
    """(filter name, reason) of the first filter that keeps the candidate, or None."""
    for name, keep in PRUNE_FILTERS:
        reason = keep(candidate, context)
        if reason:
            return name, reason
    return None


def _some(items: list[str], limit: int = 5) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _made_by_the_system(obj: Object, *, services: set[str]) -> bool:
    """Objects Kubernetes creates by itself in every namespace, which are nobody's."""
    kind = obj.get("kind")
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    if kind == "ServiceAccount" and name == "default":
        return True
    if kind == "Secret" and obj.get("type") == "kubernetes.io/service-account-token":
        return True
    if kind == "ConfigMap" and name in _SYSTEM_MADE_CONFIGMAPS:
        return True
    if kind == "Event":
        return True
    return kind == "Endpoints" and name in services


def _ours_or_the_systems(
    obj: Object, *, applyset: str, app: str, services: set[str], by_uid: dict[str, Object],
    seen: frozenset[str] = frozenset(),
) -> bool:
    """A member, the app's parent or lock, an object the system makes, or an object owned
    (through ownerReferences, within the namespace) by one of those: a ReplicaSet of the
    app's Deployment, its Pods. An owner outside the namespace makes an object foreign: it
    is somebody else's and would die with the namespace."""
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if is_member(obj, applyset) or labels.get(ID_LABEL) == applyset:
        return True
    if (obj.get("kind") == "Lease" and metadata.get("name") == lock_name(app)
            and labels.get("app.kubernetes.io/managed-by") == "syncer"):
        return True
    if _made_by_the_system(obj, services=services):
        return True
    owners = metadata.get("ownerReferences") or []
    if not owners:
        return False
    uid = str(metadata.get("uid", ""))
    for owner in owners:
        owner_uid = str(owner.get("uid", ""))
        parent = by_uid.get(owner_uid)
        if parent is None or owner_uid in seen:
            return False
        if not _ours_or_the_systems(parent, applyset=applyset, app=app, services=services,
                                    by_uid=by_uid, seen=seen | {uid}):
            return False
    return True


def foreign_objects(kube: Kube, namespace: str, *, applyset: str, app: str) -> list[str]:
    """The objects in a namespace that this app does not own (empty: safe to delete).

    A kind that cannot be listed counts as foreign: when in doubt, keep the namespace."""
    everything: list[Object] = []
    resources, undiscovered = kube.listable_resources()
    found = [f"{group_version} (cannot discover: {why})" for group_version, why in sorted(undiscovered.items())
             if group_version.partition("/")[0] not in NOT_CONTENT_GROUPS]
    for resource in resources:
        if not resource.namespaced or resource.group in NOT_CONTENT_GROUPS:
            continue
        try:
            everything.extend(kube.list(resource, namespace=namespace))
        except ClusterError as error:
            found.append(f"{resource.group_kind} (cannot list: {error.message})")
    services = {o["metadata"]["name"] for o in everything if o.get("kind") == "Service" and "/" not in str(o.get("apiVersion"))}
    by_uid = {str(o["metadata"].get("uid")): o for o in everything}
    for obj in everything:
        if not _ours_or_the_systems(obj, applyset=applyset, app=app, services=services, by_uid=by_uid):
            found.append(f"{obj.get('kind')}/{obj['metadata']['name']}")
    return sorted(set(found))


def foreign_custom_resources(kube: Kube, crd: Object, *, applyset: str, limit: int = 5) -> list[str]:
    """Custom resources of a CRD that this app does not own (deleting the CRD deletes them)."""
    resource = crd_resource(crd)
    if resource is None:
        return []
    try:
        objs = kube.list(resource)
    except ClusterError as error:
        return [f"{resource.group_kind} (cannot list: {error.message})"]
    return [str(ObjectRef.of(o)) for o in objs if not is_member(o, applyset)][:limit]


def desired_uids(live_desired: Iterable[tuple[ObjectRef, Object]]) -> dict[str, ObjectRef]:
    return {str(live["metadata"]["uid"]): ref for ref, live in live_desired if live["metadata"].get("uid")}
