"""The sync: plan, guard, lock, execute. `syncer sync`, `syncer diff` and the daemon call this.

Validate everything, then write: the plan's server-side dry-runs must all pass before the
first write. Two things cannot be checked that early and are checked as soon as they can be,
before any object that depends on them is written: objects in a namespace the sync creates,
and custom resources whose CustomResourceDefinition the sync creates. When the app's own
namespace (home of its inventory and lock) is new, it is created first and everything in it is
then checked before anything else is written; if that check fails the new, empty namespace is
deleted again. Every one of those writes, the namespace and its undo included, is the
executor's (`execute_bootstrap`, `undo_bootstrap`, `execute`); this module decides only when
each phase runs.

A sync whose plan writes nothing takes no lock and writes nothing. A sync that writes holds
the app's lock, and every write goes through `Kube.guarded(lock.ensure_held)`: the moment it
cannot prove it still holds the lock, it stops (LockLost) instead of undoing a newer sync.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from syncer.apply.applyset import is_member
from syncer.apply.budget import PruneBudgetExceeded
from syncer.apply.changeset import ChangeSet
from syncer.apply.executor import Reporter, StepReporter, execute, execute_bootstrap, refuse_blocked, undo_bootstrap
from syncer.apply.live import ListKey, Recovery
from syncer.apply.holdrecord import HeldByRollback, refuse_held
from syncer.apply.lock import AppLock
from syncer.apply.membercache import MemberReads
from syncer.apply.options import SyncOptions
from syncer.apply.plan import build_plan
from syncer.apply.planned import Plan
from syncer.apply.history import Trigger, TriggerKind
from syncer.apply.intent import Interrupted, SyncIntent, read_intent
from syncer.apply.planfile import plan_digest
from syncer.apply.status import now_rfc3339, record_intent, status_from_annotations
from syncer.apply.upgrade import take_over_legacy
from syncer.errors import ClusterError, LockHeld, NotFound, SyncerError, ValidationFailed
from syncer.kube import Kube
from syncer.model import Action, Manifest, ObjectRef

log = logging.getLogger(__name__)


class EmptySourceRefused(SyncerError):
    """The source rendered nothing while the app owns objects: pruning would delete them all."""


class PlanRefused(SyncerError):
    """`syncer apply`: the reviewed plan is not the one the cluster needs now (or is not the
    one `syncer plan` wrote). Exit 3: nothing was written."""

    exit_code = 3


class RecordMoved(SyncerError):
    """A heal's expectation failed: the app's parent records another applied revision than the
    one the heal restores (someone else's sync recorded it since the heal decided)."""

    def __init__(self, message: str, *, expected: str, recorded: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.recorded = recorded


def plan_sync(
    kube: Kube, manifests: Sequence[Manifest], *, options: SyncOptions, revision: str,
    cache: MemberReads | None = None, recovery: Recovery | None = None,
) -> Plan:
    """Plan and apply the guard rails; raises ValidationFailed / EmptySourceRefused."""
    plan = build_plan(kube, manifests, options=options, revision=revision, cache=cache, recovery=recovery)
    if plan.failures:
        raise ValidationFailed(list(plan.failures))
    recorded = status_from_annotations(dict(plan.parent_annotations))
    applied = recorded.applied_revision if recorded is not None else ""
    if options.expect_applied is not None and applied != options.expect_applied:
        raise RecordMoved(
            f"app {options.app}: {plan.inventory.parent} records revision {applied or '(none)'} as applied, "
            f"not {options.expect_applied or '(none)'}; another sync moved the app since: not healing to the "
            "revision it replaced", expected=options.expect_applied, recorded=applied)
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
    versions.update({d.ref: d.live["metadata"]["resourceVersion"] for d in plan.prune})
    if plan.parent_version:
        versions[plan.inventory.parent] = plan.parent_version
    return versions


def _current_fingerprint(kube: Kube, plan: Plan) -> dict[ObjectRef, str]:
    keys: set[ListKey] = {
        (p.resource, p.ref.namespace if p.resource.namespaced else None)
        for p in plan.objects.values() if not p.blocked_by
    }
    keys |= {(d.resource, d.ref.namespace) for d in plan.prune}
    keys.add((kube.resource_for("v1", "ConfigMap"), plan.inventory.parent.namespace))
    relevant = set(plan.objects) | {d.ref for d in plan.prune} | {plan.inventory.parent}
    versions: dict[ObjectRef, str] = {}
    for resource, namespace in keys:
        for obj in kube.list(resource, namespace=namespace):
            ref = ObjectRef.of(obj)
            if ref in relevant or is_member(obj, plan.inventory.id):
                versions[ref] = obj["metadata"]["resourceVersion"]
    return versions


Recorder = Callable[[Kube, ChangeSet], None]
"""Writes a sync's outcome with the client it is given (see `sync`)."""
Acceptance = Callable[[Plan], None]
"""Raises to refuse a plan before anything of it is written (see `sync`)."""


def sync(
    kube: Kube,
    manifests: Sequence[Manifest],
    *,
    options: SyncOptions,
    revision: str,
    report: Reporter = lambda change: None,
    on_step: StepReporter = lambda index, total, size: None,
    cache: MemberReads | None = None,
    record: Recorder | None = None,
    accept: Acceptance | None = None,
    trigger: Trigger = Trigger(TriggerKind.CLI),
) -> ChangeSet:
    """Make the cluster match the manifests. Raises for failures before the first write
    (validation, guard rails, lock) and for a lost lock; returns a ChangeSet (possibly with an
    error) otherwise. With the daemon's `cache`, a plan that writes nothing reads nothing
    from the API server; one that writes is checked against fresh reads under the lock.

    `record(kube, changes)` writes the outcome (the status on the parent) while the lock is
    still held, through the lock-guarded client: recorded after the release, a sync paused
    there could write its older status over a newer sync's.

    `accept(plan)` (`syncer apply` of a reviewed plan) sees the plan before its first write,
    and again the plan made under the lock when the cluster moved in between; it raises to
    refuse, and then nothing stays written (the app's new namespace is deleted again).

    A sync that records its outcome (`record`) and writes records its intent on the parent
    before its first write (after the checks above, under the lock), which its outcome's
    record clears; one that finds another sync's intent under the lock reports it as
    interrupted (`ChangeSet.interrupted`, `syncer.apply.intent`). A plan that
    writes nothing but finds an intent takes the lock to tell a sync still running from one
    that died; while another sync holds it, that plan's outcome is as before."""
    started, clock = now_rfc3339(), time.monotonic()

    def finished(changes: ChangeSet, client: Kube) -> ChangeSet:
        changes.trigger, changes.started, changes.seconds = trigger, started, time.monotonic() - clock
        if record is not None and not options.dry_run:
            record(client, changes)
        return changes

    plan = plan_sync(kube, manifests, options=options, revision=revision, cache=cache)
    refuse_blocked(plan)
    refuse_held(plan, options)
    if accept is not None:
        accept(plan)
    if options.dry_run or (not plan.writes and (record is None or read_intent(plan.parent_annotations) is None)):
        return finished(execute(kube, plan, dry_run=options.dry_run, report=report, on_step=on_step), kube)

    namespace = plan.inventory.parent.namespace or options.inventory_namespace
    bootstrap = execute_bootstrap(kube, plan)
    lock = AppLock(kube, app=options.app, namespace=namespace, timeout=options.lock_timeout,
                   duration_seconds=options.lock_duration)
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
    except LockHeld:
        if plan.writes:
            raise
        # Another sync runs, and its intent is its own: this plan writes nothing.
        return finished(execute(kube, plan, dry_run=False, report=report, on_step=on_step), kube)
    guarded = kube.guarded(lock.ensure_held)
    try:
        taken_over = take_over_legacy(guarded, options)
        if bootstrap.created or taken_over or _current_fingerprint(kube, plan) != _fingerprint(plan):
            log.info("app %s: the cluster changed since planning; planning again under the lock", options.app)
            try:
                # The parent is written before any member, under this lock: if it is still
                # missing, no member appeared since the first plan's label scan.
                plan = plan_sync(kube, manifests, options=options, revision=revision, recovery=plan.recovery)
                refuse_blocked(plan)
                refuse_held(plan, options)
                if accept is not None:
                    accept(plan)
            except (ValidationFailed, PlanRefused, PruneBudgetExceeded, HeldByRollback):
                undo_bootstrap(guarded, bootstrap)
                raise
        interrupted = _interrupted(plan) if record is not None else None
        intent = None
        if plan.writes and record is not None:
            intent = SyncIntent(revision=revision, plan_digest=plan_digest(plan, manifests=manifests), started=started,
                                trigger=trigger)
            record_intent(guarded, app=options.app, namespace=namespace, intent=intent)
        changes = execute(guarded, plan, dry_run=False, bootstrap=bootstrap, report=report, on_step=on_step,
                          confirm_lock=lock.confirm)
        changes.intent, changes.interrupted = intent, interrupted
        changes.plan_digest = intent.plan_digest if intent is not None else ""
        if interrupted is not None:
            changes.warnings.insert(0, interrupted.message(app=options.app))
        return finished(changes, guarded)
    finally:
        lock.release()


def _interrupted(plan: Plan) -> Interrupted | None:
    """The unfinished sync the parent records, as found under the lock: its holder is gone."""
    intent = read_intent(plan.parent_annotations)
    if intent is None:
        return None
    applied = sum(1 for p in plan.objects.values() if p.action is Action.UNCHANGED)
    return Interrupted(intent=intent, already_applied=applied, planned=len(plan.objects), found=now_rfc3339())
