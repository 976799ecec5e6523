"""Executing a plan: the only place syncer writes objects to the cluster (with lock.py and
status.py for its own bookkeeping), the app's namespace created before the lock included.

The plan's tasks run in order, each only when the ones before succeeded; the executor does
not decide anything the plan decided. With `dry_run` every request that would write is sent
with `dryRun=All` instead (for a DELETE in its DeleteOptions body, where the server reads
it), and the tasks that only wait or re-check are skipped: nothing they depend on was
created.

A sync that writes runs in two phases (`sync.py`): `execute_bootstrap` creates the app's own
namespace when the plan found it new (the lock and the inventory live in it), before the
lock; the sync then plans again under the lock and runs that plan with `execute`, telling it
what the bootstrap created, so that the ChangeSet reports the namespace `created` as it
happened. When the plan made under the lock fails validation, `undo_bootstrap` deletes the
new, empty namespace again.

A plan blocked by the prune budget is refused before its first write (`refuse_blocked`), by
both entry points: the executor carries out only plans a sync may carry out.

A failed write stops the tasks: what was applied and what was skipped is reported, nothing is
pruned, and the next run converges.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from syncer.apply.budget import PruneBudgetExceeded
from syncer.apply.changeset import Change, ChangeSet
from syncer.apply.check import check_object
from syncer.apply.planned import Plan, PlannedObject, PruneDecision
from syncer.apply.pool import run_concurrently
from syncer.apply.tasks import (
    ApplyStep,
    CheckBlocked,
    EnsureNamespace,
    PruneStep,
    Task,
    UndoNamespace,
    WaitEstablished,
    WaitHealthy,
    WriteInventory,
)
from syncer.apply.wait import WaitTarget, health, wait_healthy
from syncer.errors import ClusterError, Conflict, NotFound
from syncer.kube import Kube
from syncer.model import CHANGING_ACTIONS, Action, Object, ObjectRef

log = logging.getLogger(__name__)

Reporter = Callable[[Change], None]
StepReporter = Callable[[int, int, int], None]
"""(step index, number of steps, objects in the step)."""


class _Stopped(Exception):
    """A task failed: the remaining tasks do not run."""


@dataclass(frozen=True)
class Bootstrap:
    """What a sync wrote before it took its lock: the app's namespace, when the plan found it
    new. `created` is how those objects are reported; `undo` takes them back."""

    created: tuple[Change, ...] = ()
    undo: tuple[UndoNamespace, ...] = ()


def write_inventory(kube: Kube, plan: Plan, task: WriteInventory, *, dry_run: bool) -> None:
    configmaps = kube.resource_for("v1", "ConfigMap")
    kube.apply(configmaps, task.inventory.parent_body(), subject=str(task.inventory.parent),
               field_manager=plan.options.field_manager, force=True, dry_run=dry_run, decode=False)


def _ensure_namespace(kube: Kube, plan: Plan, task: EnsureNamespace, *, dry_run: bool) -> str:
    """Apply the app's namespace as planned; its UID."""
    written = plan.objects[task.ref].write(kube, field_manager=plan.options.field_manager,
                                           force=plan.options.force_conflicts, dry_run=dry_run)
    assert written is not None
    return str((written.get("metadata") or {}).get("uid", ""))


def refuse_blocked(plan: Plan) -> None:
    """Raise PruneBudgetExceeded for a plan past the prune budget (`Plan.blocked`)."""
    if plan.budget is not None and plan.budget.exceeded:
        raise PruneBudgetExceeded(plan.options.app, plan.budget)


def execute_bootstrap(kube: Kube, plan: Plan) -> Bootstrap:
    """Run the plan's tasks that come before the lock (`Plan.bootstrap`), for real. Raises
    ClusterError when the namespace cannot be created (then nothing was written), and
    PruneBudgetExceeded for a blocked plan."""
    refuse_blocked(plan)
    created: list[Change] = []
    undo: list[UndoNamespace] = []
    for task in plan.bootstrap:
        uid = _ensure_namespace(kube, plan, task, dry_run=False)
        created.append(Change(ref=task.ref, api_version=plan.objects[task.ref].api_version, action=Action.CREATED,
                              message="created before the sync's lock, which lives in it"))
        undo.append(UndoNamespace(task.ref, uid))
    return Bootstrap(tuple(created), tuple(undo))


def undo_bootstrap(kube: Kube, bootstrap: Bootstrap) -> None:
    """Delete what the bootstrap created: exactly that namespace (by its UID), never one
    somebody made again under the same name since."""
    for task in bootstrap.undo:
        namespaces = kube.resource_for("v1", "Namespace")
        try:
            kube.delete(namespaces, task.ref.name, namespace=None, subject=str(task.ref), uid=task.uid or None)
        except Conflict:
            log.warning("%s: not deleted: it is no longer the namespace this sync created", task.ref)


def _wait_established(kube: Kube, planned: PlannedObject, *, timeout: float) -> ClusterError | None:
    deadline = time.monotonic() + timeout
    while True:
        crd = kube.get(planned.resource, planned.ref.name)
        if crd is not None and health(crd).state == "healthy" and _discovered(kube, crd):
            kube.forget_discovery()
            return None
        if time.monotonic() >= deadline:
            return ClusterError(str(planned.ref), f"not Established after {timeout:.0f}s; "
                                "its custom resources cannot be applied")
        time.sleep(0.2)


def _discovered(kube: Kube, crd: Object) -> bool:
    """Whether discovery lists the CRD's kind in each version it serves. The API server sets
    `Established` before its discovery serves the new kinds (a moment later on an idle 1.37
    server, seconds under load): a custom resource checked in between would be refused as a
    kind the server does not serve."""
    spec = crd.get("spec") or {}
    kind = str((spec.get("names") or {}).get("kind", ""))
    for version in spec.get("versions") or []:
        if not version.get("served"):
            continue
        api_version = f"{spec.get('group')}/{version.get('name')}"
        kube.forget_discovery(api_version)
        try:
            kube.resource_for(api_version, kind)
        except NotFound:
            return False
    return True


def _recreate(kube: Kube, planned: PlannedObject, *, timeout: float, dry_run: bool) -> None:
    assert planned.live is not None
    subject = str(planned.ref)
    kube.delete(planned.resource, planned.ref.name, namespace=planned.ref.namespace, subject=subject,
                uid=planned.live["metadata"]["uid"], propagation="Foreground", dry_run=dry_run)
    if dry_run:
        return  # the object is still there: a dry-run apply would only repeat the immutable error
    deadline = time.monotonic() + timeout
    while kube.get(planned.resource, planned.ref.name, namespace=planned.ref.namespace) is not None:
        if time.monotonic() >= deadline:
            raise ClusterError(subject, f"deleted for re-creation but still present after {timeout:.0f}s")
        time.sleep(0.2)


def _apply_one(kube: Kube, planned: PlannedObject, plan: Plan, *, dry_run: bool, earlier: Change | None) -> Change:
    """Write one object as planned and say what happened. `earlier`: what this sync already
    did to it before its lock (created its namespace); the plan made under the lock then
    finds it live, and it is still this sync's creation."""
    if planned.action not in CHANGING_ACTIONS:
        return earlier or Change(ref=planned.ref, api_version=planned.api_version, action=planned.action)
    if dry_run and planned.blocked_by:
        return Change(ref=planned.ref, api_version=planned.api_version, action=planned.action,
                      message=f"not checked by the server: {planned.waiting_for}")
    options = plan.options
    try:
        if planned.action is Action.RECREATED:
            _recreate(kube, planned, timeout=options.timeout, dry_run=dry_run)
            if not dry_run:
                planned.write(kube, field_manager=options.field_manager, force=options.force_conflicts,
                              dry_run=False, decode=False)
        else:
            # The change is the outcome alone: the server's answer is not decoded.
            planned.write(kube, field_manager=options.field_manager, force=options.force_conflicts, dry_run=dry_run,
                          decode=False)
    except ClusterError as error:
        return _failed(planned.ref, planned.api_version, error)
    if earlier is not None:
        return earlier
    message = {
        Action.RECREATED: "deleted and re-created: an immutable field changed",
        Action.CONFIGURED: _changed_summary(planned),
    }.get(planned.action, "")
    if planned.conflicts:
        message = (message + "; " if message else "") + f"took over fields from other managers ({planned.conflicts})"
    return Change(ref=planned.ref, api_version=planned.api_version, action=planned.action, message=message,
                  fields=planned.diff.fields)


def _changed_summary(planned: PlannedObject, *, limit: int = 4) -> str:
    """`changed .spec.replicas (drift: kubectl-scale), .data.v (git)`: the logs' and Events' line."""
    changed = [f for f in planned.diff.fields if f.is_change]
    if not changed:
        return ""
    more = f" and {len(changed) - limit} more" if len(changed) > limit else ""
    return "changed " + ", ".join(f"{f.path} ({f.cause}{': ' + f.manager if f.manager else ''})"
                                  for f in changed[:limit]) + more


def _check_blocked(kube: Kube, plan: Plan, refs: tuple[ObjectRef, ...]) -> list[tuple[PlannedObject, ClusterError]]:
    """Dry-run objects that could not be checked before the first write. Only the server's
    objection matters here: the plan's decision (created) stands."""
    checkable: list[PlannedObject] = []
    errors: list[tuple[PlannedObject, ClusterError]] = []
    for ref in refs:
        planned = plan.objects[ref]
        try:
            kube.resource_for(planned.api_version, ref.kind)
        except NotFound as error:
            errors.append((planned, ClusterError(str(ref), error.message, status=404)))
            continue
        checkable.append(planned)
    results = run_concurrently(lambda p: check_object(kube, p.desired, options=plan.options), checkable,
                               workers=plan.options.concurrency)
    errors += [(p, e) for p, e in zip(checkable, results) if isinstance(e, ClusterError)]
    return errors


def _delete(kube: Kube, decision: PruneDecision, *, dry_run: bool) -> Change:
    try:
        kube.delete(decision.resource, decision.ref.name, namespace=decision.ref.namespace,
                    subject=str(decision.ref), uid=decision.live["metadata"].get("uid"), dry_run=dry_run)
    except Conflict:
        return Change(ref=decision.ref, api_version=decision.api_version, action=Action.KEPT, reason="replaced",
                      message="kept: it was replaced by another object of the same name since it was read")
    except NotFound:
        pass
    except ClusterError as error:
        return _failed(decision.ref, decision.api_version, error)
    return Change(ref=decision.ref, api_version=decision.api_version, action=Action.DELETED,
                  message=decision.message)


def _failed(ref: ObjectRef, api_version: str, error: ClusterError) -> Change:
    return Change(ref=ref, api_version=api_version, action=Action.FAILED, message=error.message)


def execute(
    kube: Kube,
    plan: Plan,
    *,
    dry_run: bool,
    bootstrap: Bootstrap = Bootstrap(),
    report: Reporter = lambda change: None,
    on_step: StepReporter = lambda index, total, size: None,
    confirm_lock: Callable[[], None] = lambda: None,
) -> ChangeSet:
    """Run the plan's tasks (its validation must have passed); never raises for a failed
    write: the ChangeSet says what was done, what failed and what was skipped.
    `bootstrap`: what this sync created before its lock, reported as created.
    `confirm_lock` runs before every prune step: it raises when the sync no longer holds
    its app's lock (LockLost). A blocked plan raises PruneBudgetExceeded, dry run or not,
    before anything is sent: a dry run says what the sync would do, and it would refuse."""
    refuse_blocked(plan)
    changes = ChangeSet(app=plan.options.app, revision=plan.revision, dry_run=dry_run,
                        warnings=list(plan.warnings), inventory_annotations=dict(plan.parent_annotations))
    earlier: Mapping[ObjectRef, Change] = {c.ref: c for c in bootstrap.created}
    done: set[ObjectRef] = set()

    def record(change: Change) -> None:
        changes.changes.append(change)
        done.add(change.ref)
        report(change)

    def run(task: Task) -> None:
        if isinstance(task, EnsureNamespace):
            _ensure_namespace(kube, plan, task, dry_run=dry_run)
        elif isinstance(task, WriteInventory):
            try:
                write_inventory(kube, plan, task, dry_run=dry_run)
            except ClusterError as error:
                if task.stage == "narrow":
                    changes.warnings.append(f"{task.inventory.parent}: cannot narrow the inventory: {error.message}")
                    return
                raise _Stopped(f"cannot record the inventory on {task.inventory.parent}: {error.message}") from error
        elif isinstance(task, CheckBlocked):
            if dry_run:
                return
            failures = _check_blocked(kube, plan, task.refs)
            for planned, objection in failures:
                record(_failed(planned.ref, planned.api_version, objection))
            if failures:
                raise _Stopped("the server rejected objects it could only check once their namespace or "
                               "CustomResourceDefinition existed")
        elif isinstance(task, ApplyStep):
            on_step(task.index, len(plan.steps), len(task.refs))
            results = run_concurrently(
                lambda ref: _apply_one(kube, plan.objects[ref], plan, dry_run=dry_run, earlier=earlier.get(ref)),
                list(task.refs), workers=plan.options.concurrency)
            for result in results:
                record(result)
            failed = sum(1 for r in results if r.action is Action.FAILED)
            if failed:
                raise _Stopped(f"{failed} object(s) failed to apply")
        elif isinstance(task, WaitEstablished):
            if dry_run:
                return
            for ref in task.refs:
                problem = _wait_established(kube, plan.objects[ref], timeout=plan.options.timeout)
                if problem is not None:
                    raise _Stopped(str(problem))
        elif isinstance(task, PruneStep):
            if not dry_run:
                confirm_lock()
            by_ref = {d.ref: d for d in plan.prune}
            results = run_concurrently(lambda ref: _delete(kube, by_ref[ref], dry_run=dry_run), list(task.refs),
                                       workers=plan.options.concurrency)
            for result in results:
                record(result)
            failed = sum(1 for r in results if r.action is Action.FAILED)
            if failed:
                changes.error = f"{failed} object(s) could not be pruned"
                raise _Stopped("")
        elif isinstance(task, WaitHealthy):
            if dry_run:
                return
            targets = [WaitTarget(ref=ref, resource=plan.objects[ref].resource) for ref in task.refs]
            unhealthy = wait_healthy(kube, targets, timeout=plan.options.timeout)
            if unhealthy:
                details = "; ".join(f"{ref}: {status.state} ({status.message})"
                                    for ref, status in sorted(unhealthy.items()))
                changes.error = f"{len(unhealthy)} object(s) not healthy after {plan.options.timeout:.0f}s: {details}"

    for decision in plan.prune:
        if decision.action is not Action.DELETED:
            record(Change(ref=decision.ref, api_version=decision.api_version, action=decision.action,
                          reason=decision.reason, message=decision.message))
    try:
        for task in plan.tasks:
            run(task)
    except _Stopped as stopped:
        changes.stopped = True
        for ref, _ in plan.decisions():
            if ref not in done:
                record(earlier.get(ref) or Change(ref=ref, api_version=plan.api_version_of(ref), action=Action.SKIPPED,
                                                  message="not done: the sync stopped before this step"))
        if changes.error is None:
            changes.error = f"{stopped}; nothing was pruned, the next sync will converge"
        return changes
    for ref, action in plan.decisions():
        if ref not in done:  # decisions no task reported (every one is, in a plan the solver made)
            record(earlier.get(ref) or Change(ref=ref, api_version=plan.api_version_of(ref), action=action))
    return changes
