"""Executing a plan: the only place syncer writes to the cluster (with prune.py and lock.py).

Order of work, each stage only when the one before succeeded:
1. record the union of old and new group-kinds/namespaces on the ApplySet parent;
2. apply the steps in order, concurrently within a step; before a step, objects the server
   could not check earlier (their namespace or CRD is new) are checked with a dry-run; after a
   step, its CRDs are waited for until Established;
3. prune, in reverse dependency order;
4. narrow the parent to exactly the new set;
5. with `wait`, wait for health.
A failed write stops the steps: what was applied and what was skipped is reported, nothing is
pruned, and the next run converges.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from collections.abc import Callable

from syncer.apply.changeset import Change, ChangeSet
from syncer.apply.plan import Plan, PlannedObject, diff_object, run_concurrently
from syncer.apply.prune import prune
from syncer.apply.wait import WaitTarget, health, wait_healthy
from syncer.errors import ClusterError, NotFound
from syncer.kube import Kube
from syncer.model import ObjectRef

log = logging.getLogger(__name__)

Reporter = Callable[[Change], None]
StepReporter = Callable[[int, int, int], None]
"""(step index, number of steps, objects in the step)."""


def write_inventory(kube: Kube, plan: Plan, *, refs: list[ObjectRef], widen: bool) -> None:
    """Server-side apply the ApplySet parent with the given members' group-kinds/namespaces
    (no request when it already records exactly that)."""
    inventory = plan.inventory.including(refs) if widen else plan.inventory.exactly(refs)
    if plan.inventory.exists and inventory.records_same(plan.inventory):
        return
    configmaps = kube.resource_for("v1", "ConfigMap")
    kube.apply(configmaps, inventory.parent_body(), subject=str(inventory.parent),
               field_manager=plan.options.field_manager, force=True, dry_run=False)
    plan.inventory = replace(inventory, exists=True)


def _wait_established(kube: Kube, planned: PlannedObject, *, timeout: float) -> ClusterError | None:
    deadline = time.monotonic() + timeout
    while True:
        crd = kube.get(planned.resource, planned.ref.name)
        if crd is not None and health(crd).state == "healthy":
            kube.forget_discovery()
            return None
        if time.monotonic() >= deadline:
            return ClusterError(str(planned.ref), f"not Established after {timeout:.0f}s; "
                                "its custom resources cannot be applied")
        time.sleep(0.2)


def _apply_one(kube: Kube, planned: PlannedObject, plan: Plan) -> Change | ClusterError:
    options = plan.options
    subject = str(planned.ref)
    if planned.action == "unchanged":
        return Change(ref=planned.ref, api_version=planned.api_version, action="unchanged")
    try:
        if planned.recreate and planned.live is not None:
            kube.delete(planned.resource, planned.ref.name, namespace=planned.ref.namespace,
                        subject=subject, uid=planned.live["metadata"]["uid"], propagation="Foreground")
            deadline = time.monotonic() + options.timeout
            while kube.get(planned.resource, planned.ref.name, namespace=planned.ref.namespace) is not None:
                if time.monotonic() >= deadline:
                    return ClusterError(subject, f"deleted for re-creation but still present after {options.timeout:.0f}s")
                time.sleep(0.2)
        kube.apply(planned.resource, planned.body, subject=subject, field_manager=options.field_manager,
                   force=options.force_conflicts, dry_run=False)
    except ClusterError as error:
        return error
    if planned.recreate:
        action, message = "recreated", "deleted and re-created: an immutable field changed"
    elif planned.live is None:
        action, message = "created", ""
    else:
        action, message = "configured", _changed_summary(planned)
    if planned.conflicts:
        message = (message + "; " if message else "") + f"took over fields from other managers ({planned.conflicts})"
    return Change(ref=planned.ref, api_version=planned.api_version, action=action, message=message)  # type: ignore[arg-type]


def _changed_summary(planned: PlannedObject, *, limit: int = 4) -> str:
    changed = list(planned.diff.changed) if planned.diff else []
    if not changed:
        return ""
    more = f" and {len(changed) - limit} more" if len(changed) > limit else ""
    return "changed " + ", ".join(changed[:limit]) + more


def _check_deferred(kube: Kube, plan: Plan, pending: list[PlannedObject]) -> list[ClusterError]:
    """Dry-run objects that could not be checked before the first write."""
    errors: list[ClusterError | None] = []
    checkable = []
    for planned in pending:
        try:
            planned.resource = kube.resource_for(planned.api_version, planned.ref.kind)
            checkable.append(planned)
        except NotFound as error:
            errors.append(ClusterError(str(planned.ref), error.message, status=404))
    errors += run_concurrently(lambda p: diff_object(kube, p, options=plan.options), checkable,
                               workers=plan.options.concurrency)
    for planned in pending:
        planned.deferred = None
    return [e for e in errors if e is not None]


def execute(
    kube: Kube,
    plan: Plan,
    *,
    report: Reporter = lambda change: None,
    on_step: StepReporter = lambda index, total, size: None,
) -> ChangeSet:
    """Apply the plan (its validation must have passed) and prune; never raises for a failed
    write: the ChangeSet says what was done, what failed and what was skipped."""
    options = plan.options
    changes = ChangeSet(app=options.app, revision=plan.revision, warnings=list(plan.warnings))
    desired = list(plan.objects)

    def record(change: Change) -> None:
        changes.changes.append(change)
        report(change)

    def stop(error: str, remaining: list[ObjectRef]) -> ChangeSet:
        for ref in remaining:
            record(Change(ref=ref, api_version=plan.objects[ref].api_version, action="skipped",
                          message="not applied: the sync stopped before this step"))
        changes.error = f"{error}; nothing was pruned, the next sync will converge"
        return changes

    try:
        write_inventory(kube, plan, refs=desired, widen=True)
    except ClusterError as error:
        return stop(f"cannot record the inventory on {plan.inventory.parent}: {error.message}", desired)

    applied: set[ObjectRef] = set()
    for index, step in enumerate(plan.steps):
        later = [ref for s in plan.steps[index:] for ref in s]
        pending = [plan.objects[ref] for ref in later
                   if plan.objects[ref].deferred and plan.objects[ref].blocked_by in applied]
        if pending:
            failures = _check_deferred(kube, plan, pending)
            if failures:
                for failure in failures:
                    record(_failed(plan, failure))
                failed = {f.subject for f in failures}
                return stop("the server rejected objects it could only check once their namespace or "
                            "CustomResourceDefinition existed", [r for r in later if str(r) not in failed])
        on_step(index, len(plan.steps), len(step))
        results = run_concurrently(lambda ref: _apply_one(kube, plan.objects[ref], plan), step,
                                   workers=options.concurrency)
        errors = []
        for ref, result in zip(step, results):
            if isinstance(result, ClusterError):
                errors.append(result)
                record(_failed(plan, result, ref=ref))
            else:
                applied.add(ref)
                record(result)
        if errors:
            return stop(f"{len(errors)} object(s) failed to apply", [r for s in plan.steps[index + 1:] for r in s])
        for ref in step:
            if ref.kind == "CustomResourceDefinition" and ref.group == "apiextensions.k8s.io":
                problem = _wait_established(kube, plan.objects[ref], timeout=options.timeout)
                if problem is not None:
                    record(_failed(plan, problem, ref=ref))
                    return stop(str(problem), [r for s in plan.steps[index + 1:] for r in s])

    if options.prune and plan.prune:
        _, prune_errors = prune(kube, plan.prune, applyset=plan.inventory.id, dry_run=False,
                                workers=options.concurrency, report=record)
        if prune_errors:
            for prune_error in prune_errors:
                record(_failed(plan, prune_error))
            changes.error = f"{len(prune_errors)} object(s) could not be pruned"
            return changes
    kept = [c.ref for c in plan.prune if not options.prune or changes_skipped(changes, c.ref)]
    try:
        write_inventory(kube, plan, refs=desired + kept, widen=False)
    except ClusterError as error:
        if not _namespace_pruned(changes, plan):
            changes.warnings.append(f"{plan.inventory.parent}: cannot narrow the inventory: {error.message}")

    if options.wait:
        targets = [WaitTarget(ref=ref, resource=plan.objects[ref].resource) for ref in desired]
        unhealthy = wait_healthy(kube, targets, timeout=options.timeout)
        if unhealthy:
            details = "; ".join(f"{ref}: {status.state} ({status.message})" for ref, status in sorted(unhealthy.items()))
            changes.error = f"{len(unhealthy)} object(s) not healthy after {options.timeout:.0f}s: {details}"
    return changes


def changes_skipped(changes: ChangeSet, ref: ObjectRef) -> bool:
    return any(c.ref == ref and c.action == "skipped" for c in changes.changes)


def _namespace_pruned(changes: ChangeSet, plan: Plan) -> bool:
    return any(c.action == "deleted" and c.ref.kind == "Namespace" and c.ref.name == plan.inventory.parent.namespace
               for c in changes.changes)


def _ref_of(error: ClusterError, plan: Plan) -> ObjectRef:
    for candidate in plan.prune:
        if str(candidate.ref) == error.subject:
            return candidate.ref
    for ref in plan.objects:
        if str(ref) == error.subject:
            return ref
    return ObjectRef(group="", kind="", namespace=None, name=error.subject)


def _failed(plan: Plan, error: ClusterError, *, ref: ObjectRef | None = None) -> Change:
    ref = ref or _ref_of(error, plan)
    api_version = plan.objects[ref].api_version if ref in plan.objects else ""
    return Change(ref=ref, api_version=api_version, action="failed", message=error.message)
