"""The sync: plan, guard, lock, execute. `syncer sync`, `syncer diff` and the daemon call this.

Validate everything, then write: the plan's server-side dry-runs must all pass before the
first write. Two things cannot be checked that early and are checked as soon as they can be,
before any object that depends on them is written: objects in a namespace the sync creates,
and custom resources whose CustomResourceDefinition the sync creates. When the app's own
namespace (home of its inventory and lock) is new, it is created first and everything in it is
then checked before anything else is written; if that check fails the new, empty namespace is
deleted again.

A sync that would change nothing writes nothing, not even its lock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from syncer.apply.applier import Reporter, StepReporter, execute
from syncer.apply.changeset import Change, ChangeSet
from syncer.apply.lock import AppLock
from syncer.apply.options import SyncOptions
from syncer.apply.plan import ListKey, Plan, build_plan
from syncer.apply.prune import prune
from syncer.errors import ClusterError, NotFound, SyncerError, ValidationFailed
from syncer.kube import Kube
from syncer.model import Manifest, ObjectRef

log = logging.getLogger(__name__)


class EmptySourceRefused(SyncerError):
    """The source rendered nothing while the app owns objects: pruning would delete them all."""


def plan_sync(kube: Kube, manifests: Sequence[Manifest], *, options: SyncOptions, revision: str) -> Plan:
    """Plan and apply the guard rails; raises ValidationFailed / EmptySourceRefused."""
    plan = build_plan(kube, manifests, options=options, revision=revision)
    if plan.failures:
        raise ValidationFailed(plan.failures)
    if not manifests and options.prune and not options.allow_empty and (plan.prune or plan.inventory.group_kinds):
        raise EmptySourceRefused(
            f"app {options.app}: the source rendered no objects, but the app owns "
            f"{len(plan.prune)} object(s) in the cluster; refusing to prune them all. "
            "Check --path and --revision, or pass --allow-empty to delete everything the app owns."
        )
    return plan


def _fingerprint(plan: Plan) -> dict[ObjectRef, str]:
    """resourceVersions of everything the plan read, to tell whether the cluster moved since."""
    versions = {ref: p.live["metadata"]["resourceVersion"] for ref, p in plan.objects.items() if p.live}
    versions.update({c.ref: c.live["metadata"]["resourceVersion"] for c in plan.prune})
    if plan.parent_version:
        versions[plan.inventory.parent] = plan.parent_version
    return versions


def _current_fingerprint(kube: Kube, plan: Plan) -> dict[ObjectRef, str]:
    keys: set[ListKey] = {
        (p.resource, p.ref.namespace if p.resource.namespaced else None)
        for p in plan.objects.values() if not p.deferred
    }
    keys |= {(c.resource, c.ref.namespace) for c in plan.prune}
    keys.add((kube.resource_for("v1", "ConfigMap"), plan.inventory.parent.namespace))
    relevant = set(plan.objects) | {c.ref for c in plan.prune} | {plan.inventory.parent}
    versions: dict[ObjectRef, str] = {}
    for resource, namespace in keys:
        for obj in kube.list(resource, namespace=namespace):
            ref = ObjectRef.of(obj)
            labels = obj["metadata"].get("labels") or {}
            if ref in relevant or labels.get("applyset.kubernetes.io/part-of") == plan.inventory.id:
                versions[ref] = obj["metadata"]["resourceVersion"]
    return versions


def dry_run_changes(kube: Kube, plan: Plan, *, report: Reporter) -> ChangeSet:
    """What a sync would do, every write replaced by the server's dry-run."""
    changes = ChangeSet(app=plan.options.app, revision=plan.revision, dry_run=True, warnings=list(plan.warnings),
                        inventory_annotations=plan.parent_annotations)
    names = {"create": "created", "update": "configured", "unchanged": "unchanged"}
    for step in plan.steps:
        for ref in step:
            planned = plan.objects[ref]
            action = "recreated" if planned.recreate else names[planned.action]
            message = f"not checked by the server yet: {planned.deferred}" if planned.deferred else ""
            change = Change(ref=ref, api_version=planned.api_version, action=action, message=message)  # type: ignore[arg-type]
            changes.changes.append(change)
            report(change)
    if plan.options.prune and plan.prune:
        pruned, errors = prune(kube, plan.prune, applyset=plan.inventory.id, dry_run=True,
                               workers=plan.options.concurrency, report=report)
        changes.changes.extend(pruned)
        if errors:
            changes.error = "; ".join(str(e) for e in errors)
    return changes


def _bootstrap_namespace(kube: Kube, plan: Plan) -> ObjectRef | None:
    """Create the app's namespace when it is new: the inventory and the lock live in it.
    Returns its ref when it was created here."""
    namespace = plan.inventory.parent.namespace
    ref = ObjectRef(group="", kind="Namespace", namespace=None, name=namespace or "")
    planned = plan.objects.get(ref)
    if planned is None or planned.live is not None:
        return None
    kube.apply(planned.resource, planned.body, subject=str(ref), field_manager=plan.options.field_manager,
               force=plan.options.force_conflicts, dry_run=False)
    return ref


def _undo_bootstrap(kube: Kube, ref: ObjectRef) -> None:
    namespaces = kube.resource_for("v1", "Namespace")
    live = kube.get(namespaces, ref.name)
    if live is not None:
        kube.delete(namespaces, ref.name, namespace=None, subject=str(ref), uid=live["metadata"]["uid"])


def sync(
    kube: Kube,
    manifests: Sequence[Manifest],
    *,
    options: SyncOptions,
    revision: str,
    report: Reporter = lambda change: None,
    on_step: StepReporter = lambda index, total, size: None,
) -> ChangeSet:
    """Make the cluster match the manifests. Raises for failures before the first write
    (validation, guard rails, lock); returns a ChangeSet (possibly with an error) otherwise."""
    plan = plan_sync(kube, manifests, options=options, revision=revision)
    if options.dry_run:
        return dry_run_changes(kube, plan, report=report)
    if not plan.has_changes and plan.inventory_is_current():
        changes = ChangeSet(app=options.app, revision=revision, warnings=list(plan.warnings),
                            inventory_annotations=plan.parent_annotations)
        for step in plan.steps:
            for ref in step:
                change = Change(ref=ref, api_version=plan.objects[ref].api_version, action="unchanged")
                changes.changes.append(change)
                report(change)
        for candidate in plan.prune:
            if candidate.keep or not options.prune:
                change = Change(ref=candidate.ref, api_version=candidate.api_version, action="skipped",
                                message=candidate.keep or "not pruned: pruning is off (--no-prune)")
                changes.changes.append(change)
                report(change)
        return changes

    namespace = plan.inventory.parent.namespace or options.namespace
    created = _bootstrap_namespace(kube, plan)
    lock = AppLock(kube, app=options.app, namespace=namespace, timeout=options.lock_timeout)
    try:
        lock.acquire()
    except NotFound as error:  # the lock's namespace is missing: nothing was written
        raise ValidationFailed([ClusterError(
            f"Namespace/{namespace}",
            f"app {options.app} keeps its inventory and lock in namespace {namespace}, which does not "
            f"exist ({error.message}); create it, add a Namespace manifest to the source, or choose "
            "another --namespace",
            status=404,
        )]) from error
    try:
        if created is not None or _current_fingerprint(kube, plan) != _fingerprint(plan):
            log.info("app %s: the cluster changed since planning; planning again under the lock", options.app)
            try:
                plan = plan_sync(kube, manifests, options=options, revision=revision)
            except ValidationFailed:
                if created is not None:
                    _undo_bootstrap(kube, created)
                raise
        result = execute(kube, plan, report=report, on_step=on_step)
        result.inventory_annotations = plan.parent_annotations
        if created is not None:
            for index, change in enumerate(result.changes):
                if change.ref == created and change.action == "unchanged":
                    result.changes[index] = Change(ref=created, api_version="v1", action="created")
        return result
    finally:
        lock.release()
