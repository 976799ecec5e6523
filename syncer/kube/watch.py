"""The one reflector: list a kind, then watch it from the list's version, for as long as asked.

client-go's reflector, in the shape syncer needs, used by everything that follows the cluster
(the daemon's member cache, its table of Apps, the shard membership Leases):

* **List, then watch** from the list's resourceVersion, with bookmarks on, so an idle watch
  still learns a version to resume from.
* **Resume** from the last version seen when the server ends a watch at its timeout.
* **List again** after a 410 Gone (as an ERROR event or as the answer), after any other
  ERROR event, when the server ended a watch early, and every `relist_interval` whatever
  happened: the safety net for an event that was somehow lost. A watch the server ends early
  is one whose kind went away (its CustomResourceDefinition was deleted, maybe created again
  with a new history that does not replay the old objects' deletions) or a server going
  away: resuming would miss what a list shows.
* **Back off** from `retry_seconds` to `max_retry_seconds` while requests fail, starting over
  after a watch that worked.

The handler is told what the reflector saw (`listed`, `event`) and decides what it means; it
also decides whether a failure ends the reflector (`failed`). A handler that raises is
logged and the kind is listed again: its bookkeeping may be off, a list sets it right.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from syncer.errors import ClusterError
from syncer.kube.client import Kube
from syncer.kube.resource import Resource
from syncer.model import Object

log = logging.getLogger(__name__)

GONE = 410
WATCH_SECONDS = 300
"""A watch is re-opened (from the last version seen) this often, as client-go's reflector does."""
RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 30.0
EARLY_END_SLACK = 1.0
"""A watch that ends this much before its timeout was ended by the server, not by the timeout."""


class WatchHandler(Protocol):
    def listed(self, objects: list[Object]) -> None:
        """Every object of the kind (as selected), replacing whatever was known before."""

    def event(self, kind: str, obj: Object) -> None:
        """One watch event: ADDED, MODIFIED, DELETED or BOOKMARK (`obj` then carries only a
        resourceVersion)."""

    def failed(self, error: ClusterError) -> bool:
        """A list or watch failed; True: try again after the backoff, False: stop (e.g. the
        kind is forbidden or no longer served)."""


class Reflector:
    """Follows one kind (in one namespace, or all) for `handler` until `stop` is set.
    `run` blocks: give it a thread (`start`)."""

    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        *,
        handler: WatchHandler,
        stop: threading.Event,
        namespace: str | None = None,
        label_selector: str | None = None,
        relist_interval: float | None = None,
        watch_seconds: int = WATCH_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
        max_retry_seconds: float = MAX_RETRY_SECONDS,
    ) -> None:
        self._kube = kube
        self.resource = resource
        self._handler = handler
        self._stop = stop
        self._namespace = namespace
        self._selector = label_selector
        self._relist_interval = relist_interval
        self._watch_seconds = watch_seconds
        self._retry_seconds = retry_seconds
        self._max_retry_seconds = max_retry_seconds
        self.version = ""
        """Where the next watch resumes; empty: list first."""
        self.established = False
        """The handler's view is current: listed, and a watch is open or being resumed."""
        self.lists = 0
        self.watches = 0

    @property
    def name(self) -> str:
        where = f" in {self._namespace}" if self._namespace else ""
        return f"{self.resource.group_kind}{where}"

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=f"watch-{self.name}", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        delay = self._retry_seconds
        relist_due = float("inf")
        while not self._stop.is_set():
            try:
                if not self.version or time.monotonic() >= relist_due:
                    self._list()
                    if self._relist_interval is not None:
                        relist_due = time.monotonic() + self._relist_interval
                self._watch(until=relist_due)
                delay = self._retry_seconds
            except ClusterError as error:
                self.established = False
                if error.status == GONE:  # too old to resume from
                    self.version = ""
                if self._stop.is_set() or not self._handler.failed(error):
                    return
                log.info("watch of %s: %s; again in %.0fs", self.name, error.message, delay)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self._max_retry_seconds)
            except Exception:  # a handler's bug must not end the watch: list again
                log.exception("watch of %s: handling what it saw failed; listing again", self.name)
                self.established, self.version = False, ""
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self._max_retry_seconds)

    def _list(self) -> None:
        objects, version = self._kube.list_versioned(self.resource, namespace=self._namespace,
                                                     label_selector=self._selector)
        self.lists += 1
        self._handler.listed(objects)
        self.version, self.established = version, True

    def _watch(self, *, until: float) -> None:
        """Follow one watch request until the server ends it, an ERROR event (then list
        again), or the safety re-list is due."""
        self.watches += 1
        # Resuming replays whatever happened since `version`: what the handler holds is at
        # most that far behind.
        self.established = True
        timeout = self._watch_seconds
        if until != float("inf"):
            timeout = max(1, min(timeout, int(until - time.monotonic()) + 1))
        ends_at = time.monotonic() + timeout
        for event in self._kube.watch(self.resource, namespace=self._namespace, resource_version=self.version,
                                      label_selector=self._selector, timeout_seconds=timeout):
            if self._stop.is_set():
                return
            kind, obj = str(event.get("type")), event.get("object") or {}
            if kind == "ERROR":
                log.info("watch of %s: %s; listing again", self.name, obj.get("message"))
                self.version = ""
                return
            obj.setdefault("apiVersion", self.resource.api_version)
            obj.setdefault("kind", self.resource.kind)
            self._handler.event(kind, obj)
            self.version = str((obj.get("metadata") or {}).get("resourceVersion") or self.version)
        if time.monotonic() < ends_at - EARLY_END_SLACK and not self._stop.is_set():
            log.info("watch of %s ended early; listing again", self.name)
            self.version = ""
