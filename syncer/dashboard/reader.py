"""What the dashboard reads, all from what the daemon already holds: the Apps from its App
watch (`syncer.daemon.apptable`), the objects of each App's last sync by this daemon (its
change set), their health from the watch cache, and the App's Events (one list request,
kept a few seconds). Nothing here writes.
"""

from __future__ import annotations

import logging
import threading
import time

from syncer.apply.changeset import ChangeSet
from syncer.apply.membercache import MemberCache
from syncer.apply.wait import health
from syncer.dashboard.views import ObjectRow
from syncer.daemon.apps import ClusterApps
from syncer.daemon.appspec import KIND
from syncer.errors import ClusterError, SyncerError
from syncer.kube import Kube
from syncer.model import Action, Object, ObjectRef

log = logging.getLogger(__name__)

EVENT_CACHE_SECONDS = 2.0
"""An App's Events are listed at most this often, however many pages follow it."""
GONE_ACTIONS = (Action.DELETED, Action.KEPT, Action.SKIPPED, Action.FAILED)
"""Objects whose health is not looked up: pruned, left alone, or not written."""


class AppsReader:
    def __init__(self, source: ClusterApps, *, kube: Kube, cache: MemberCache | None) -> None:
        self._source = source
        self._kube = kube
        self._cache = cache
        self._lock = threading.Lock()
        self._events: dict[str, tuple[float, list[Object]]] = {}
        self._changes: dict[str, ChangeSet] = {}
        """The last change set seen per App uid: an attempt that failed before its plan (a
        broken commit) has none, and the objects of the one before are still what runs."""
        self._diffs: dict[str, dict[ObjectRef, tuple[tuple[str, str], ...]]] = {}
        """The last diff per App uid: each field the last sync that changed objects changed,
        and why (the heals and resyncs after it change nothing, and would hide it)."""

    def apps(self) -> list[Object]:
        table = self._source.table
        entries = table.entries() if table is not None else []
        return sorted((entry.obj for entry in entries), key=lambda obj: (obj["metadata"].get("namespace", ""),
                                                                          obj["metadata"].get("name", "")))

    def app(self, namespace: str, name: str) -> Object | None:
        found = self._source.table.get(f"{namespace}/{name}") if self._source.table is not None else None
        return found[0].obj if found is not None else None

    def wait_for_change(self, seen: int, *, timeout: float) -> int:
        table = self._source.table
        if table is None:
            time.sleep(timeout)
            return seen
        return table.wait_for_change(seen, timeout=timeout)

    def objects(self, namespace: str, name: str) -> list[ObjectRow] | None:
        """The objects of the last sync this daemon ran for the App that got as far as a plan;
        None: none did since it started."""
        found = self._source.table.get(f"{namespace}/{name}") if self._source.table is not None else None
        if found is None:
            return None
        uid, attempt = str(found[0].uid), found[1].last_attempt
        with self._lock:
            if attempt is not None and attempt.changes is not None:
                if len(self._changes) > 4096:
                    self._changes.clear()
                    self._diffs.clear()
                self._changes[uid] = attempt.changes
                diff = {c.ref: tuple((f.path, f.describe()) for f in c.fields if f.is_change)
                        for c in attempt.changes.changes if c.fields}
                if diff:
                    self._diffs[uid] = diff
            changes, diff = self._changes.get(uid), self._diffs.get(uid, {})
        if changes is None:
            return None
        return [ObjectRow(kind=change.ref.kind, namespace=change.ref.namespace or "", name=change.ref.name,
                          action=str(change.action), message=change.message,
                          fields=diff.get(change.ref, ()),
                          health="-" if change.action in GONE_ACTIONS else self._health(change.api_version,
                                                                                         change.ref.kind,
                                                                                         change.ref.namespace,
                                                                                         change.ref.name))
                for change in changes.changes]

    def _health(self, api_version: str, kind: str, namespace: str | None, name: str) -> str:
        """Healthy, Progressing, Degraded or Missing from the watch cache; `unknown` when the
        cache does not hold the kind (it is off, or not watching it yet)."""
        if self._cache is None:
            return "unknown"
        try:
            resource = self._kube.resource_for(api_version, kind)
        except SyncerError:
            return "unknown"
        if not self._cache.watching([resource]):
            return "unknown"
        members = self._cache.members(resource, namespace) or []
        live = next((obj for obj in members if (obj.get("metadata") or {}).get("name") == name), None)
        if live is None:
            return "Missing"
        state = health(live).state
        return {"healthy": "Healthy", "failed": "Degraded"}.get(state, "Progressing")

    def events(self, app: Object) -> list[Object]:
        """The Events about this App (by uid), newest list kept `EVENT_CACHE_SECONDS`."""
        metadata = app.get("metadata") or {}
        namespace, uid = str(metadata.get("namespace") or ""), str(metadata.get("uid") or "")
        now = time.monotonic()
        with self._lock:
            kept = self._events.get(uid)
            if kept is not None and now - kept[0] < EVENT_CACHE_SECONDS:
                return kept[1]
        selector = f"involvedObject.kind={KIND},involvedObject.uid={uid}"
        try:
            answer = self._kube.request("GET", self._kube.resource_for("v1", "Event").path(namespace=namespace),
                                        subject=f"Events about App/{namespace}/{metadata.get('name')}", verb="list",
                                        query={"fieldSelector": selector, "limit": "200"}, retry=False)
            found = [item for item in (answer or {}).get("items") or [] if isinstance(item, dict)]
        except ClusterError as error:
            log.info("dashboard: cannot list the Events of App/%s/%s: %s", namespace, metadata.get("name"), error)
            found = []
        with self._lock:
            if len(self._events) > 1024:
                self._events.clear()
            self._events[uid] = (now, found)
        return found
