"""The table of Apps the watch keeps: each App's latest `AppEntry`, swapped as one reference.

The watch (one reflector per namespace, or one for all) only reads and schedules: a new App
becomes an interval job, a changed interval re-schedules it, a new generation, a new
`syncer.dev/reconcile-requested-at` value or a deletion runs it at once. Every replica
watches, so a standby takes over with a full table.
"""

from __future__ import annotations

import logging
import threading

from syncer.apply.applyset import Inventory
from syncer.daemon.appentry import AppEntry, AppTickState, app_entry, key_of, wants_tick
from syncer.daemon.appspec import PRUNE_FINALIZER, TenantPolicy
from syncer.daemon.source import Schedule
from syncer.errors import ClusterError
from syncer.model import Object

log = logging.getLogger(__name__)


class AppTable:
    def __init__(self, *, schedule: Schedule, policy: TenantPolicy) -> None:
        self._schedule = schedule
        self._policy = policy
        self._entries: dict[str, AppEntry] = {}
        self._states: dict[str, AppTickState] = {}
        self._lock = threading.Lock()
        self._changes = threading.Condition()
        self._version = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: str) -> tuple[AppEntry, AppTickState] | None:
        """The App's entry as of now (one snapshot) and its ticks' state; None: it is gone."""
        with self._lock:
            entry, state = self._entries.get(key), self._states.get(key)
        return None if entry is None or state is None else (entry, state)

    def entries(self) -> list[AppEntry]:
        with self._lock:
            return list(self._entries.values())

    def states(self) -> list[AppTickState]:
        with self._lock:
            return list(self._states.values())

    def wait_for_change(self, seen: int, *, timeout: float) -> int:
        """The table's version once it differs from `seen` (or `timeout` passed): every App
        the watch adds, changes or forgets moves it on. For readers that follow the Apps
        live (the dashboard's event streams)."""
        with self._changes:
            self._changes.wait_for(lambda: self._version != seen, timeout=timeout)
            return self._version

    def _changed(self) -> None:
        with self._changes:
            self._version += 1
            self._changes.notify_all()

    def resync(self, namespace: str | None, objects: list[Object]) -> None:
        """A fresh list of the Apps in `namespace` (None: all): what it lacks is gone."""
        listed = {key_of(obj) for obj in objects}
        for obj in objects:
            self.upsert(obj)
        with self._lock:
            gone = [key for key in self._entries
                    if key not in listed and (namespace is None or key.startswith(namespace + "/"))]
        for key in gone:
            self.forget(key)

    def upsert(self, obj: Object) -> None:
        entry = app_entry(obj, policy=self._policy)
        key = entry.key
        replaced: AppTickState | None = None
        with self._lock:
            before, state = self._entries.get(key), self._states.get(key)
            if before is None or state is None or before.uid != entry.uid:
                # New, or deleted and created again while the watch was down: ticks start afresh.
                replaced, before = state, None
                state = self._states[key] = AppTickState(status=dict(obj.get("status") or {}))
            self._entries[key] = entry
        self._changed()
        if replaced is not None:
            replaced.remove()
        spec = entry.spec
        self._schedule.route(key, applyset=Inventory.for_app(app=spec.config.name, namespace=spec.config.id.namespace).id
                             if spec is not None else None)
        if before is None or entry.interval != before.interval:
            self._schedule.put(key, interval=entry.interval)
        elif wants_tick(before, entry):
            if state.reconciler is not None:  # an explicit request: the app moves to Git's head
                state.reconciler.expect_news(move_on=True)
            self._schedule.trigger(key)

    def forget(self, key: str) -> None:
        with self._lock:
            entry = self._entries.pop(key, None)
            state = self._states.pop(key, None)
        if entry is None:
            return
        self._changed()
        self._schedule.remove(key)
        if state is not None:
            state.remove()
        log.info("App/%s is gone: no longer synced (its objects stay unless it had the %s finalizer)",
                 key, PRUNE_FINALIZER)


class AppsWatchHandler:
    """What the reflector of the Apps in one namespace (or all) tells the table."""

    def __init__(self, table: AppTable, *, namespace: str | None) -> None:
        self._table = table
        self._namespace = namespace

    def listed(self, objects: list[Object]) -> None:
        self._table.resync(self._namespace, objects)

    def event(self, kind: str, obj: Object) -> None:
        if kind in ("ADDED", "MODIFIED"):
            self._table.upsert(obj)
        elif kind == "DELETED":
            self._table.forget(key_of(obj))

    def failed(self, error: ClusterError) -> bool:
        log.warning("watch of Apps in %s failed: %s; listing again", self._namespace or "all namespaces", error)
        return True
