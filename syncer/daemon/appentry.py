"""What the daemon knows of one App, split by who writes it.

* `AppEntry`: what the watch learnt of the App (the object, its parsed spec or why it is
  invalid, its interval). Frozen: the watch replaces the whole entry in the table, as one
  reference, and a tick reads the entry once at its start. A tick therefore never pairs one
  version's generation with another version's spec, however the watch races it.
* `AppTickState`: what belongs to the App's ticks (its reconciler and client, the status last
  written, the last sync attempt). Only ticks touch it, and the scheduler never overlaps two
  ticks of one App; only `running`/`removed` are shared with the watch, under a lock, so that
  whichever of a tick and a deletion ends last closes the App's client.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from syncer.config import DEFAULT_INTERVAL
from syncer.daemon.appspec import RECONCILE_ANNOTATION, AppSpec, InvalidApp, TenantPolicy, app_spec
from syncer.daemon.reconciler import AppReconciler, SyncAttempt
from syncer.kube import Kube
from syncer.model import AppId, Object


@dataclass(frozen=True)
class AppEntry:
    key: str
    """`namespace/name`: the runtime's name of the App."""
    obj: Object
    spec: AppSpec | None
    invalid: InvalidApp | None
    """Why `spec` is None."""
    interval: float

    @property
    def id(self) -> AppId:
        return AppId.of_key(self.key)

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.obj.get("metadata") or {})

    @property
    def uid(self) -> str | None:
        return self.metadata.get("uid")

    @property
    def generation(self) -> int:
        return int(self.metadata.get("generation") or 0)

    @property
    def requested(self) -> str | None:
        """The reconcile-requested-at value (`syncer apps reconcile`), if any."""
        return (self.metadata.get("annotations") or {}).get(RECONCILE_ANNOTATION)

    @property
    def deleting(self) -> bool:
        return bool(self.metadata.get("deletionTimestamp"))


def app_entry(obj: Object, *, policy: TenantPolicy) -> AppEntry:
    """The entry for one version of an App, parsed once, by the watch."""
    try:
        spec, invalid = app_spec(obj, policy=policy), None
    except InvalidApp as error:
        spec, invalid = None, error
    interval = spec.config.interval if spec is not None else DEFAULT_INTERVAL
    return AppEntry(key=key_of(obj), obj=obj, spec=spec, invalid=invalid, interval=interval)


def key_of(obj: Object) -> str:
    metadata = obj.get("metadata") or {}
    return AppId(namespace=str(metadata.get("namespace") or ""), name=str(metadata.get("name") or "")).key


def wants_tick(before: AppEntry, after: AppEntry) -> bool:
    """A change the user expects to act on at once: a new spec, a reconcile request, a delete."""
    return (before.generation != after.generation or before.requested != after.requested
            or before.deleting != after.deleting)


@dataclass(eq=False)
class AppTickState:
    status: dict[str, Any] = field(default_factory=dict)
    """The status as last read or written."""
    reconciler: AppReconciler | None = None
    built_generation: int | None = None
    kube: Kube | None = None
    """The App's own (impersonating) client; None: it uses the daemon's."""
    last_attempt: SyncAttempt | None = None
    _running: bool = False
    _removed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self) -> bool:
        """A tick starts; False when the App is gone (the tick does nothing)."""
        with self._lock:
            if self._removed:
                return False
            self._running = True
            return True

    def end(self) -> None:
        """A tick ended; closes the App's client when the App went meanwhile."""
        with self._lock:
            self._running = False
            close = self._removed
        if close:
            self.close()

    def remove(self) -> None:
        """The App is gone: its client is closed now, or by the tick running now when it ends."""
        with self._lock:
            self._removed = True
            close = not self._running
        if close:
            self.close()

    def close(self) -> None:
        if self.kube is not None:
            self.kube.close()
