"""The plan's tasks: the typed steps a sync executes, in order (cli-utils' task queue, as data).

`build_plan` (plan.py) has the solver (solver.py) list them; `execute` (executor.py) runs them, with every write in
dry-run mode for `syncer sync --dry-run`. A task says what to do, never whether: every
decision about an object was made when the plan was built.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncer.apply.applyset import Inventory
from syncer.model import ObjectRef


@dataclass(frozen=True)
class EnsureNamespace:
    """Create the app's own namespace first: its inventory and lock live there. A sync runs
    it before taking the lock (`Plan.bootstrap`, `execute_bootstrap`)."""

    ref: ObjectRef


@dataclass(frozen=True)
class UndoNamespace:
    """Delete the namespace `EnsureNamespace` created, exactly that one (by its UID), when the
    plan made again under the lock fails validation: nothing else was written in it. Not a
    task of any plan: it comes from what the bootstrap did (`Bootstrap.undo`)."""

    ref: ObjectRef
    uid: str


@dataclass(frozen=True)
class WriteInventory:
    """Record group-kinds and namespaces on the ApplySet parent: the union of old and new
    before applying (`widen`), exactly the new set after pruning (`narrow`)."""

    inventory: Inventory
    stage: str


@dataclass(frozen=True)
class CheckBlocked:
    """Dry-run the objects that had to wait for a Namespace or CRD of this sync, before any
    of them is written."""

    refs: tuple[ObjectRef, ...]


@dataclass(frozen=True)
class ApplyStep:
    index: int
    refs: tuple[ObjectRef, ...]


@dataclass(frozen=True)
class WaitEstablished:
    refs: tuple[ObjectRef, ...]


@dataclass(frozen=True)
class PruneStep:
    refs: tuple[ObjectRef, ...]


@dataclass(frozen=True)
class WaitHealthy:
    refs: tuple[ObjectRef, ...]


Task = EnsureNamespace | WriteInventory | CheckBlocked | ApplyStep | WaitEstablished | PruneStep | WaitHealthy
WRITING_TASKS = (EnsureNamespace, WriteInventory, PruneStep)
