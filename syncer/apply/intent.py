"""A sync's intent, recorded before its first write and cleared by its result: how a sync that
was cut off (kill -9, a node gone, a lost lock) is found by the next one. Pure.

A sync that writes records `status.syncer.dev/sync-in-progress` on the app's ApplySet parent,
under the status writer's field manager, after it took the app's lock and before its first
write; the status it records after the sync is applied without it, so the server removes it.
Nothing is written per step, and nothing stays at rest. The next sync that holds the lock and
still finds the record knows the sync that wrote it never finished: it reports it (a history
entry `Interrupted`, an Event, a warning, the App's `status.lastInterrupted`) with what its own
plan finds already applied, and then converges as any sync does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from syncer.apply.history import HistoryEntry, Trigger, entry

INTENT_ANNOTATION = "status.syncer.dev/sync-in-progress"


@dataclass(frozen=True)
class SyncIntent:
    revision: str
    plan_digest: str
    started: str
    """RFC 3339, UTC, by the clock of the machine that ran the sync."""
    trigger: Trigger

    def encode(self) -> str:
        return json.dumps({"revision": self.revision, "planDigest": self.plan_digest, "started": self.started,
                           "trigger": self.trigger.to_dict()}, separators=(",", ":"), sort_keys=True)


def read_intent(annotations: Mapping[str, str]) -> SyncIntent | None:
    """The unfinished sync a parent's annotations record, or None."""
    text = annotations.get(INTENT_ANNOTATION)
    if not text:
        return None
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = {}
    if not isinstance(value, dict):
        value = {}
    trigger = value.get("trigger")
    return SyncIntent(revision=str(value.get("revision") or "unknown"), plan_digest=str(value.get("planDigest") or ""),
                      started=str(value.get("started") or ""),
                      trigger=Trigger.from_dict(trigger if isinstance(trigger, dict) else {}))


@dataclass(frozen=True)
class Interrupted:
    """An unfinished sync the next sync found, and what that sync's plan found already applied."""

    intent: SyncIntent
    already_applied: int
    """Objects of the new plan that are unchanged: as the interrupted sync left them, or as
    they were before it."""
    planned: int
    found: str
    """When the next sync found it (RFC 3339): the interrupted sync ended before then."""

    def message(self, *, app: str) -> str:
        return (f"app {app}: the sync of revision {self.intent.revision[:12]} started at {self.intent.started} "
                f"({self.intent.trigger.text()}) was interrupted before it recorded its result; "
                f"{self.already_applied} of the {self.planned} planned object(s) are already applied")

    def history_entry(self) -> HistoryEntry:
        interrupted = entry(
            revision=self.intent.revision, started=self.intent.started, finished=self.found, seconds=0.0,
            trigger=self.intent.trigger, result="Interrupted", plan_digest=self.intent.plan_digest,
            error="the sync stopped before it recorded its result (its process was killed, or lost its lock)")
        return replace(interrupted, already_applied=self.already_applied, planned=self.planned)

    def to_dict(self) -> dict[str, Any]:
        value: dict[str, Any] = {"revision": self.intent.revision, "started": self.intent.started,
                                 "found": self.found, "trigger": self.intent.trigger.to_dict(),
                                 "alreadyApplied": self.already_applied, "planned": self.planned}
        if self.intent.plan_digest:
            value["planDigest"] = self.intent.plan_digest
        return value
