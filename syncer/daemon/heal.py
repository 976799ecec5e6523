"""From a change the member cache saw to the app that owns the object: heal routing.

The member cache (`syncer.apply.membercache`) knows objects by ApplySet; the scheduler knows
apps by the runtime's name. The routes between them change as an App source's Apps come and
go, while the cache's watch threads ask; a lock guards them. A burst of changes to one app's
objects (a sync writes many) starts one heal, `HEAL_DELAY` later.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from syncer.model import ObjectRef

log = logging.getLogger(__name__)

HEAL_DELAY = 0.5
"""Changes to one app's objects within this many seconds start one sync, not one each."""


class HealRouter:
    def __init__(self, *, on_heal: Callable[[str], None], delay: float = HEAL_DELAY) -> None:
        self._on_heal = on_heal
        self._delay = delay
        self._apps: dict[str, str] = {}
        """ApplySet id -> the runtime's name of the app."""
        self._pending: set[str] = set()
        self._stopping = False
        self._lock = threading.Lock()

    def route(self, app: str, *, applyset: str | None) -> None:
        """Changes to the objects of `applyset` heal `app` from now on (None: no objects)."""
        with self._lock:
            for stale in [a for a, routed in self._apps.items() if routed == app and a != applyset]:
                del self._apps[stale]
            if applyset is not None:
                self._apps[applyset] = app

    def serves(self, applyset: str) -> bool:
        """Whether the cache should keep this ApplySet's objects (the cache's `owned`)."""
        with self._lock:
            return applyset in self._apps

    def member_changed(self, applyset: str, ref: ObjectRef) -> None:
        """Someone (maybe our own sync) changed an object of an app: heal that app soon."""
        with self._lock:
            app = self._apps.get(applyset)
            if app is None or app in self._pending or self._stopping:
                return
            self._pending.add(app)
        log.debug("app %s: %s changed; syncing it in %.1fs", app, ref, self._delay)
        timer = threading.Timer(self._delay, self._heal, args=(app,))
        timer.daemon = True
        timer.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True

    def _heal(self, app: str) -> None:
        with self._lock:
            self._pending.discard(app)
        self._on_heal(app)
