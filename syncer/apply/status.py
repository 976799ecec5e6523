"""What the daemon last did for an app, kept where users can read it with kubectl.

The status lives on the app's ApplySet parent (`ConfigMap syncer-<app>`) as annotations, and
each change of it is also reported as a Kubernetes Event on that ConfigMap:

    status.syncer.dev/revision   the commit of the last sync (attempted)
    status.syncer.dev/applied-revision   the commit of the last sync that made all its writes
                                 (health may have timed out): a sync that failed before
                                 keeps it, so it always says what the cluster runs
    status.syncer.dev/time       when this status was recorded (RFC 3339, UTC)
    status.syncer.dev/result     Succeeded | Failed
    status.syncer.dev/error      why it failed (absent after a success)
    status.syncer.dev/summary    {"created": 1, "configured": 2, ...} as JSON
    status.syncer.dev/history    the last syncs, newest first, as JSON (`syncer.apply.history`),
                                 written in the same request
    status.syncer.dev/sync-in-progress   a writing sync's intent, from before its first write
                                 until its result (`syncer.apply.intent`)

The annotations are written by server-side apply under their own field manager,
`syncer-status`, so they never take over or disturb the inventory fields the sync owns (and a
sync never removes them). They are written only when the revision, the result or the error
changed, or the sync changed something (and around a sync that writes, its intent): a resync
that finds nothing to do writes nothing.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Literal

from syncer.apply.applyset import ID_LABEL, PARENT_PREFIX, TOOLING, TOOLING_ANNOTATION, Inventory
from syncer.apply.changeset import ChangeSet, summary_text
from syncer.apply.history import HistoryEntry, Trigger, TriggerKind, add_entry, decode, encode, entry
from syncer.apply.intent import INTENT_ANNOTATION, Interrupted, SyncIntent
from syncer.errors import ClusterError, Conflict, LockLost
from syncer.kube import Kube
from syncer.model import CHANGING_ACTIONS, Action, Object

log = logging.getLogger(__name__)

STATUS_MANAGER = "syncer-status"
PREFIX = "status.syncer.dev/"
REVISION_ANNOTATION = PREFIX + "revision"
TIME_ANNOTATION = PREFIX + "time"
RESULT_ANNOTATION = PREFIX + "result"
ERROR_ANNOTATION = PREFIX + "error"
SUMMARY_ANNOTATION = PREFIX + "summary"
APPLIED_REVISION_ANNOTATION = PREFIX + "applied-revision"
MAX_ERROR_LENGTH = 4000
"""Annotations share a 256 KiB budget per object; a long list of failures is cut here."""
EVENT_COMPONENT = "syncer"

Result = Literal["Succeeded", "Failed"]


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339(seconds: float) -> str:
    """A POSIX time as RFC 3339, UTC."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class AppStatus:
    """The outcome of one sync as users see it."""

    revision: str
    result: Result
    error: str = ""
    summary: dict[str, int] = field(default_factory=dict)
    time: str = field(default_factory=now_rfc3339)
    applied_revision: str = ""
    """The last revision that synced successfully ("" when none did, as far as known)."""

    @classmethod
    def of(cls, changes: ChangeSet) -> AppStatus:
        error = changes.error or "; ".join(
            f"{c.ref}: {c.message}" for c in changes.changes if c.action is Action.FAILED
        )
        return cls(
            revision=changes.revision,
            result="Succeeded" if changes.ok else "Failed",
            error=error if not changes.ok else "",
            summary={k: v for k, v in changes.summary().items() if v},
            applied_revision=changes.revision if changes.applied else "",
        )

    @classmethod
    def failed(cls, *, revision: str, error: str) -> AppStatus:
        return cls(revision=revision, result="Failed", error=error)

    def same_outcome(self, other: AppStatus | None) -> bool:
        """True when recording this status again would tell users nothing new."""
        return other is not None and (self.revision, self.result, self.error) == (
            other.revision, other.result, other.error)

    def summary_text(self) -> str:
        return summary_text(self.summary)

    def annotations(self) -> dict[str, str]:
        values = {
            REVISION_ANNOTATION: self.revision,
            TIME_ANNOTATION: self.time,
            RESULT_ANNOTATION: self.result,
            SUMMARY_ANNOTATION: json.dumps(self.summary, separators=(",", ":"), sort_keys=True),
        }
        if self.applied_revision:
            values[APPLIED_REVISION_ANNOTATION] = self.applied_revision
        if self.error:
            error = self.error
            if len(error) > MAX_ERROR_LENGTH:
                error = error[: MAX_ERROR_LENGTH - 20] + " ... (truncated)"
            values[ERROR_ANNOTATION] = error
        return values


def needs_recording(new: AppStatus, recorded: AppStatus | None, *, changed: bool) -> bool:
    """Whether a sync's status is worth a write: only news, so an idle resync writes nothing."""
    return changed or not new.same_outcome(recorded)


def read_status(parent: Object | None) -> AppStatus | None:
    """The status recorded on a parent ConfigMap, or None when it has none."""
    return status_from_annotations(((parent or {}).get("metadata") or {}).get("annotations") or {})


def status_from_annotations(annotations: dict[str, str]) -> AppStatus | None:
    """The status recorded in a parent's annotations, or None when there is none."""
    revision = annotations.get(REVISION_ANNOTATION)
    result = annotations.get(RESULT_ANNOTATION)
    if revision is None or result not in ("Succeeded", "Failed"):
        return None
    outcome: Literal["Succeeded", "Failed"] = "Succeeded" if result == "Succeeded" else "Failed"
    try:
        summary = json.loads(annotations.get(SUMMARY_ANNOTATION) or "{}")
    except ValueError:
        summary = {}
    if not isinstance(summary, dict):
        summary = {}
    return AppStatus(
        revision=revision,
        result=outcome,
        error=annotations.get(ERROR_ANNOTATION, ""),
        summary={str(k): int(v) for k, v in summary.items() if isinstance(v, int)},
        time=annotations.get(TIME_ANNOTATION, ""),
        applied_revision=annotations.get(APPLIED_REVISION_ANNOTATION)
        or (revision if outcome == "Succeeded" else ""),
    )


def read_history(parent: Object | None) -> tuple[HistoryEntry, ...]:
    """The sync history a parent records, newest first (empty when it has none)."""
    return decode((((parent or {}).get("metadata") or {}).get("annotations") or {}).get(HISTORY_ANNOTATION))


def read_app_status(kube: Kube, *, app: str, namespace: str) -> AppStatus | None:
    parent = Inventory.for_app(app=app, namespace=namespace).parent
    live = kube.get(kube.resource_for("v1", "ConfigMap"), parent.name, namespace=namespace)
    return read_status(live)


HISTORY_ANNOTATION = PREFIX + "history"
WRITE_ATTEMPTS = 3


def write_status(
    kube: Kube, *, app: str, namespace: str, status: AppStatus | None,
    add: Sequence[HistoryEntry] = (), intent: SyncIntent | None = None, ends_intent: bool = False,
) -> tuple[Object, tuple[HistoryEntry, ...]]:
    """Server-side apply the status annotations onto the app's parent, with the history the
    parent holds plus `add`, and `intent` when a sync is about to write; returns the parent
    and its history. `status` None keeps the recorded status (a sync recording its intent,
    a heal of an older revision recording only its history entry).

    The annotations are this field manager's and applied whole: what it applied once and
    leaves out now, the server removes. A recorded applied revision is therefore carried
    over by a failure, and a recorded intent by every write but the one that `ends_intent`:
    the outcome of a sync under the app's lock that wrote the intent or found it
    interrupted. Any other writer (a failure before the lock, a sync that found the lock
    held) would otherwise erase the intent of a sync that is running, or that died and has
    yet to be reported. Read and written with the
    parent's resourceVersion as a precondition, so that two writers' entries never overwrite
    each other's; a conflict reads again.

    The status always carries the ApplySet id label and the tooling annotation: when there is
    no parent yet (the very first sync failed before writing anything) it creates the parent,
    which must be recognisably the app's for a user looking for why the app never synced.
    """
    inventory = Inventory.for_app(app=app, namespace=namespace)
    configmaps = kube.resource_for("v1", "ConfigMap")
    for attempt in range(WRITE_ATTEMPTS):
        live = kube.get(configmaps, inventory.parent.name, namespace=namespace)
        annotations = ((live or {}).get("metadata") or {}).get("annotations") or {}
        recorded = status_from_annotations(annotations)
        written = status or recorded
        if written is not None and not written.applied_revision and recorded is not None:
            # A failed sync must not erase what the cluster last applied.
            written = replace(written, applied_revision=recorded.applied_revision)
        history = decode(annotations.get(HISTORY_ANNOTATION))
        for entry in add:
            history = add_entry(history, entry)
        values = {**(written.annotations() if written is not None else {}), TOOLING_ANNOTATION: TOOLING}
        if history:
            values[HISTORY_ANNOTATION] = encode(history)
        if intent is not None:
            values[INTENT_ANNOTATION] = intent.encode()
        elif not ends_intent and INTENT_ANNOTATION in annotations:
            values[INTENT_ANNOTATION] = annotations[INTENT_ANNOTATION]
        metadata: Object = {"name": inventory.parent.name, "namespace": namespace,
                            "labels": {ID_LABEL: inventory.id}, "annotations": values}
        if live is not None:
            metadata["resourceVersion"] = live["metadata"]["resourceVersion"]
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
        try:
            return kube.apply(configmaps, body, subject=str(inventory.parent), field_manager=STATUS_MANAGER,
                              force=True, dry_run=False), history
        except Conflict:
            if attempt == WRITE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def record_intent(kube: Kube, *, app: str, namespace: str, intent: SyncIntent) -> None:
    """Record that a sync is about to write (see `syncer.apply.intent`)."""
    write_status(kube, app=app, namespace=namespace, status=None, intent=intent)


def event_about(obj: Object, *, reason: str, message: str, warning: bool, instance: str = "") -> Object:
    """A core/v1 Event about an object (the app's parent, an App), as `kubectl describe` shows it."""
    metadata = obj["metadata"]
    now = now_rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{metadata['name']}.", "namespace": metadata["namespace"]},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", "v1"), "kind": obj.get("kind", "ConfigMap"), "name": metadata["name"],
            "namespace": metadata["namespace"], "uid": metadata.get("uid"),
            "resourceVersion": metadata.get("resourceVersion"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": EVENT_COMPONENT, "host": socket.gethostname()},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": EVENT_COMPONENT,
        "reportingInstance": (instance or socket.gethostname())[:128],
    }


def emit_event(kube: Kube, *, app: str, parent: Object, status: AppStatus, instance: str = "") -> Object:
    """SyncSucceeded (Normal) or SyncFailed (Warning) on the app's parent ConfigMap."""
    succeeded = status.result == "Succeeded"
    short = status.revision[:12]
    message = (f"app {app} synced revision {short}: {status.summary_text()}" if succeeded
               else f"app {app} failed to sync revision {short}: {status.error}")
    event = event_about(parent, reason="SyncSucceeded" if succeeded else "SyncFailed", message=message,
                        warning=not succeeded, instance=instance)
    metadata = parent["metadata"]
    return kube.create(kube.resource_for("v1", "Event"), event,
                       subject=f"Event/{metadata['namespace']}/{metadata['name']}")


def record(
    kube: Kube, *, app: str, namespace: str, status: AppStatus, instance: str = "",
    add: Sequence[HistoryEntry] = (), ends_intent: bool = False,
) -> tuple[HistoryEntry, ...]:
    """Write the status, with `add` in its history, and its Event; the history as written
    (`ends_intent`: see `write_status`).
    Raises ClusterError when the status cannot be written (e.g. the app's namespace does not
    exist yet); a failed Event is only logged, as the status itself already tells the story."""
    parent, history = write_status(kube, app=app, namespace=namespace, status=status, add=add,
                                   ends_intent=ends_intent)
    try:
        emit_event(kube, app=app, parent=parent, status=status, instance=instance)
    except ClusterError as error:
        log.warning("app %s: cannot create an Event: %s", app, error)
    return history


def report_interrupted(kube: Kube, *, app: str, parent: Object, interrupted: Interrupted, instance: str = "") -> None:
    """A Warning Event `SyncInterrupted` on the app's parent; a failed Event is only logged."""
    metadata = parent["metadata"]
    event = event_about(parent, reason="SyncInterrupted", message=interrupted.message(app=app), warning=True,
                        instance=instance)
    try:
        kube.create(kube.resource_for("v1", "Event"), event,
                    subject=f"Event/{metadata['namespace']}/{metadata['name']}")
    except ClusterError as error:
        log.warning("app %s: cannot create an Event: %s", app, error)


def changes_entry(changes: ChangeSet) -> HistoryEntry:
    """A sync's history entry; a heal names the objects it wrote: those that had drifted."""
    trigger = changes.trigger
    if trigger.kind is TriggerKind.HEAL:
        trigger = replace(trigger, objects=tuple(str(c.ref) for c in changes.changes if c.action in CHANGING_ACTIONS))
    status = AppStatus.of(changes)
    return entry(revision=changes.revision, started=changes.started or now_rfc3339(), finished=now_rfc3339(),
                 seconds=changes.seconds, trigger=trigger, result=status.result, summary=status.summary,
                 plan_digest=changes.plan_digest, error=status.error)


@dataclass(frozen=True)
class AppStatusRow:
    """One app as `syncer status` lists it: where its parent is and what it says."""

    app: str
    namespace: str
    status: AppStatus | None
    """None when the app has not been synced by the daemon (or has no parent at all)."""

    def to_dict(self) -> dict[str, object]:
        status = self.status
        return {
            "app": self.app,
            "namespace": self.namespace,
            "inventory": f"ConfigMap/{self.namespace}/{PARENT_PREFIX}{self.app}",
            "revision": status.revision if status else None,
            "appliedRevision": (status.applied_revision or None) if status else None,
            "time": status.time if status else None,
            "result": status.result if status else None,
            "error": (status.error or None) if status else None,
            "summary": dict(status.summary) if status else {},
        }


def list_app_statuses(kube: Kube, *, namespace: str | None) -> list[AppStatusRow]:
    """Every syncer ApplySet parent in a namespace (or all namespaces, None), with its status."""
    configmaps = kube.resource_for("v1", "ConfigMap")
    rows = []
    for parent in kube.list(configmaps, namespace=namespace, label_selector=ID_LABEL):
        metadata = parent["metadata"]
        tooling = (metadata.get("annotations") or {}).get(TOOLING_ANNOTATION, "")
        name = str(metadata["name"])
        if not tooling.startswith("syncer/") or not name.startswith(PARENT_PREFIX):
            continue
        rows.append(AppStatusRow(app=name[len(PARENT_PREFIX):], namespace=str(metadata["namespace"]),
                                 status=read_status(parent)))
    return sorted(rows, key=lambda row: (row.namespace, row.app))


class OutcomeRecorder:
    """Records an app's sync outcomes, for the CLI and the daemon alike: only news is written
    (see `needs_recording`), with its history entry; what was recorded is remembered across
    ticks, and what a status said before this process started is read back once (from the
    plan when it read the parent, else with one GET). A sync that recorded its intent always
    records its result, which clears the intent."""

    def __init__(self, kube: Kube, *, app: str, namespace: str, instance: str = "", create_parent: bool = True) -> None:
        self._kube = kube
        self._app = app
        self._namespace = namespace
        self._instance = instance
        self._create_parent = create_parent
        """False for `syncer sync`: a CLI sync that fails validation changes nothing in the
        cluster, so its failure is recorded only on a parent that already exists; the daemon
        creates one, so that `syncer status` tells why an app never synced."""
        self._parent_exists = True
        self._recorded: AppStatus | None = None
        self._loaded = False
        self.history: tuple[HistoryEntry, ...] | None = None
        """The app's history as last read or written here (None: not known yet)."""

    def _load(self, parent_annotations: dict[str, str] | None) -> None:
        """What the parent recorded, once: later plans may read it from a cache that has not
        caught up with this recorder's own writes."""
        if self._loaded:
            return
        if parent_annotations is not None:
            self._recorded = status_from_annotations(parent_annotations)
            self.history = decode(parent_annotations.get(HISTORY_ANNOTATION))
        else:
            configmaps = self._kube.resource_for("v1", "ConfigMap")
            parent = self._kube.get(configmaps, PARENT_PREFIX + self._app, namespace=self._namespace)
            self._recorded, self._parent_exists = read_status(parent), parent is not None
            self.history = read_history(parent)
        self._loaded = True

    def record(
        self, status: AppStatus, *, changed: bool, parent_annotations: dict[str, str] | None = None,
        entries: Sequence[HistoryEntry] = (), must: bool = False, kube: Kube | None = None,
        ends_intent: bool = False,
    ) -> bool:
        """Write the status when it is news (or `must`); True when it was written. `kube`:
        the client to write with (the lock-guarded one, under the app's lock). Raises
        ClusterError."""
        self._load(parent_annotations)
        if not must and not needs_recording(status, self._recorded, changed=changed):
            return False
        if not self._parent_exists and not self._create_parent:
            return False
        self.history = record(kube or self._kube, app=self._app, namespace=self._namespace, status=status,
                              instance=self._instance, add=entries, ends_intent=ends_intent)
        self._recorded, self._parent_exists = status, True
        return True

    def record_changes(self, changes: ChangeSet, *, current: bool = True, kube: Kube | None = None) -> bool:
        """The outcome of a sync that ran (never of a dry run: that records nothing), with an
        interrupted sync it found. `current` False: a heal of an older revision than the one
        the app's status is about, which records only its history entry (when it wrote, or
        must clear its intent)."""
        if changes.dry_run:
            return False
        client = kube or self._kube
        entries = [changes_entry(changes)]
        interrupted = changes.interrupted
        if interrupted is not None:
            entries.insert(0, interrupted.history_entry())
        # Only a sync under the lock has an intent of its own or found one interrupted.
        must = changes.intent is not None or interrupted is not None
        if current:
            written = self.record(AppStatus.of(changes), changed=changes.changed_something,
                                  parent_annotations=changes.inventory_annotations, entries=entries, must=must,
                                  kube=client, ends_intent=must)
        elif must or changes.changed_something:
            _, self.history = write_status(client, app=self._app, namespace=self._namespace, status=None,
                                           add=entries, ends_intent=must)
            written = True
        else:
            self._load(changes.inventory_annotations)
            written = False
        if interrupted is not None:
            parent = client.get(client.resource_for("v1", "ConfigMap"), PARENT_PREFIX + self._app,
                                namespace=self._namespace)
            if parent is not None:
                report_interrupted(client, app=self._app, parent=parent, interrupted=interrupted,
                                   instance=self._instance)
        return written

    def record_failure(self, *, revision: str, error: Exception, trigger: Trigger = Trigger(TriggerKind.CLI),
                       started: str = "", seconds: float = 0.0) -> bool:
        """The outcome of a sync that failed before or while it ran (validation, source, lock).
        A sync that lost its lock records nothing: the sync that holds it now is the app's
        latest outcome, and this one may no longer write. Recorded without the lock, so a
        recorded intent stays (a sync that failed after writing its own is then reported
        interrupted by the next, with what it had applied)."""
        if isinstance(error, LockLost):
            return False
        status = AppStatus.failed(revision=revision, error=str(error))
        finished = now_rfc3339()
        failed = entry(revision=revision, started=started or finished, finished=finished, seconds=seconds,
                       trigger=trigger, result="Failed", error=status.error)
        return self.record(status, changed=False, entries=[failed])
