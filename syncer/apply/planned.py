"""The plan as data: what `build_plan` (plan.py) returns, `syncer diff` prints and `execute`
(executor.py) runs. Frozen values: every decision in here was made once, when the plan was
built, and nothing downstream changes it.

A desired object is planned in two halves. `Desired` is what the plan knows before asking the
server (the body, its resource, the live object); `Check` is the decision a worker of the
plan's pool returns for it (the action, the diff, the fields taken over). `PlannedObject`
joins the two, in one thread, after the pool has finished.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

from syncer.apply.applyset import Inventory
from syncer.apply.budget import BudgetCheck
from syncer.apply.live import Recovery
from syncer.apply.options import SyncOptions
from syncer.apply.tasks import WRITING_TASKS, ApplyStep, EnsureNamespace, Task, WriteInventory
from syncer.apply.updateapply import apply_or_update
from syncer.diff import ObjectDiff
from syncer.errors import ClusterError
from syncer.kube import Kube, Resource, encode
from syncer.model import CHANGING_ACTIONS, Action, Object, ObjectRef, Origin


@dataclass(frozen=True)
class Desired:
    """One desired object as the plan found it, before the server was asked about it."""

    ref: ObjectRef
    api_version: str
    body: Object
    resource: Resource
    origin: Origin
    live: Object | None
    blocked_by: frozenset[ObjectRef] = frozenset()
    """Namespaces and CustomResourceDefinitions this sync creates that must exist before the
    server can check this object; empty when it is checked at plan time."""
    update_instead: str | None = None
    """Why this server cannot server-side apply the kind, so it is updated instead
    (`syncer.apply.updateapply`); None: server-side apply."""

    def write(
        self, kube: Kube, *, field_manager: str, force: bool, dry_run: bool, decode: bool = True
    ) -> Object | None:
        """Apply (or dry-run) this object the way the plan decided: server-side apply, or the
        update fallback. The object as written, or None with `decode=False` (the answer is
        not decoded)."""
        return apply_or_update(kube, self.resource, self.body, subject=str(self.ref), encoded=self.encoded,
                               field_manager=field_manager, force=force, dry_run=dry_run,
                               update_instead=self.update_instead, decode=decode)

    @functools.cached_property
    def encoded(self) -> bytes:
        """`body` as sent to the server: encoded once for its dry-run and its apply. A cache of
        a value derived from frozen fields (computing it twice gives the same bytes), so a
        worker filling it in shares nothing anybody could observe."""
        return encode(self.body)

    @property
    def waiting_for(self) -> str:
        """Why the server cannot check this object before the sync starts writing."""
        return ", ".join(f"{'its namespace' if b.kind == 'Namespace' else 'its CustomResourceDefinition'} "
                         f"{b.name}" for b in sorted(self.blocked_by)) + " (created by this sync)"


@dataclass(frozen=True)
class Check:
    """What the plan decided for one desired object (`check.check_object`)."""

    action: Action
    diff: ObjectDiff
    conflicts: str | None = None
    """Fields owned by other managers that the apply takes over (forced), as the server said."""


@dataclass(frozen=True)
class PlannedObject:
    """One desired object and what the sync does to it."""

    desired: Desired
    check: Check

    # The desired half, by name: the executor, the printers and the tests read these.
    @property
    def ref(self) -> ObjectRef:
        return self.desired.ref

    @property
    def api_version(self) -> str:
        return self.desired.api_version

    @property
    def body(self) -> Object:
        return self.desired.body

    @property
    def resource(self) -> Resource:
        return self.desired.resource

    @property
    def origin(self) -> Origin:
        return self.desired.origin

    @property
    def live(self) -> Object | None:
        return self.desired.live

    @property
    def blocked_by(self) -> frozenset[ObjectRef]:
        return self.desired.blocked_by

    @property
    def update_instead(self) -> str | None:
        return self.desired.update_instead

    @property
    def waiting_for(self) -> str:
        return self.desired.waiting_for

    def write(
        self, kube: Kube, *, field_manager: str, force: bool, dry_run: bool, decode: bool = True
    ) -> Object | None:
        return self.desired.write(kube, field_manager=field_manager, force=force, dry_run=dry_run, decode=decode)

    # The decision.
    @property
    def action(self) -> Action:
        return self.check.action

    @property
    def diff(self) -> ObjectDiff:
        return self.check.diff

    @property
    def conflicts(self) -> str | None:
        return self.check.conflicts


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


@dataclass(frozen=True)
class Plan:
    options: SyncOptions
    revision: str
    inventory: Inventory
    """The inventory as the parent records it (or as recovered from members' labels)."""
    objects: Mapping[ObjectRef, PlannedObject] = field(default_factory=dict)
    steps: tuple[tuple[ObjectRef, ...], ...] = ()
    prune: tuple[PruneDecision, ...] = ()
    tasks: tuple[Task, ...] = ()
    failures: tuple[ClusterError, ...] = ()
    warnings: tuple[str, ...] = ()
    parent_version: str | None = None
    """resourceVersion of the ApplySet parent when it was read (None: there is none)."""
    parent_annotations: Mapping[str, str] = field(default_factory=dict)
    recovery: Recovery | None = None
    """What the label scan found when the parent was missing (None: the parent was read)."""
    budget: BudgetCheck | None = None
    """The deletions counted against the app's prune budget (None: not checked, as with
    `--confirm-prune-all`)."""

    @property
    def blocked(self) -> str | None:
        """Why no sync may execute this plan ("blocked by the prune budget: ..."), or None."""
        return str(self.budget) if self.budget is not None and self.budget.exceeded else None

    @property
    def bootstrap(self) -> tuple[EnsureNamespace, ...]:
        """The tasks a sync runs before it takes its lock: creating the app's own namespace,
        where the lock and the inventory live (`execute_bootstrap`)."""
        return tuple(t for t in self.tasks if isinstance(t, EnsureNamespace))

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
        result.extend(d.diff for d in self.deletions if d.diff is not None)
        return result

    def api_version_of(self, ref: ObjectRef) -> str:
        if ref in self.objects:
            return self.objects[ref].api_version
        return next((d.api_version for d in self.prune if d.ref == ref), "")
