"""A per-app lock in the cluster, so two syncs of one app never write at once.

A `coordination.k8s.io/v1` Lease named `syncer-<app>` in the app's namespace. The holder
renews it while it works; a holder that died (or was paused) stops renewing, and its lease may
be taken over once `leaseDurationSeconds` has passed.

A holder that cannot prove it still holds the lock must stop writing at once: `ensure_held`
(run before every write request, see `Kube.guarded`) fails once the last successful renewal
is older than a safety fraction of the lease's duration, or a renewal found the Lease taken
or gone; `confirm` (before every prune step) also reads the Lease back. Releasing deletes the
Lease with UID and resourceVersion preconditions, so only our own, unchanged Lease is deleted.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from types import TracebackType

from syncer.errors import ClusterError, Conflict, LockHeld, LockLost, NotFound
from syncer.kube import Kube
from syncer.model import Object

log = logging.getLogger(__name__)

LOCK_PREFIX = "syncer-"
HELD_FRACTION = 0.8
"""A lock counts as held only while its last renewal is younger than this fraction of the
lease duration: the rest is the margin for clock rates and the write in flight."""


def now_micro() -> str:
    """A Kubernetes MicroTime for now."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def lease_expired(lease: Object, *, now: float) -> bool:
    spec = lease.get("spec") or {}
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = float(spec.get("leaseDurationSeconds") or 0)
    return not spec.get("holderIdentity") or renewed is None or renewed + duration < now


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
        self._kube = kube
        self._app = app
        self._namespace = namespace
        self._timeout = timeout
        self._identity = identity or default_identity()
        self._duration = duration_seconds
        self._poll = poll_interval
        self._resource = kube.resource_for("coordination.k8s.io/v1", "Lease")
        self._name = LOCK_PREFIX + app
        self._subject = f"Lease/{namespace}/{self._name}"
        self._lease: Object | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._renewed_at = 0.0
        self._lost: str | None = None

    def _spec(self, *, acquired: str | None = None) -> Object:
        now = now_micro()
        return {
            "holderIdentity": self._identity,
            "leaseDurationSeconds": self._duration,
            "acquireTime": acquired or now,
            "renewTime": now,
        }

    def _try_acquire(self) -> Object | None:
        """Our Lease when we got it; the holder's when another sync has it."""
        current = self._kube.get(self._resource, self._name, namespace=self._namespace)
        try:
            if current is None:
                self._lease = self._kube.create(self._resource, {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self._name, "namespace": self._namespace,
                                 "labels": {"app.kubernetes.io/managed-by": "syncer"}},
                    "spec": self._spec(),
                }, subject=self._subject)
                return None
            if lease_expired(current, now=time.time()) or current["spec"].get("holderIdentity") == self._identity:
                current["spec"] = self._spec()
                self._lease = self._kube.replace(self._resource, current, subject=self._subject)
                return None
        except Conflict:
            return current or {"spec": {}}
        return current

    def acquire(self) -> None:
        deadline = time.monotonic() + self._timeout
        while True:
            # The Lease counts from when the server may have written it, not from when we heard
            # back: a process paused between the two (SIGSTOP, a long GC, a frozen VM) must not
            # take the time it was away as time it held the lock.
            asked_at = time.monotonic()
            holder = self._try_acquire()
            if holder is None:
                break
            if time.monotonic() >= deadline:
                spec = holder.get("spec") or {}
                raise LockHeld(
                    f"app {self._app}: another sync holds {self._subject} "
                    f"(holder {spec.get('holderIdentity', 'unknown')}, since {spec.get('acquireTime', '?')}); "
                    f"waited {self._timeout:.0f}s. Try again when it has finished; a holder that "
                    f"died loses the lock {self._duration}s after its last renewal."
                )
            time.sleep(self._poll)
        log.debug("%s acquired by %s", self._subject, self._identity)
        self._renewed_at, self._lost = asked_at, None
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lease-{self._app}", daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self._duration / 3):
            lease = self._lease
            if lease is None or self._lost:
                return
            started = time.monotonic()
            renewed = {**lease, "spec": {**lease["spec"], "renewTime": now_micro()}}
            try:
                self._lease = self._kube.replace(self._resource, renewed, subject=self._subject)
                self._renewed_at = started
            except (Conflict, NotFound) as error:
                self._lost = f"another sync took the lock over or removed it ({error.message})"
                log.warning("%s: lost: %s", self._subject, self._lost)
                return
            except Exception as error:  # a failed renewal is retried at the next period
                log.warning("%s: renewal failed: %s", self._subject, error)

    def ensure_held(self) -> None:
        """Raise LockLost unless the lock is provably still ours."""
        if self._lease is None:
            raise LockLost(f"app {self._app}: {self._subject} is not held; refusing to write")
        if self._lost:
            raise LockLost(f"app {self._app}: lost {self._subject}: {self._lost}; stopped before the "
                           "next write, so a newer sync's work is not undone")
        age = time.monotonic() - self._renewed_at
        if age >= self._duration * HELD_FRACTION:
            self._lost = (f"its last renewal was {age:.0f}s ago, longer than the lease allows "
                          f"({self._duration}s); another sync may hold it now")
            raise LockLost(f"app {self._app}: lost {self._subject}: {self._lost}; stopped before the "
                           "next write, so a newer sync's work is not undone")

    def confirm(self) -> None:
        """ensure_held, and the Lease read back is still the one we last wrote."""
        self.ensure_held()
        assert self._lease is not None
        try:
            current = self._kube.get(self._resource, self._name, namespace=self._namespace)
        except ClusterError as error:
            raise LockLost(f"app {self._app}: cannot confirm {self._subject}: {error.message}") from error
        mine = self._lease["metadata"]
        if current is None or current["metadata"].get("uid") != mine.get("uid") or (
                current.get("spec") or {}).get("holderIdentity") != self._identity:
            self._lost = "another sync holds it now"
            raise LockLost(f"app {self._app}: lost {self._subject}: another sync holds it now")

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        lease, self._lease = self._lease, None
        if lease is None or self._lost:
            return  # a lost lease may be somebody else's by now
        try:
            self._kube.delete(self._resource, self._name, namespace=self._namespace, subject=self._subject,
                              uid=lease["metadata"]["uid"], resource_version=lease["metadata"]["resourceVersion"])
        except (NotFound, Conflict):
            pass

    def __enter__(self) -> AppLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
