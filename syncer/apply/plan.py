"""Planning: what a sync would do, decided by reading the cluster and asking the server.

Reads only. For every desired object it finds the live object (one LIST per kind and
namespace, never a GET per object), proves locally when an apply would change nothing, and
otherwise asks the server with a server-side apply dry-run (`dryRun=All`, the same field
manager as the real apply), which both validates the object and predicts the result. It also
reads the app's ApplySet inventory to find what is no longer in Git (prune candidates).

`syncer diff`, `syncer sync --dry-run` and `syncer sync` all start here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from syncer.apply.applyset import Inventory, is_member, split_group_kind
from syncer.apply.options import SyncOptions
from syncer.apply.order import OrderInfo, order_info, plan_steps
from syncer.apply.prepare import prepare_body
from syncer.diff import ObjectDiff, apply_ignores, compare, owned_fields, proven_unchanged, removed_paths, rules_for
from syncer.errors import ClusterError, Conflict, Invalid, NotFound
from syncer.kube import Kube, Resource
from syncer.model import Manifest, Object, ObjectRef, Origin, split_api_version

log = logging.getLogger(__name__)

RECREATE_ANNOTATION = "syncer.dev/recreate"
PRUNE_ANNOTATION = "syncer.dev/prune"

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class PlannedObject:
    """One desired object and what applying it would do."""

    ref: ObjectRef
    api_version: str
    body: Object
    resource: Resource
    origin: Origin
    live: Object | None
    diff: ObjectDiff | None = None
    deferred: str | None = None
    """Why the server cannot check this object before the sync starts writing (its namespace
    or CustomResourceDefinition is created by the same sync); None when it was checked."""
    blocked_by: ObjectRef | None = None
    """The Namespace or CustomResourceDefinition of this sync that `deferred` waits for."""
    recreate: bool = False
    """An immutable field changes and the object opted in to being deleted and re-created."""
    conflicts: str | None = None
    """Fields owned by other managers that the apply takes over (forced), as the server said."""

    @property
    def action(self) -> str:
        if self.deferred:
            return "create" if self.live is None else "update"
        assert self.diff is not None
        return self.diff.action


@dataclass
class PruneCandidate:
    """A live member of the app's ApplySet that Git no longer has."""

    ref: ObjectRef
    api_version: str
    resource: Resource
    live: Object
    keep: str | None = None
    """Why it is kept (an opt-out annotation); None when it will be deleted."""
    diff: ObjectDiff | None = None


@dataclass
class Plan:
    options: SyncOptions
    revision: str
    inventory: Inventory
    objects: dict[ObjectRef, PlannedObject] = field(default_factory=dict)
    steps: list[list[ObjectRef]] = field(default_factory=list)
    prune: list[PruneCandidate] = field(default_factory=list)
    failures: list[ClusterError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    parent_version: str | None = None
    """resourceVersion of the ApplySet parent when it was read (None: there is none)."""
    parent_annotations: dict[str, str] = field(default_factory=dict)

    def inventory_is_current(self) -> bool:
        """The parent records exactly the desired objects' group-kinds and namespaces (and
        those of the objects it keeps)."""
        kept = [c.ref for c in self.prune]
        return self.inventory.exists and self.inventory.exactly(list(self.objects) + kept).records_same(self.inventory)

    @property
    def changed(self) -> list[PlannedObject]:
        return [o for o in self.objects.values() if o.action != "unchanged"]

    @property
    def deletions(self) -> list[PruneCandidate]:
        return [c for c in self.prune if c.keep is None]

    @property
    def has_changes(self) -> bool:
        return bool(self.changed) or (self.options.prune and bool(self.deletions))

    def diffs(self) -> list[ObjectDiff]:
        """Every object's diff in apply order, then the deletions."""
        result = []
        for step in self.steps:
            for ref in step:
                planned = self.objects[ref]
                if planned.diff is not None:
                    result.append(planned.diff)
        if self.options.prune:
            result.extend(c.diff for c in self.deletions if c.diff is not None)
        return result


def run_concurrently(fn: Callable[[T], R], items: Sequence[T], *, workers: int) -> list[R]:
    """fn over items with a bounded pool, results in input order."""
    if len(items) <= 1 or workers <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def crd_definitions(manifests: Iterable[Manifest]) -> dict[tuple[str, str], tuple[ObjectRef, Resource]]:
    """(group, kind) -> (the CRD's ref, the resource it will serve) for CRDs in the sync."""
    found = {}
    for manifest in manifests:
        obj = manifest.obj
        if manifest.kind != "CustomResourceDefinition" or not manifest.api_version.startswith("apiextensions.k8s.io/"):
            continue
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        versions = spec.get("versions") or [{"name": spec.get("version", "v1")}]
        served = [v for v in versions if isinstance(v, dict) and v.get("served", True)]
        storage = next((v for v in served if v.get("storage")), served[0] if served else {"name": "v1"})
        group, kind = str(spec.get("group", "")), str(names.get("kind", ""))
        found[(group, kind)] = (
            manifest.ref,
            Resource(
                group=group, version=str(storage.get("name")), kind=kind,
                plural=str(names.get("plural", kind.lower() + "s")),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            ),
        )
    return found


@dataclass
class _Resolved:
    manifest: Manifest
    ref: ObjectRef
    resource: Resource
    body: Object
    deferred: str | None
    blocked_by: ObjectRef | None


def _resolve(kube: Kube, manifests: Sequence[Manifest], *, plan: Plan) -> list[_Resolved]:
    """Find each manifest's resource (discovery) and build the body to apply."""
    crds = crd_definitions(manifests)
    resolved = []
    for manifest in manifests:
        group, _ = split_api_version(manifest.api_version)
        deferred, blocked_by = None, None
        try:
            resource = kube.resource_for(manifest.api_version, manifest.kind)
        except NotFound:
            if (group, manifest.kind) not in crds:
                plan.failures.append(NotFound(
                    str(manifest.ref),
                    f"unknown kind {manifest.kind} in {manifest.api_version} ({manifest.origin}): the "
                    "API server does not serve it and no CustomResourceDefinition in this sync defines it",
                    status=404,
                ))
                continue
            blocked_by, resource = crds[(group, manifest.kind)]
            deferred = f"its CustomResourceDefinition {blocked_by.name} is created by this sync"
        body = prepare_body(manifest.obj, applyset=plan.inventory.id, namespaced=resource.namespaced)
        if resource.namespaced and not (body.get("metadata") or {}).get("namespace"):
            body["metadata"]["namespace"] = plan.options.namespace
        if (fallback := kube.apply_fallback(resource)) is not None:
            plan.warnings.append(f"{ObjectRef.of(body)}: {fallback}")
        resolved.append(_Resolved(manifest, ObjectRef.of(body), resource, body, deferred, blocked_by))
    return resolved


ListKey = tuple[Resource, str | None]


def _read_live(
    kube: Kube, keys: Sequence[ListKey], *, workers: int
) -> dict[ListKey, list[Object] | ClusterError]:
    def read(key: ListKey) -> list[Object] | ClusterError:
        resource, namespace = key
        try:
            return kube.list(resource, namespace=namespace)
        except ClusterError as error:
            return error

    return dict(zip(keys, run_concurrently(read, keys, workers=workers)))


def _dry_run(kube: Kube, planned: PlannedObject, *, options: SyncOptions) -> Object:
    """Server-side apply dry-run. Conflicts with other managers are recorded, then forced (or
    turned into an error with --no-force-conflicts)."""
    subject = str(planned.ref)
    try:
        return kube.apply(planned.resource, planned.body, subject=subject,
                          field_manager=options.field_manager, force=False, dry_run=True)
    except Conflict as conflict:
        if not options.force_conflicts:
            raise Conflict(subject, f"{conflict.message}; syncer leaves fields owned by other "
                           "managers alone with --no-force-conflicts (drop the flag to take them over)",
                           status=409) from conflict
        planned.conflicts = conflict.message
        return kube.apply(planned.resource, planned.body, subject=subject,
                          field_manager=options.field_manager, force=True, dry_run=True)


def _explain_invalid(error: Invalid, planned: PlannedObject) -> ClusterError:
    if "immutable" not in error.message:
        return error
    return Invalid(
        error.subject,
        f"{error.message} — an immutable field changes; to delete and re-create the object, "
        f'annotate it with {RECREATE_ANNOTATION}: "true" ({planned.origin})',
        status=error.status, reason=error.reason,
    )


def diff_object(kube: Kube, planned: PlannedObject, *, options: SyncOptions) -> ClusterError | None:
    """Fill in planned.diff (and recreate); return the server's objection, if any."""
    rules = rules_for(planned.ref, planned.body, options.ignore)
    live = planned.live
    if live is not None:
        if proven_unchanged(
            apply_ignores(planned.body, rules=rules, live=live),
            apply_ignores(live, rules=rules, live=live),
            manager=options.field_manager,
        ):
            # What compare(live, predicted=live) would return, without normalising and masking
            # two copies of the live object: on a resync nearly every object takes this path.
            planned.diff = ObjectDiff(planned.ref, planned.api_version, "unchanged", "")
            return None
    try:
        predicted = _dry_run(kube, planned, options=options)
    except Invalid as error:
        wants_recreate = (planned.body["metadata"].get("annotations") or {}).get(RECREATE_ANNOTATION) == "true"
        if live is not None and "immutable" in error.message and wants_recreate:
            planned.recreate = True
            planned.diff = compare(ref=planned.ref, api_version=planned.api_version, live=live,
                                   predicted=planned.body, ignore=rules, text=options.diff_text)
            return None
        return _explain_invalid(error, planned)
    except ClusterError as error:
        return error
    if live is None:
        planned.diff = compare(ref=planned.ref, api_version=planned.api_version, live=None,
                               predicted=planned.body, ignore=rules, text=options.diff_text)
    else:
        owned = owned_fields(live, options.field_manager)
        removed = removed_paths(planned.body, owned) if owned is not None else []
        planned.diff = compare(ref=planned.ref, api_version=planned.api_version, live=live,
                               predicted=predicted, ignore=rules, removed=removed,
                               text=options.diff_text)
    return None


def _prune_candidates(
    kube: Kube,
    *,
    plan: Plan,
    desired: set[ObjectRef],
    listed: dict[ListKey, list[Object] | ClusterError],
) -> None:
    """Live members of the ApplySet (by label, in the recorded group-kinds and namespaces)
    that are not desired."""
    inventory = plan.inventory
    selector = f"applyset.kubernetes.io/part-of={inventory.id}"
    for group_kind in sorted(inventory.group_kinds):
        group, kind = split_group_kind(group_kind)
        try:
            resource = kube.preferred_resource(group, kind)
        except NotFound:
            plan.warnings.append(
                f"{group_kind}: recorded in the inventory but no longer served; its objects cannot be pruned"
            )
            continue
        namespaces: list[str | None] = list(inventory.search_namespaces()) if resource.namespaced else [None]
        for namespace in namespaces:
            cached = next(
                (objs for (res, ns), objs in listed.items()
                 if ns == namespace and res.group == resource.group and res.kind == resource.kind),
                None,
            )
            if isinstance(cached, list):
                members = [o for o in cached if is_member(o, inventory.id)]
            else:
                members = kube.list(resource, namespace=namespace, label_selector=selector)
            for live in members:
                ref = ObjectRef.of(live)
                if ref in desired or ref == inventory.parent:
                    continue
                annotations = (live.get("metadata") or {}).get("annotations") or {}
                keep = None
                if annotations.get(PRUNE_ANNOTATION) == "disabled":
                    keep = f'kept: annotated {PRUNE_ANNOTATION}: "disabled"'
                candidate = PruneCandidate(ref=ref, api_version=str(live.get("apiVersion")),
                                           resource=resource, live=live, keep=keep)
                candidate.diff = compare(ref=ref, api_version=candidate.api_version, live=live, predicted=None,
                                         text=plan.options.diff_text)
                plan.prune.append(candidate)


def build_plan(
    kube: Kube, manifests: Sequence[Manifest], *, options: SyncOptions, revision: str
) -> Plan:
    """Read the cluster and decide, per object, what a sync would do. Writes nothing."""
    plan = Plan(options=options, revision=revision,
                inventory=Inventory.for_app(app=options.app, namespace=options.namespace))
    resolved = _resolve(kube, manifests, plan=plan)

    keys: list[ListKey] = sorted(
        {(r.resource, r.ref.namespace if r.resource.namespaced else None) for r in resolved if not r.deferred},
        key=lambda k: (k[0].group, k[0].kind, k[1] or ""),
    )
    configmaps = kube.resource_for("v1", "ConfigMap")
    parent_key: ListKey = (configmaps, plan.inventory.parent.namespace)
    listed = _read_live(kube, keys, workers=options.concurrency)
    parent_list = listed.get(parent_key)
    if isinstance(parent_list, list):
        parent = next((o for o in parent_list if o["metadata"]["name"] == plan.inventory.parent.name), None)
    else:
        parent = kube.get(configmaps, plan.inventory.parent.name, namespace=plan.inventory.parent.namespace)
    plan.inventory = plan.inventory.read(parent)
    plan.parent_version = parent["metadata"]["resourceVersion"] if parent else None
    plan.parent_annotations = dict((parent or {}).get("metadata", {}).get("annotations") or {})
    if parent is not None and plan.inventory.tooling and not plan.inventory.tooling.startswith("syncer/"):
        plan.failures.append(ClusterError(
            str(plan.inventory.parent),
            f"the ApplySet parent is managed by {plan.inventory.tooling}, not syncer; "
            "choose another app name", status=409,
        ))

    live_by_ref: dict[ObjectRef, Object] = {}
    for (resource, namespace), objs in listed.items():
        if isinstance(objs, ClusterError):
            for r in resolved:
                if r.resource == resource and (r.ref.namespace if resource.namespaced else None) == namespace:
                    plan.failures.append(ClusterError(str(r.ref), f"cannot read the live object: {objs.message}",
                                                      status=objs.status))
            continue
        for obj in objs:
            live_by_ref[ObjectRef.of(obj)] = obj

    created_namespaces = {
        r.ref.name for r in resolved
        if r.ref.group == "" and r.ref.kind == "Namespace" and r.ref not in live_by_ref
    }
    for r in resolved:
        deferred, blocked_by = r.deferred, r.blocked_by
        if deferred is None and r.resource.namespaced and r.ref.namespace in created_namespaces:
            deferred = f"its namespace {r.ref.namespace} is created by this sync"
            blocked_by = ObjectRef(group="", kind="Namespace", namespace=None, name=r.ref.namespace or "")
        plan.objects[r.ref] = PlannedObject(
            ref=r.ref, api_version=r.manifest.api_version, body=r.body, resource=r.resource,
            origin=r.manifest.origin, live=live_by_ref.get(r.ref), deferred=deferred, blocked_by=blocked_by,
        )

    to_check = [p for p in plan.objects.values() if not p.deferred]
    errors = run_concurrently(lambda p: diff_object(kube, p, options=options), to_check,
                              workers=options.concurrency)
    plan.failures.extend(e for e in errors if e is not None)
    for planned in plan.objects.values():
        if planned.deferred:
            planned.diff = compare(ref=planned.ref, api_version=planned.api_version,
                                   live=planned.live, predicted=planned.body,
                                   ignore=rules_for(planned.ref, planned.body, options.ignore),
                                   text=options.diff_text)

    crds = {key: ref for key, (ref, _) in crd_definitions(manifests).items()}
    plan.steps = plan_steps(
        [_with_ref(order_info(r.manifest), r.ref) for r in resolved if r.ref in plan.objects],
        crd_kinds=crds,
    )
    _prune_candidates(kube, plan=plan, desired=set(plan.objects), listed=listed)
    return plan


def _with_ref(info: OrderInfo, ref: ObjectRef) -> OrderInfo:
    """Ordering facts keyed by the resolved identity (namespace defaulted or dropped)."""
    return OrderInfo(ref=ref, wave=info.wave, depends_on=info.depends_on)
