"""A per-app lock in the cluster, so two syncs of one app never write at once.

A `coordination.k8s.io/v1` Lease named `syncer-<app>` in the app's namespace. The holder
renews it while it works; a holder that died stops renewing, and its lease may be taken over
once `leaseDurationSeconds` has passed. Releasing deletes the Lease (with a UID precondition,
so only our own Lease is ever deleted).
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

from syncer.errors import Conflict, LockHeld, NotFound
from syncer.kube import Kube
from syncer.model import Object

log = logging.getLogger(__name__)

LOCK_PREFIX = "syncer-"


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
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lease-{self._app}", daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self._duration / 3):
            lease = self._lease
            if lease is None:
                return
            lease["spec"]["renewTime"] = now_micro()
            try:
                self._lease = self._kube.replace(self._resource, lease, subject=self._subject)
            except Exception as error:  # a failed renewal is retried at the next period
                log.warning("%s: renewal failed: %s", self._subject, error)

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        lease, self._lease = self._lease, None
        if lease is None:
            return
        try:
            self._kube.delete(self._resource, self._name, namespace=self._namespace,
                              subject=self._subject, uid=lease["metadata"]["uid"])
        except (NotFound, Conflict):
            pass

    def __enter__(self) -> AppLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
