"""Planning: every decision a sync makes, made once, by reading the cluster and asking the server.

Reads only. For every desired object it finds the live object (one LIST per kind and
namespace, never a GET per object), proves locally when an apply would change nothing, and
otherwise asks the server with a server-side apply dry-run (`dryRun=All`, the same field
manager as the real apply), which both validates the object and predicts the result. It
reads the app's ApplySet inventory to find what Git no longer has and runs the prune filters
(`filters.py`) on it.

The result is a `Plan`: per object an `Action`, per prune candidate an `Action` and the name
of the filter that kept it, and an ordered tuple of typed tasks. `syncer diff` prints it,
`syncer sync --dry-run` executes it with every request in dry-run mode, and `syncer sync`
executes it (`executor.py`). Nothing after this module decides whether an object is
created, configured, recreated, kept or deleted.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from syncer.apply.applyset import PART_OF_LABEL, Inventory, is_member, split_group_kind
from syncer.apply.membercache import MemberCache
from syncer.apply.filters import NOT_CONTENT_GROUPS, NOT_THE_APPS, Candidate, PruneContext, desired_uids, keep_reason
from syncer.apply.options import SyncOptions
from syncer.apply.order import OrderInfo, deletion_steps, order_info, plan_steps
from syncer.apply.ownership import opted_in, ownership_failures
from syncer.apply.tasks import (
    WRITING_TASKS,
    ApplyStep,
    CheckBlocked,
    EnsureNamespace,
    PruneStep,
    Task,
    WaitEstablished,
    WaitHealthy,
    WriteInventory,
)
from syncer.apply.prepare import prepare_body
from syncer.apply.updateapply import apply_or_update, fallback_reason
from syncer.diff import ObjectDiff, apply_ignores, compare, owned_fields, proven_unchanged, removed_paths, rules_for
from syncer.errors import ClusterError, Conflict, Forbidden, Invalid, NotFound
from syncer.kube import Kube, Resource, encode
from syncer.model import CHANGING_ACTIONS, Action, Manifest, Object, ObjectRef, Origin, split_api_version

log = logging.getLogger(__name__)

RECREATE_ANNOTATION = "syncer.dev/recreate"

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class PlannedObject:
    """One desired object and what the sync does to it."""

    ref: ObjectRef
    api_version: str
    body: Object
    resource: Resource
    origin: Origin
    live: Object | None
    action: Action = Action.UNCHANGED
    diff: ObjectDiff | None = None
    blocked_by: frozenset[ObjectRef] = frozenset()
    """Namespaces and CustomResourceDefinitions this sync creates that must exist before the
    server can check this object; empty when it was checked at plan time."""
    conflicts: str | None = None
    """Fields owned by other managers that the apply takes over (forced), as the server said."""
    update_instead: str | None = None
    """Why this server cannot server-side apply the kind, so it is updated instead
    (`syncer.apply.updateapply`); None: server-side apply."""

    def write(self, kube: Kube, *, field_manager: str, force: bool, dry_run: bool) -> Object:
        """Apply (or dry-run) this object as the plan decided."""
        return apply_or_update(kube, self.resource, self.body, subject=str(self.ref), encoded=self.encoded,
                               field_manager=field_manager, force=force, dry_run=dry_run,
                               update_instead=self.update_instead)

    @functools.cached_property
    def encoded(self) -> bytes:
        """`body` as sent to the server: encoded once for its dry-run and its apply."""
        return encode(self.body)

    @property
    def waiting_for(self) -> str:
        """Why the server cannot check this object before the sync starts writing."""
        return ", ".join(f"{'its namespace' if b.kind == 'Namespace' else 'its CustomResourceDefinition'} "
                         f"{b.name}" for b in sorted(self.blocked_by)) + " (created by this sync)"


@dataclass(frozen=True)
class PruneDecision:
    """A live member of the app's ApplySet that Git no longer has, and what happens to it."""

    ref: ObjectRef
    api_version: str
    resource: Resource
    live: Object
    action: Action
    """DELETED, KEPT (a filter keeps it) or SKIPPED (pruning is off)."""
    reason: str = ""
    """The name of the filter that keeps it (`foreign-inside`, ...); "" when deleted."""
    message: str = ""
    diff: ObjectDiff | None = None


@dataclass
class Plan:
    options: SyncOptions
    revision: str
    inventory: Inventory
    """The inventory as the parent records it (or as recovered from members' labels)."""
    objects: dict[ObjectRef, PlannedObject] = field(default_factory=dict)
    steps: list[list[ObjectRef]] = field(default_factory=list)
    prune: list[PruneDecision] = field(default_factory=list)
    tasks: tuple[Task, ...] = ()
    failures: list[ClusterError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    parent_version: str | None = None
    """resourceVersion of the ApplySet parent when it was read (None: there is none)."""
    parent_annotations: dict[str, str] = field(default_factory=dict)
    recovery: Recovery | None = None
    """What the label scan found when the parent was missing (None: the parent was read)."""

    @property
    def changed(self) -> list[PlannedObject]:
        return [o for o in self.objects.values() if o.action in CHANGING_ACTIONS]

    @property
    def deletions(self) -> list[PruneDecision]:
        return [d for d in self.prune if d.action is Action.DELETED]

    @property
    def drift(self) -> tuple[str, ...]:
        """The objects this plan would change or delete (deletions exist only with pruning
        on: otherwise a candidate is `skipped`)."""
        return tuple(str(o.ref) for o in self.changed) + tuple(str(d.ref) for d in self.deletions)

    @property
    def writes(self) -> bool:
        """Whether executing the plan writes anything (objects, inventory or prune)."""
        return any(isinstance(t, WRITING_TASKS) or (isinstance(t, ApplyStep) and self._step_writes(t))
                   for t in self.tasks)

    @property
    def has_changes(self) -> bool:
        """What `syncer diff` exits 1 on: the sync would write."""
        return self.writes

    def _step_writes(self, step: ApplyStep) -> bool:
        return any(self.objects[ref].action in CHANGING_ACTIONS for ref in step.refs)

    def inventory_writes(self) -> list[WriteInventory]:
        return [t for t in self.tasks if isinstance(t, WriteInventory)]

    def decisions(self) -> list[tuple[ObjectRef, Action]]:
        """Every object's action, in apply order, then the prune decisions."""
        return ([(ref, self.objects[ref].action) for step in self.steps for ref in step]
                + [(d.ref, d.action) for d in self.prune])

    def diffs(self) -> list[ObjectDiff]:
        """Every object's diff in apply order, then the deletions."""
        result = [self.objects[ref].diff for step in self.steps for ref in step]
        result.extend(d.diff for d in self.deletions)
        return [d for d in result if d is not None]


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
    new_crd: ObjectRef | None
    """The CRD of this sync that defines the kind, when the server does not serve it yet."""
    update_instead: str | None


def _resolve(kube: Kube, manifests: Sequence[Manifest], *, plan: Plan) -> list[_Resolved]:
    """Find each manifest's resource (discovery) and build the body to apply."""
    crds = crd_definitions(manifests)
    resolved = []
    for manifest in manifests:
        group, _ = split_api_version(manifest.api_version)
        new_crd = None
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
            new_crd, resource = crds[(group, manifest.kind)]
        body = prepare_body(manifest.obj, applyset=plan.inventory.id, namespaced=resource.namespaced)
        if resource.namespaced and not (body.get("metadata") or {}).get("namespace"):
            body["metadata"]["namespace"] = plan.options.namespace
        update_instead = fallback_reason(resource.group_kind, kube.server_version())
        if update_instead is not None:
            plan.warnings.append(f"{ObjectRef.of(body)}: {update_instead}")
        resolved.append(_Resolved(manifest, ObjectRef.of(body), resource, body, new_crd, update_instead))
    return resolved


ListKey = tuple[Resource, str | None]


def read_live(
    kube: Kube, wanted: dict[ListKey, set[str]], *, applyset: str, cache: MemberCache | None, workers: int
) -> dict[ListKey, list[Object] | ClusterError]:
    """Each kind and namespace's live objects: from the cache when every wanted name there is
    a member of this app's ApplySet, else one LIST. An object that is missing, unlabelled or
    another app's is read from the API server, with this sync's credentials."""
    def read(key: ListKey) -> list[Object] | ClusterError:
        resource, namespace = key
        cached = cache.members(resource, namespace) if cache is not None else None
        if cached is not None:
            ours = [obj for obj in cached if is_member(obj, applyset)]
            if wanted[key] <= {obj["metadata"]["name"] for obj in ours}:
                return ours
        try:
            return kube.list(resource, namespace=namespace)
        except ClusterError as error:
            return error

    keys = list(wanted)
    return dict(zip(keys, run_concurrently(read, keys, workers=workers)))


def dry_run_apply(kube: Kube, planned: PlannedObject, *, options: SyncOptions) -> tuple[Object, str | None]:
    """Server-side apply dry-run: the predicted object, and the fields it takes over from other
    managers (forced), or a Conflict with --no-force-conflicts."""
    try:
        return planned.write(kube, field_manager=options.field_manager, force=False, dry_run=True), None
    except Conflict as conflict:
        if not options.force_conflicts:
            raise Conflict(str(planned.ref), f"{conflict.message}; syncer leaves fields owned by other "
                           "managers alone with --no-force-conflicts (drop the flag to take them over)",
                           status=409) from conflict
        return planned.write(kube, field_manager=options.field_manager, force=True, dry_run=True), conflict.message


def _explain_immutable(error: Invalid, planned: PlannedObject) -> ClusterError:
    fields = error.immutable_fields()
    if not fields:
        return error
    return Invalid(
        error.subject,
        f"{error.message} — immutable field(s) {', '.join(fields)} change; to delete and re-create "
        f'the object, annotate it with {RECREATE_ANNOTATION}: "true" ({planned.origin})',
        status=error.status, reason=error.reason, details=error.details,
    )


def project(live: Any, onto: Any) -> Any:
    """The parts of `live` at the paths `onto` sets (into maps, and into lists item by item
    when both have the same length; anything else whole): what a re-created object is
    compared with, so that server defaults and status, which a create sets again, do not
    show as removed."""
    if isinstance(onto, dict) and isinstance(live, dict):
        return {key: project(live[key], value) for key, value in onto.items() if key in live}
    if isinstance(onto, list) and isinstance(live, list) and len(onto) == len(live):
        return [project(item, wanted) for item, wanted in zip(live, onto)]
    return live


def check_object(kube: Kube, planned: PlannedObject, *, options: SyncOptions) -> ClusterError | None:
    """Decide planned.action and planned.diff; return the server's objection, if any."""
    rules = rules_for(planned.ref, planned.body, options.ignore)
    live = planned.live
    if live is not None and proven_unchanged(
        apply_ignores(planned.body, rules=rules, live=live),
        apply_ignores(live, rules=rules, live=live),
        manager=options.field_manager,
    ):
        # What compare(live, predicted=live) would return, without normalising and masking
        # two copies of the live object: on a resync nearly every object takes this path.
        planned.action = Action.UNCHANGED
        planned.diff = ObjectDiff(planned.ref, planned.api_version, Action.UNCHANGED, "")
        return None
    try:
        predicted, planned.conflicts = dry_run_apply(kube, planned, options=options)
    except Invalid as error:
        if live is not None and error.immutable_fields() and opted_in(planned.body, RECREATE_ANNOTATION):
            diff = compare(ref=planned.ref, api_version=planned.api_version, live=project(live, planned.body),
                           predicted=planned.body, ignore=rules, text=options.diff_text)
            planned.action = Action.RECREATED
            planned.diff = ObjectDiff(planned.ref, planned.api_version, Action.RECREATED, diff.diff,
                                      changed=diff.changed)
            return None
        return _explain_immutable(error, planned)
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
    planned.action = planned.diff.action
    return None


# -- the inventory ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recovery:
    """The members a label scan found, and what it has to say about them."""

    members: tuple[ObjectRef, ...]
    warnings: tuple[str, ...]


def _recover_inventory(kube: Kube, plan: Plan, *, namespaces: Iterable[str]) -> Recovery:
    """The parent is missing: find the app's members by their `part-of` label, so that what
    Git removed meanwhile is still pruned. One LIST per kind (cluster-wide, or per namespace
    for credentials that may not list cluster-wide), `concurrency` at a time: on a first sync
    these are most of its reads."""
    inventory = plan.inventory
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

    content = [r for r in resources if r.group not in NOT_CONTENT_GROUPS and r.kind != "Event"]
    results = run_concurrently(search, content, workers=plan.options.concurrency)
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


def _read_parent(
    kube: Kube, plan: Plan, listed: dict[ListKey, list[Object] | ClusterError], *, cache: MemberCache | None
) -> Object | None:
    parent = plan.inventory.parent
    if cache is not None:
        known, live = cache.parent(parent.namespace or "", parent.name)
        if known:
            return live
    configmaps = kube.resource_for("v1", "ConfigMap")
    parent_list = listed.get((configmaps, plan.inventory.parent.namespace))
    if isinstance(parent_list, list):
        return next((o for o in parent_list if o["metadata"]["name"] == plan.inventory.parent.name), None)
    return kube.get(configmaps, plan.inventory.parent.name, namespace=plan.inventory.parent.namespace)


# -- prune decisions ------------------------------------------------------------------------------

def _members(
    kube: Kube, plan: Plan, listed: dict[ListKey, list[Object] | ClusterError], *, cache: MemberCache | None
) -> list[tuple[Resource, Object]]:
    """Live members of the ApplySet, by label, in the recorded group-kinds and namespaces."""
    inventory = plan.inventory
    selector = f"{PART_OF_LABEL}={inventory.id}"
    members: list[tuple[Resource, Object]] = []
    for group_kind in sorted(inventory.group_kinds):
        group, kind = split_group_kind(group_kind)
        try:
            resource = kube.preferred_resource(group, kind)
        except NotFound:
            plan.warnings.append(
                f"{group_kind}: recorded in the inventory but no longer served; its objects cannot be pruned")
            continue
        namespaces: list[str | None] = list(inventory.search_namespaces()) if resource.namespaced else [None]
        for namespace in namespaces:
            cached = next((objs for (res, ns), objs in listed.items()
                           if ns == namespace and res.group == resource.group and res.kind == resource.kind), None)
            if not isinstance(cached, list) and cache is not None:
                cached = cache.members(resource, namespace)
            if isinstance(cached, list):
                live = [o for o in cached if is_member(o, inventory.id)]
            else:
                live = kube.list(resource, namespace=namespace, label_selector=selector)
            members.extend((resource, o) for o in live)
    return members


def _decide_prune(
    kube: Kube, plan: Plan, listed: dict[ListKey, list[Object] | ClusterError], *, cache: MemberCache | None
) -> list[PruneDecision]:
    desired = set(plan.objects)
    context = PruneContext(
        kube=kube, applyset=plan.inventory.id, app=plan.options.app, field_manager=plan.options.field_manager,
        desired=frozenset(desired),
        desired_uids=desired_uids((ref, p.live) for ref, p in plan.objects.items() if p.live is not None),
    )
    decisions = []
    for resource, live in _members(kube, plan, listed, cache=cache):
        ref = ObjectRef.of(live)
        if ref in desired or ref == plan.inventory.parent:
            continue
        candidate = Candidate(ref=ref, api_version=str(live.get("apiVersion")), resource=resource, live=live)
        kept = keep_reason(candidate, context)
        diff = compare(ref=ref, api_version=candidate.api_version, live=live, predicted=None,
                       text=plan.options.diff_text)
        if kept is not None:
            action, reason, message = Action.KEPT, kept[0], f"kept: {kept[1]}"
        elif not plan.options.prune:
            action, reason, message = Action.SKIPPED, "prune-off", "not pruned: pruning is off (--no-prune)"
        else:
            action, reason, message = Action.DELETED, "", "pruned: no longer in the source"
        decisions.append(PruneDecision(ref=ref, api_version=candidate.api_version, resource=resource, live=live,
                                       action=action, reason=reason, message=message, diff=diff))
    return sorted(decisions, key=lambda d: d.ref)


# -- tasks ---------------------------------------------------------------------------------------

def _tasks(plan: Plan) -> tuple[Task, ...]:
    tasks: list[Task] = []
    home = ObjectRef(group="", kind="Namespace", namespace=None, name=plan.inventory.parent.namespace or "")
    if home in plan.objects and plan.objects[home].live is None:
        tasks.append(EnsureNamespace(home))

    desired = list(plan.objects)
    kept = [d.ref for d in plan.prune if d.action is not Action.DELETED and d.reason not in NOT_THE_APPS]
    widened = plan.inventory.including(desired)
    final = plan.inventory.exactly(desired + kept)
    if not plan.inventory.exists or not widened.records_same(plan.inventory):
        tasks.append(WriteInventory(widened, "widen"))

    checked: set[ObjectRef] = set()
    created_before: set[ObjectRef] = set()
    for index, step in enumerate(plan.steps):
        ready = tuple(ref for s in plan.steps[index:] for ref in s
                      if plan.objects[ref].blocked_by and ref not in checked
                      and plan.objects[ref].blocked_by <= created_before)
        if ready:
            tasks.append(CheckBlocked(ready))
            checked.update(ready)
        tasks.append(ApplyStep(index, tuple(step)))
        new_crds = tuple(ref for ref in step if ref.kind == "CustomResourceDefinition"
                         and ref.group == "apiextensions.k8s.io" and plan.objects[ref].action in CHANGING_ACTIONS)
        if new_crds:
            tasks.append(WaitEstablished(new_crds))
        created_before.update(step)

    for step in deletion_steps(d.ref for d in plan.deletions):
        tasks.append(PruneStep(tuple(step)))
    if not final.records_same(widened):
        tasks.append(WriteInventory(final, "narrow"))
    if plan.options.wait:
        tasks.append(WaitHealthy(tuple(desired)))
    return tuple(tasks)


def build_plan(
    kube: Kube, manifests: Sequence[Manifest], *, options: SyncOptions, revision: str,
    cache: MemberCache | None = None, recovery: Recovery | None = None,
) -> Plan:
    """Read the cluster (or, where it can answer, the daemon's cache of the apps' members) and
    decide, per object, what a sync does. Writes nothing. `recovery`: the label scan of an
    earlier plan of the same sync, used again if the parent is still missing."""
    plan = Plan(options=options, revision=revision,
                inventory=Inventory.for_app(app=options.app, namespace=options.namespace))
    resolved = _resolve(kube, manifests, plan=plan)

    wanted: dict[ListKey, set[str]] = {}
    for r in sorted((r for r in resolved if not r.new_crd),
                    key=lambda r: (r.resource.group, r.resource.kind, r.ref.namespace or "")):
        wanted.setdefault((r.resource, r.ref.namespace if r.resource.namespaced else None), set()).add(r.ref.name)
    listed = read_live(kube, wanted, applyset=plan.inventory.id, cache=cache, workers=options.concurrency)
    parent = _read_parent(kube, plan, listed, cache=cache)
    plan.parent_version = parent["metadata"]["resourceVersion"] if parent else None
    plan.parent_annotations = dict((parent or {}).get("metadata", {}).get("annotations") or {})
    plan.inventory = plan.inventory.read(parent)
    if parent is None:
        plan.recovery = recovery or _recover_inventory(
            kube, plan, namespaces=[options.namespace, *(r.ref.namespace for r in resolved if r.ref.namespace)])
        plan.inventory = plan.inventory.including(list(plan.recovery.members))
        plan.warnings.extend(plan.recovery.warnings)
    elif plan.inventory.tooling and not plan.inventory.tooling.startswith("syncer/"):
        plan.failures.append(ClusterError(
            str(plan.inventory.parent),
            f"the ApplySet parent is managed by {plan.inventory.tooling}, not syncer; "
            "choose another app name", status=409,
        ))

    # By the list of the version the manifest declares: one stored object is served under
    # several versions (Ingress in extensions/v1beta1, networking.k8s.io/v1beta1 and v1), and
    # the diff must compare it in the declared one.
    live_by_list: dict[ListKey, dict[str, Object]] = {}
    for (resource, namespace), objs in listed.items():
        if isinstance(objs, ClusterError):
            for r in resolved:
                if r.resource == resource and (r.ref.namespace if resource.namespaced else None) == namespace:
                    plan.failures.append(ClusterError(str(r.ref), f"cannot read the live object: {objs.message}",
                                                      status=objs.status))
            continue
        live_by_list[(resource, namespace)] = {obj["metadata"]["name"]: obj for obj in objs}

    def live_of(r: _Resolved) -> Object | None:
        return live_by_list.get((r.resource, r.ref.namespace if r.resource.namespaced else None), {}).get(r.ref.name)

    new_namespaces = {
        r.ref.name: r.ref for r in resolved
        if r.ref.group == "" and r.ref.kind == "Namespace" and not r.new_crd and live_of(r) is None
    }
    for r in resolved:
        blocked_by = {r.new_crd} if r.new_crd else set()
        if r.resource.namespaced and r.ref.namespace in new_namespaces:
            blocked_by.add(new_namespaces[r.ref.namespace])
        plan.objects[r.ref] = PlannedObject(
            ref=r.ref, api_version=r.manifest.api_version, body=r.body, resource=r.resource,
            origin=r.manifest.origin, live=live_of(r), blocked_by=frozenset(blocked_by),
            update_instead=r.update_instead,
        )

    plan.failures.extend(ownership_failures(kube, plan.objects.values(), inventory=plan.inventory,
                                            app=options.app, namespace=options.namespace))
    to_check = [p for p in plan.objects.values() if not p.blocked_by]
    errors = run_concurrently(lambda p: check_object(kube, p, options=options), to_check,
                              workers=options.concurrency)
    plan.failures.extend(e for e in errors if e is not None)
    for planned in plan.objects.values():
        if planned.blocked_by:
            planned.action = Action.CREATED
            planned.diff = compare(ref=planned.ref, api_version=planned.api_version, live=None,
                                   predicted=planned.body,
                                   ignore=rules_for(planned.ref, planned.body, options.ignore),
                                   text=options.diff_text)

    crds = {key: ref for key, (ref, _) in crd_definitions(manifests).items()}
    plan.steps = plan_steps(
        [_with_ref(order_info(r.manifest), r.ref) for r in resolved if r.ref in plan.objects],
        crd_kinds=crds,
    )
    plan.prune = _decide_prune(kube, plan, listed, cache=cache)
    plan.tasks = _tasks(plan)
    return plan


def _with_ref(info: OrderInfo, ref: ObjectRef) -> OrderInfo:
    """Ordering facts keyed by the resolved identity (namespace defaulted or dropped)."""
    return OrderInfo(ref=ref, wave=info.wave, depends_on=info.depends_on)
