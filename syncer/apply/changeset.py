"""The result of a sync as data: one entry per object with what happened to it.

Printers (text, JSON) and the daemon's metrics and status consume this; the engine never
prints.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from syncer.model import ObjectRef

ChangeAction = Literal[
    "created", "configured", "unchanged", "deleted", "skipped", "failed", "recreated"
]
ACTIONS: tuple[ChangeAction, ...] = (
    "created", "configured", "recreated", "unchanged", "deleted", "skipped", "failed"
)


@dataclass(frozen=True)
class Change:
    ref: ObjectRef
    api_version: str
    action: ChangeAction
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "apiVersion": self.api_version,
            "kind": self.ref.kind,
            "namespace": self.ref.namespace,
            "name": self.ref.name,
            "message": self.message,
        }


@dataclass
class ChangeSet:
    app: str
    revision: str
    dry_run: bool = False
    changes: list[Change] = field(default_factory=list)
    error: str | None = None
    """Why the sync stopped early; None when it ran to the end."""
    warnings: list[str] = field(default_factory=list)
    inventory_annotations: dict[str, str] = field(default_factory=dict)
    """The app's ApplySet parent annotations as the sync found them (the recorded status)."""

    @property
    def ok(self) -> bool:
        return self.error is None and not any(c.action == "failed" for c in self.changes)

    def summary(self) -> dict[str, int]:
        counts = Counter(c.action for c in self.changes)
        return {action: counts.get(action, 0) for action in ACTIONS}

    def count(self, *actions: ChangeAction) -> int:
        return sum(1 for c in self.changes if c.action in actions)

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
        }
