"""Planning: every decision a sync makes, made once, by reading the cluster and asking the server.

`build_plan` is the one entry point, and it only reads. It resolves each manifest's resource
(discovery, or the CRD of this sync that defines the kind), reads the live state (`live.py`),
decides each desired object in a worker pool (`check.py`: proven unchanged locally, or a
server-side apply dry-run), decides the prune candidates of the app's ApplySet inventory
(`prune.py`, with the named filters of `filters.py`), orders the objects into steps
(`order.py`) and solves the decisions into tasks (`solver.py`).

The result is a frozen `Plan` (`planned.py`). `syncer diff` prints it, `syncer sync --dry-run`
executes it with every request in dry-run mode, and `syncer sync` executes it
(`executor.py`). Nothing after this module decides whether an object is created, configured,
recreated, kept or deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from syncer.apply.applyset import TOOLING_ANNOTATION, Inventory, foreign_tooling, is_member
from syncer.apply.budget import BudgetCheck, check_budget
from syncer.apply.check import assumed_created, check_object
from syncer.apply.crds import crd_group_kind, crd_resource, is_crd, is_namespace
from syncer.apply.live import ListKey, Recovery, members, read_live, read_parent, recover_inventory
from syncer.apply.membercache import MemberReads
from syncer.apply.options import SyncOptions
from syncer.apply.order import OrderInfo, order_info, plan_steps
from syncer.apply.ownership import ownership_failures
from syncer.apply.planned import Check, Desired, Plan, PlannedObject, PruneDecision
from syncer.apply.pool import run_concurrently
from syncer.apply.prepare import prepare_body
from syncer.apply.filters import NOT_THE_APPS
from syncer.apply.prune import decide_prune, unused_confirmations
from syncer.apply.solver import solve
from syncer.apply.updateapply import fallback_reason
from syncer.apply.upgrade import legacy_inventory
from syncer.errors import ClusterError, NotFound
from syncer.kube import Kube, Resource
from syncer.model import Manifest, Object, ObjectRef, split_api_version

log = logging.getLogger(__name__)


def crd_definitions(manifests: Sequence[Manifest]) -> dict[tuple[str, str], tuple[ObjectRef, Object]]:
    """(group, kind) -> (the CRD's ref, the CRD) for the CRDs in the sync."""
    return {crd_group_kind(m.obj): (m.ref, m.obj) for m in manifests
            if is_crd(m.ref) and m.api_version.startswith("apiextensions.k8s.io/")}


@dataclass(frozen=True)
class _Resolved:
    manifest: Manifest
    ref: ObjectRef
    resource: Resource
    body: Object
    new_crd: ObjectRef | None
    """The CRD of this sync that defines the kind, when the server does not serve it yet."""
    update_instead: str | None


def _resolve(
    kube: Kube, manifests: Sequence[Manifest], *, inventory: Inventory, namespace: str,
) -> tuple[list[_Resolved], list[ClusterError], list[str]]:
    """Each manifest's resource (discovery, or its CRD in this sync) and the body to apply;
    the manifests that have none; warnings."""
    crds = crd_definitions(manifests)
    resolved: list[_Resolved] = []
    failures: list[ClusterError] = []
    warnings: list[str] = []
    for manifest in manifests:
        group, version = split_api_version(manifest.api_version)
        new_crd = None
        try:
            resource = kube.resource_for(manifest.api_version, manifest.kind)
        except NotFound:
            defined = crds.get((group, manifest.kind))
            served = crd_resource(defined[1], version=version) if defined else None
            if defined is None:
                failures.append(NotFound(str(manifest.ref), f"{_not_served(kube, manifest)}, and no "
                                         f"CustomResourceDefinition in this sync defines it ({manifest.origin})",
                                         status=404))
                continue
            if served is None:
                failures.append(NotFound(
                    str(manifest.ref), f"unknown kind {manifest.kind} in {manifest.api_version} "
                    f"({manifest.origin}): its CustomResourceDefinition {defined[0].name} in this sync "
                    f"does not serve version {version}", status=404))
                continue
            new_crd, resource = defined[0], served
        body = prepare_body(manifest.obj, applyset=inventory.id, namespaced=resource.namespaced)
        if resource.namespaced and not (body.get("metadata") or {}).get("namespace"):
            body["metadata"]["namespace"] = namespace
        update_instead = fallback_reason(resource.group_kind, kube.server_version())
        if update_instead is not None:
            warnings.append(f"{ObjectRef.of(body)}: {update_instead}")
        resolved.append(_Resolved(manifest, ObjectRef.of(body), resource, body, new_crd, update_instead))
    return resolved, failures, warnings


def _not_served(kube: Kube, manifest: Manifest) -> str:
    """Why a manifest's kind cannot be applied here, as the server's discovery says it: an
    API version that is newer than the server (batch/v1 CronJob on Kubernetes 1.20) names the
    server's release and the version it serves the kind in, if any."""
    version = kube.server_version()
    facts = [f"Kubernetes {'.'.join(map(str, version))}"] if version else []
    group, _ = split_api_version(manifest.api_version)
    try:
        served = kube.preferred_resource(group, manifest.kind)
    except ClusterError:
        served = None
    if served is not None and served.api_version != manifest.api_version:
        facts.append(f"it serves {manifest.kind} as {served.api_version}")
    detail = f" ({'; '.join(facts)})" if facts else ""
    return f"{manifest.api_version} {manifest.kind} is not served by this API server{detail}"


def _list_key(r: _Resolved) -> ListKey:
    return r.resource, r.ref.namespace if r.resource.namespaced else None


def build_plan(
    kube: Kube, manifests: Sequence[Manifest], *, options: SyncOptions, revision: str,
    cache: MemberReads | None = None, recovery: Recovery | None = None,
) -> Plan:
    """Read the cluster (or, where it can answer, the daemon's cache of the apps' members) and
    decide, per object, what a sync does. Writes nothing. `recovery`: the label scan of an
    earlier plan of the same sync, used again if the parent is still missing."""
    inventory = Inventory.for_app(app=options.app, namespace=options.inventory_namespace)
    resolved, failures, warnings = _resolve(kube, manifests, inventory=inventory, namespace=options.namespace)

    wanted: dict[ListKey, set[str]] = {}
    for r in sorted((r for r in resolved if not r.new_crd),
                    key=lambda r: (r.resource.group, r.resource.kind, r.ref.namespace or "")):
        wanted.setdefault(_list_key(r), set()).add(r.ref.name)
    listed = read_live(kube, wanted, applyset=inventory.id, cache=cache, workers=options.concurrency)
    parent = read_parent(kube, inventory, listed, cache=cache)
    inventory = inventory.read(parent)
    if parent is None:
        namespaces = [options.inventory_namespace, options.namespace,
                      *(r.ref.namespace for r in resolved if r.ref.namespace)]
        recovery = recovery or recover_inventory(kube, inventory, namespaces=namespaces, cache=cache,
                                                 workers=options.concurrency)
        inventory = inventory.including(list(recovery.members))
        warnings.extend(recovery.warnings)
    else:
        recovery = None
        if (tooling := foreign_tooling(inventory)) is not None:
            failures.append(ClusterError(
                str(inventory.parent),
                f"the parent of app {options.app}'s ApplySet is managed by {tooling} (its {TOOLING_ANNOTATION} "
                "annotation), not by syncer; syncer neither changes nor prunes another tool's ApplySet: choose "
                "another app name", status=409,
            ))

    # By the list of the version the manifest declares: one stored object is served under
    # several versions (Ingress in extensions/v1beta1, networking.k8s.io/v1beta1 and v1), and
    # the diff must compare it in the declared one.
    live_by_list: dict[ListKey, dict[str, Object]] = {}
    for key, objs in listed.items():
        if isinstance(objs, ClusterError):
            failures.extend(ClusterError(str(r.ref), f"cannot read the live object: {objs.message}", status=objs.status)
                            for r in resolved if _list_key(r) == key)
            continue
        live_by_list[key] = {obj["metadata"]["name"]: obj for obj in objs}

    def live_of(r: _Resolved) -> Object | None:
        return live_by_list.get(_list_key(r), {}).get(r.ref.name)

    new_namespaces = {r.ref.name: r.ref for r in resolved
                      if is_namespace(r.ref) and not r.new_crd and live_of(r) is None}
    desired: dict[ObjectRef, Desired] = {}
    for r in resolved:
        blocked_by = {r.new_crd} if r.new_crd else set()
        if r.resource.namespaced and r.ref.namespace in new_namespaces:
            blocked_by.add(new_namespaces[r.ref.namespace])
        desired[r.ref] = Desired(ref=r.ref, api_version=r.manifest.api_version, body=r.body, resource=r.resource,
                                 origin=r.manifest.origin, live=live_of(r), blocked_by=frozenset(blocked_by),
                                 update_instead=r.update_instead)

    failures.extend(ownership_failures(kube, desired.values(), inventory=inventory,
                                       app=options.app, namespace=options.inventory_namespace,
                                       legacy=legacy_inventory(options)))
    to_check = [d for d in desired.values() if not d.blocked_by]
    checked = dict(zip((d.ref for d in to_check),
                       run_concurrently(lambda d: check_object(kube, d, options=options), to_check,
                                        workers=options.concurrency)))
    objects: dict[ObjectRef, PlannedObject] = {}
    for ref, d in desired.items():
        check = checked[ref] if ref in checked else assumed_created(d, options=options)
        if isinstance(check, Check):
            objects[ref] = PlannedObject(d, check)
        else:
            failures.append(check)

    crds = {key: ref for key, (ref, _) in crd_definitions(manifests).items()}
    steps = plan_steps([_with_ref(order_info(r.manifest), r.ref) for r in resolved if r.ref in objects],
                       crd_kinds=crds)
    found, unserved = members(kube, inventory, listed, cache=cache)
    warnings.extend(unserved)
    prune = decide_prune(kube, found, desired=desired, inventory=inventory, options=options)
    warnings.extend(unused_confirmations(options.confirm_prune, prune))
    plan = Plan(
        options=options, revision=revision, inventory=inventory, objects=objects,
        steps=tuple(tuple(step) for step in steps), prune=prune,
        budget=_budget(desired.values(), prune, inventory=inventory, options=options, empty=not manifests),
        failures=tuple(failures), warnings=tuple(warnings),
        parent_version=parent["metadata"]["resourceVersion"] if parent else None,
        parent_annotations=dict((parent or {}).get("metadata", {}).get("annotations") or {}),
        recovery=recovery,
    )
    return replace(plan, tasks=solve(plan))


def _budget(
    desired: Iterable[Desired], prune: Sequence[PruneDecision], *, inventory: Inventory, options: SyncOptions,
    empty: bool,
) -> BudgetCheck | None:
    """The plan's deletions against the app's members: its live members Git still has and
    those it no longer has (kept ones included; not a controller's copy of the label). Not
    counted when the user let every prune through: `--confirm-prune-all`, or `--allow-empty`
    for a source that renders nothing (deleting the whole app is what it asks for)."""
    if not options.prune or options.confirm_prune_all or (empty and options.allow_empty):
        return None
    members = sum(1 for d in desired if d.live is not None and is_member(d.live, inventory.id))
    members += sum(1 for d in prune if d.reason not in NOT_THE_APPS)
    return check_budget((d.action for d in prune), members=members, budget=options.max_prune)


def _with_ref(info: OrderInfo, ref: ObjectRef) -> OrderInfo:
    """Ordering facts keyed by the resolved identity (namespace defaulted or dropped)."""
    return OrderInfo(ref=ref, wave=info.wave, depends_on=info.depends_on)
