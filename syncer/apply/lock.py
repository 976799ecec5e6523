"""A per-app lock in the cluster, so two syncs of one app never write at once.

A `coordination.k8s.io/v1` Lease named `syncer-<app>` in the app's namespace, held through
the one Lease protocol (`syncer.kube.lease`): the holder renews it while it works; a holder
that died (or was paused) stops renewing, and another sync takes it over once the Lease has
not changed for `leaseDurationSeconds` plus the holder's write bound as that sync's own
clock measures it (never by comparing the renewTime another machine wrote with our clock).

Fencing: every write carries a server-side `timeout` of at most `Kube.write_bound`, which
the holder writes into its Lease, so the sync that takes over waits until the server has
finished with every write the holder sent while it held the lock.

A holder that cannot prove it still holds the lock must stop writing at once: `ensure_held`
(run for every write request after the rate limiter, before the last byte of the request is
sent: see `Kube.guarded`) fails once the last successful write of the Lease was sent longer
ago than a safety fraction of the lease's duration, or a renewal found the Lease taken or
gone; `confirm` (before every prune step) also reads the
Lease back. Releasing deletes the Lease with UID and resourceVersion preconditions, so only
our own, unchanged Lease is deleted.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from types import TracebackType

from syncer.errors import ClusterError, LockHeld, LockLost
from syncer.kube import Kube
from syncer.kube.lease import HeldLease, LeaseLost, LeaseTiming, Observed, takeover_at

log = logging.getLogger(__name__)

LOCK_PREFIX = "syncer-"
HELD_FRACTION = 0.8
"""A lock counts as held only while its last renewal was sent less than this fraction of the
lease duration ago: the rest is the margin for clock rates and for a request's way to the
server. The server's own time with the last write is not in it: a sync taking over waits
that out on top of the duration (`Kube.write_bound`)."""


_OBSERVED: dict[tuple[str, str, str], Observed] = {}
"""(server, namespace, name) -> the app's Lease as a waiting sync of this process last saw it.
A holder that died stops changing its Lease, and a waiter may take it over only once it has
seen no change for the lease's duration; a daemon retries a sync that gave up waiting
(--lock-timeout) with a new AppLock, which must not start that count from zero again, or a
lock timeout no longer than the lease duration would never take a dead holder's lock."""
_OBSERVED_LOCK = threading.Lock()


def lock_name(app: str) -> str:
    """The name of the app's lock Lease."""
    return LOCK_PREFIX + app


def default_identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class AppLock:
    """Context manager holding the app's Lease; raises LockHeld after `timeout` seconds."""

    def __init__(
        self,
        kube: Kube,
        *,
        app: str,
        namespace: str,
        timeout: float,
        identity: str | None = None,
        duration_seconds: int = 30,
        poll_interval: float = 1.0,
    ) -> None:
        self._app = app
        self._timeout = timeout
        self._duration = duration_seconds
        self._poll = poll_interval
        self._key = (kube.server, namespace, lock_name(app))
        with _OBSERVED_LOCK:
            seen_before = _OBSERVED.get(self._key)
        self._timing = LeaseTiming(duration=duration_seconds, renew_deadline=duration_seconds * HELD_FRACTION,
                                   write_bound=kube.write_bound)
        self._lease = HeldLease(kube, namespace=namespace, name=lock_name(app),
                                identity=identity or default_identity(), timing=self._timing, observed=seen_before)
        self._subject = self._lease.subject
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._lost: str | None = None

    def acquire(self) -> None:
        deadline = time.monotonic() + self._timeout
        while not self._lease.try_acquire():
            with _OBSERVED_LOCK:
                if (observed := self._lease.observed) is not None:
                    _OBSERVED[self._key] = observed
            if time.monotonic() >= deadline:
                spec = (self._lease.seen or {}).get("spec") or {}
                observed = self._lease.observed
                wait = (takeover_at(observed, default=self._timing) - observed.seen_at if observed is not None
                        else self._timing.duration + self._timing.write_bound)
                raise LockHeld(
                    f"app {self._app}: another sync holds {self._subject} "
                    f"(holder {spec.get('holderIdentity') or 'unknown'}, since {spec.get('acquireTime', '?')}); "
                    f"waited {self._timeout:.0f}s. Try again when it has finished; a holder that "
                    f"died loses the lock once its Lease has not changed for {wait:g}s (its duration, and "
                    "the time the API server may still spend on its last write)."
                )
            time.sleep(self._poll)
        with _OBSERVED_LOCK:
            _OBSERVED.pop(self._key, None)
        log.debug("%s acquired by %s", self._subject, self._lease.identity)
        self._lost = None
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lease-{self._app}", daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self._duration / 3):
            if not self._lease.acquired or self._lost:
                return
            try:
                self._lease.renew()
            except LeaseLost as error:
                self._lost = f"another sync took the lock over or removed it ({error.message})"
                log.warning("%s: lost: %s", self._subject, self._lost)
                return
            except Exception as error:  # a failed renewal is retried at the next period
                log.warning("%s: renewal failed: %s", self._subject, error)

    def _lose(self, reason: str) -> LockLost:
        self._lost = reason
        return LockLost(f"app {self._app}: lost {self._subject}: {reason}; stopped before the "
                        "next write, so a newer sync's work is not undone")

    def ensure_held(self) -> None:
        """Raise LockLost unless the lock is provably still ours."""
        if self._lost:
            raise self._lose(self._lost)
        if not self._lease.acquired:
            raise LockLost(f"app {self._app}: {self._subject} is not held; refusing to write")
        if not self._lease.held():
            raise self._lose(f"its last renewal was {self._lease.age() or 0:.0f}s ago, longer than the lease "
                             f"allows ({self._duration}s); another sync may hold it now")

    def confirm(self) -> None:
        """ensure_held, and the Lease read back is still the one we last wrote."""
        self.ensure_held()
        try:
            mine = self._lease.read_back()
        except ClusterError as error:
            raise LockLost(f"app {self._app}: cannot confirm {self._subject}: {error.message}") from error
        if not mine:
            raise self._lose("another sync holds it now")

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        if self._lost:
            self._lease.forget()  # a lost lease may be somebody else's by now
            return
        self._lease.release_by_deleting()

    def __enter__(self) -> AppLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
