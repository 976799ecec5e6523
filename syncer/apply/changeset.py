"""The result of a sync as data: one entry per object with what happened to it.

Printers (text, JSON) and the daemon's metrics and status consume this; the engine never
prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from syncer.apply.history import Trigger, TriggerKind
from syncer.apply.intent import Interrupted, SyncIntent
from syncer.diff import FieldChange
from syncer.model import CHANGING_ACTIONS, Action, ObjectRef

ACTIONS: tuple[Action, ...] = tuple(Action)


def summary_text(summary: Mapping[str, int], *, always: tuple[Action, ...] = ()) -> str:
    """`3 created, 1 deleted, 12 unchanged`: the actions that happened (and those in `always`,
    even at 0), in vocabulary order."""
    parts = [f"{summary.get(a, 0)} {a}" for a in ACTIONS if summary.get(a) or a in always]
    return ", ".join(parts) if parts else "no objects"


@dataclass(frozen=True)
class Change:
    ref: ObjectRef
    api_version: str
    action: Action
    message: str = ""
    reason: str = ""
    """For a kept object, the name of the prune filter that keeps it."""
    fields: tuple[FieldChange, ...] = ()
    """For an updated object, each field that differs and why (`ObjectDiff.fields`)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": str(self.action),
            "reason": self.reason,
            "apiVersion": self.api_version,
            "kind": self.ref.kind,
            "namespace": self.ref.namespace,
            "name": self.ref.name,
            "message": self.message,
            "fields": [f.to_dict() for f in self.fields],
        }


@dataclass
class ChangeSet:
    app: str
    revision: str
    dry_run: bool = False
    changes: list[Change] = field(default_factory=list)
    error: str | None = None
    """Why the sync failed: it stopped early (`stopped`), or its objects did not become healthy
    in time; None when it ran to the end and, with --wait, everything became healthy."""
    stopped: bool = False
    """A task failed and the tasks after it did not run."""
    warnings: list[str] = field(default_factory=list)
    inventory_annotations: dict[str, str] = field(default_factory=dict)
    """The app's ApplySet parent annotations as the sync found them (the recorded status)."""
    trigger: Trigger = Trigger(TriggerKind.CLI)
    started: str = ""
    """When the sync started (RFC 3339, UTC); its duration in `seconds`."""
    seconds: float = 0.0
    plan_digest: str = ""
    """The digest of the plan it executed, when that plan wrote (`syncer.apply.planfile`)."""
    intent: SyncIntent | None = None
    """The intent this sync recorded before its first write: its result must be recorded."""
    interrupted: Interrupted | None = None
    """An earlier sync this one found unfinished (`syncer.apply.intent`)."""

    @property
    def ok(self) -> bool:
        return self.error is None and not any(c.action is Action.FAILED for c in self.changes)

    @property
    def applied(self) -> bool:
        """Every write of the sync was made (the revision is applied), whether or not the
        objects then became healthy in time: what `status.syncer.dev/applied-revision` records."""
        return not self.dry_run and not self.stopped and not any(c.action is Action.FAILED for c in self.changes)

    def summary(self) -> dict[str, int]:
        counts = Counter(c.action for c in self.changes)
        return {str(action): counts.get(action, 0) for action in ACTIONS}

    def count(self, *actions: Action) -> int:
        return sum(1 for c in self.changes if c.action in actions)

    @property
    def changed_something(self) -> bool:
        return any(c.action in CHANGING_ACTIONS for c in self.changes) and not self.dry_run

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "revision": self.revision,
            "dryRun": self.dry_run,
            "ok": self.ok,
            "error": self.error,
            "warnings": list(self.warnings),
            "summary": self.summary(),
            "changes": [c.to_dict() for c in self.changes],
            **({"interrupted": self.interrupted.to_dict()} if self.interrupted is not None else {}),
        }
