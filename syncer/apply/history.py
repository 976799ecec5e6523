"""An app's sync history: the last syncs, newest first, as plain data. Pure.

Kept on the app's ApplySet parent by the status writer (`syncer.apply.status`), in the same
write as the last sync's status, so every sync of the app is in it, whoever made it (`syncer
sync`, the daemon, `syncer sync --app`); an App's `status.history` is the daemon's copy of it.

What goes in (`add_entry`): an entry per sync whose status is recorded (it changed
something, or its outcome is news: an idle resync records nothing), except a heal that wrote
nothing; consecutive heals of one revision with one result share an entry with a count; an
interrupted sync found by the next run gets its own entry. At most `MAX_ENTRIES` are kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

MAX_ENTRIES = 20
MAX_OBJECTS = 10
"""Objects a heal entry names at most; its summary counts them all."""
MAX_ERROR = 500
"""An entry's error is cut here: twenty of them share the parent's 256 KiB of annotations."""

HistoryResult = Literal["Succeeded", "Failed", "Interrupted"]


class TriggerKind(StrEnum):
    """What started a sync."""

    INTERVAL = "interval"
    """The daemon's schedule (a new App or spec included)."""
    WEBHOOK = "webhook"
    """A push the daemon's webhook received."""
    HEAL = "heal"
    """The daemon restoring the revision the cluster records: objects drifted from it."""
    RECONCILE = "reconcile"
    """An explicit request (`syncer reconcile`, the App's reconcile annotation)."""
    CLI = "cli"
    """A user's `syncer sync` (or `install`, `apply`)."""
    ROLLBACK = "rollback"
    """`syncer rollback`: an earlier revision of the history, synced and held (user: who asked)."""


@dataclass(frozen=True)
class Trigger:
    kind: TriggerKind
    user: str = ""
    """Who ran the CLI (the kubeconfig's user); "" for the daemon."""
    objects: tuple[str, ...] = ()
    """A heal's objects that drifted (what it wrote), at most MAX_OBJECTS."""

    def to_dict(self) -> dict[str, Any]:
        value: dict[str, Any] = {"kind": str(self.kind)}
        if self.user:
            value["user"] = self.user
        if self.objects:
            value["objects"] = list(self.objects)
        return value

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Trigger:
        try:
            kind = TriggerKind(str(value.get("kind")))
        except ValueError:
            kind = TriggerKind.INTERVAL
        objects = value.get("objects")
        return cls(kind=kind, user=str(value.get("user") or ""),
                   objects=tuple(str(o) for o in objects) if isinstance(objects, list) else ())

    def text(self) -> str:
        if self.user:
            return f"{self.kind} ({self.user})"
        return str(self.kind)


@dataclass(frozen=True)
class HistoryEntry:
    revision: str
    started: str
    """RFC 3339, UTC."""
    finished: str
    seconds: float
    trigger: Trigger
    result: HistoryResult
    summary: dict[str, int] = field(default_factory=dict)
    """Objects per action, the actions that happened only."""
    plan_digest: str = ""
    """The digest of the plan the sync executed (`syncer.apply.planfile`); "" when it wrote
    nothing or failed before it had a plan."""
    error: str = ""
    count: int = 1
    """Heals of one revision in a row, merged into this entry."""
    already_applied: int | None = None
    """Interrupted only: of the objects the next run planned, how many it found as the
    interrupted sync would have left them (unchanged)."""
    planned: int | None = None

    def to_dict(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "revision": self.revision, "started": self.started, "finished": self.finished,
            "durationSeconds": round(self.seconds, 3), "trigger": self.trigger.to_dict(), "result": self.result,
            "summary": dict(self.summary), "count": self.count,
        }
        if self.plan_digest:
            value["planDigest"] = self.plan_digest
        if self.error:
            value["error"] = self.error
        if self.already_applied is not None:
            value["alreadyApplied"] = self.already_applied
        if self.planned is not None:
            value["planned"] = self.planned
        return value

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> HistoryEntry | None:
        """The entry, or None when it is not one (a hand edit of the annotation)."""
        result = value.get("result")
        if result not in ("Succeeded", "Failed", "Interrupted") or not isinstance(value.get("revision"), str):
            return None
        summary = value.get("summary")
        trigger = value.get("trigger")
        applied, planned = value.get("alreadyApplied"), value.get("planned")
        return cls(
            revision=value["revision"], started=str(value.get("started") or ""),
            finished=str(value.get("finished") or ""), seconds=_number(value.get("durationSeconds")),
            trigger=Trigger.from_dict(trigger if isinstance(trigger, dict) else {}), result=result,
            summary={str(k): v for k, v in summary.items() if isinstance(v, int)} if isinstance(summary, dict) else {},
            plan_digest=str(value.get("planDigest") or ""), error=str(value.get("error") or ""),
            count=value["count"] if isinstance(value.get("count"), int) else 1,
            already_applied=applied if isinstance(applied, int) else None,
            planned=planned if isinstance(planned, int) else None,
        )


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def entry(
    *, revision: str, started: str, finished: str, seconds: float, trigger: Trigger, result: HistoryResult,
    summary: dict[str, int] | None = None, plan_digest: str = "", error: str = "",
) -> HistoryEntry:
    """A new entry, its error cut to MAX_ERROR and its trigger's objects to MAX_OBJECTS."""
    if len(error) > MAX_ERROR:
        error = error[: MAX_ERROR - 16] + " ... (truncated)"
    trigger = replace(trigger, objects=trigger.objects[:MAX_OBJECTS])
    return HistoryEntry(revision=revision, started=started, finished=finished, seconds=seconds, trigger=trigger,
                        result=result, summary={k: v for k, v in (summary or {}).items() if v},
                        plan_digest=plan_digest, error=error)


def wrote_something(new: HistoryEntry) -> bool:
    return any(new.summary.get(action) for action in ("created", "configured", "recreated", "deleted"))


def add_entry(history: tuple[HistoryEntry, ...], new: HistoryEntry, *,
              limit: int = MAX_ENTRIES) -> tuple[HistoryEntry, ...]:
    """`history` (newest first) with `new` added: not at all for a heal that wrote nothing
    and did not fail, merged into the newest entry for another heal of the same revision
    with the same result, and bounded to `limit` entries."""
    if new.trigger.kind is TriggerKind.HEAL and new.result == "Succeeded" and not wrote_something(new):
        return history
    if history and _same_heal(history[0], new):
        return (_merged(history[0], new), *history[1:])[:limit]
    return (new, *history)[:limit]


def _same_heal(newest: HistoryEntry, new: HistoryEntry) -> bool:
    return (newest.trigger.kind is TriggerKind.HEAL and new.trigger.kind is TriggerKind.HEAL
            and (newest.revision, newest.result) == (new.revision, new.result))


def _merged(newest: HistoryEntry, new: HistoryEntry) -> HistoryEntry:
    summary = dict(newest.summary)
    for action, count in new.summary.items():
        if action != "unchanged":
            summary[action] = summary.get(action, 0) + count
    if "unchanged" in new.summary:
        summary["unchanged"] = new.summary["unchanged"]
    objects = tuple(dict.fromkeys((*new.trigger.objects, *newest.trigger.objects)))[:MAX_OBJECTS]
    return replace(newest, finished=new.finished, seconds=newest.seconds + new.seconds,
                   trigger=replace(newest.trigger, objects=objects), count=newest.count + new.count,
                   summary=summary, plan_digest=new.plan_digest or newest.plan_digest, error=new.error)


def encode(history: tuple[HistoryEntry, ...]) -> str:
    return json.dumps([e.to_dict() for e in history], separators=(",", ":"), sort_keys=True)


def decode(text: str | None) -> tuple[HistoryEntry, ...]:
    """The history an annotation holds; entries that are not entries are left out."""
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return ()
    if not isinstance(value, list):
        return ()
    entries = (HistoryEntry.from_dict(item) for item in value if isinstance(item, dict))
    return tuple(e for e in entries if e is not None)
