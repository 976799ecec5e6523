"""Leader election between daemon replicas through a `coordination.k8s.io/v1` Lease.

The same protocol as client-go's leaderelection, so its guarantees carry over:

* A candidate takes the Lease when it has no holder, or when the holder's record has not
  changed for `lease_duration` as measured by the candidate's own clock from when it first
  saw that record. Wall-clock times written by another machine are never compared with ours,
  so clock skew between nodes cannot make two replicas think they lead.
* The leader renews every `renew_period`. If it has not renewed successfully for
  `renew_deadline` (shorter than `lease_duration`) it stops leading *before* any candidate
  may take over. `is_leader` checks that deadline itself on every call, so a renewal stuck in
  a slow request cannot extend leadership.
* Writes use the Lease's resourceVersion (PUT), so of two candidates racing for an expired
  Lease exactly one wins; the other gets a Conflict.
* On a clean shutdown the leader clears the holder, and a standby takes over at its next
  retry instead of waiting for the Lease to expire.

A sync already running when leadership is lost is not interrupted (stopping mid-apply would be
worse); it finishes under the app's own lock (`syncer-<app>` Lease), which a new leader's sync
of the same app waits for, so two replicas never write one app at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from syncer.apply.lock import now_micro
from syncer.errors import ClusterError, Conflict
from syncer.kube import Kube, Resource
from syncer.model import Object

log = logging.getLogger(__name__)

DEFAULT_LEASE_NAME = "syncer-leader"
URL_ANNOTATION = "syncer.dev/leader-url"
"""Where the leader's HTTP endpoint is, so a standby can pass a webhook on to it."""


@dataclass(frozen=True)
class ElectionOptions:
    namespace: str = "default"
    name: str = DEFAULT_LEASE_NAME
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    renew_period: float = 5.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.renew_period < self.renew_deadline < self.lease_duration:
            raise ValueError("leader election needs renew_period < renew_deadline < lease_duration")

    @classmethod
    def for_lease(cls, lease_duration: float, *, namespace: str, name: str = DEFAULT_LEASE_NAME) -> ElectionOptions:
        """client-go's proportions (15s / 10s / 2s retry) scaled to a lease duration."""
        return cls(
            namespace=namespace, name=name, lease_duration=lease_duration,
            renew_deadline=lease_duration * 2 / 3, renew_period=lease_duration / 3,
            retry_period=max(lease_duration * 2 / 15, 0.05),
        )


@dataclass(frozen=True)
class _Observed:
    """A Lease record as last seen, and when (our monotonic clock) it last changed."""

    holder: str
    resource_version: str
    seen_at: float


class LeaderElector:
    """Runs the election in a background thread; `is_leader` says whether to sync now."""

    def __init__(
        self,
        kube: Kube,
        *,
        identity: str,
        options: ElectionOptions,
        url: str | None = None,
        on_started_leading: Callable[[], None] = lambda: None,
        on_stopped_leading: Callable[[], None] = lambda: None,
    ) -> None:
        self._kube = kube
        self.identity = identity
        self.options = options
        self._url = url
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._subject = f"Lease/{options.namespace}/{options.name}"
        self._lock = threading.Lock()
        self._lease: Object | None = None
        self._renewed_at: float | None = None
        """Monotonic time at which our last successful write was *sent* (conservative)."""
        self._leading = False
        self._observed: _Observed | None = None
        self._holder_url: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._campaign_error: str | None = None

    @property
    def _resource(self) -> Resource:
        """Looked up when first needed (then cached by the adapter), so that a daemon starts,
        and reports itself not ready, while the API server is unreachable."""
        return self._kube.resource_for("coordination.k8s.io/v1", "Lease")

    # -- state -----------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        with self._lock:
            return self._leading and self._renewed_at is not None and (
                time.monotonic() - self._renewed_at < self.options.renew_deadline)

    def owns(self, app: str) -> bool:
        """The leader owns every app (`syncer.daemon.ownership.Ownership`)."""
        return self.is_leader

    def describe(self, apps: Collection[str]) -> str:
        return f"leader ({self.identity})" if self.is_leader else f"standby (leader: {self.holder or 'none yet'})"

    @property
    def holder(self) -> str | None:
        """The identity of the current leader as last seen (ourselves included)."""
        with self._lock:
            if self._leading:
                return self.identity
            return self._observed.holder if self._observed and self._observed.holder else None

    @property
    def leader_url(self) -> str | None:
        """The current leader's advertised HTTP address, when it is another replica."""
        with self._lock:
            return None if self._leading else self._holder_url

    # -- loop ------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self, *, release: bool = True) -> None:
        """Stop campaigning; a leader clears the holder (release) so a standby need not wait
        for the Lease to expire. `release=False` leaves it to expire, as a crash would."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        was_leading = self._set_leading(False)
        if release and was_leading:
            self._release()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._leading:
                wait = self._lead_step()
            else:
                wait = self._campaign_step()
            self._stop.wait(wait)

    def _campaign_step(self) -> float:
        try:
            if self._try_acquire():
                self._campaign_error = None
                log.info("%s: became the leader as %s", self._subject, self.identity)
                self._set_leading(True)
                return self.options.renew_period
            self._campaign_error = None
        except ClusterError as error:
            # Once per distinct problem: retries come every retry_period while it lasts.
            level = logging.DEBUG if str(error) == self._campaign_error else logging.WARNING
            log.log(level, "%s: cannot campaign for leadership: %s", self._subject, error)
            self._campaign_error = str(error)
        return self.options.retry_period

    def _lead_step(self) -> float:
        try:
            self._renew()
            return self.options.renew_period
        except ClusterError as error:
            log.warning("%s: renewal failed: %s", self._subject, error)
        with self._lock:
            renewed_at = self._renewed_at or 0.0
        if time.monotonic() - renewed_at >= self.options.renew_deadline:
            log.error("%s: could not renew for %.0fs; stepping down", self._subject, self.options.renew_deadline)
            self._set_leading(False)
        return self.options.retry_period

    def _set_leading(self, leading: bool) -> bool:
        """Switch state and run the callback on a change; returns the previous state."""
        with self._lock:
            before, self._leading = self._leading, leading
        if before != leading:
            callback = self._on_started if leading else self._on_stopped
            try:
                callback()
            except Exception:  # a callback must not kill the election thread
                log.exception("leader election callback failed")
        return before

    # -- Lease I/O -------------------------------------------------------------------------

    def _spec(self, lease: Object | None, *, acquiring: bool) -> Object:
        spec = dict((lease or {}).get("spec") or {})
        now = now_micro()
        if acquiring:
            transitions = int(spec.get("leaseTransitions") or 0)
            if spec.get("holderIdentity") and spec.get("holderIdentity") != self.identity:
                transitions += 1
            spec["leaseTransitions"] = transitions
            spec["acquireTime"] = now
        spec["holderIdentity"] = self.identity
        spec["leaseDurationSeconds"] = max(1, round(self.options.lease_duration))
        spec["renewTime"] = now
        return spec

    def _metadata(self, lease: Object | None) -> Object:
        metadata = dict((lease or {}).get("metadata") or {
            "name": self.options.name, "namespace": self.options.namespace,
            "labels": {"app.kubernetes.io/managed-by": "syncer"},
        })
        annotations = dict(metadata.get("annotations") or {})
        if self._url:
            annotations[URL_ANNOTATION] = self._url
        else:
            annotations.pop(URL_ANNOTATION, None)
        metadata["annotations"] = annotations
        return metadata

    def _observe(self, lease: Object) -> _Observed:
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        version = str(lease["metadata"].get("resourceVersion", ""))
        with self._lock:
            observed = self._observed
            if observed is None or (observed.holder, observed.resource_version) != (holder, version):
                observed = _Observed(holder=holder, resource_version=version, seen_at=time.monotonic())
                self._observed = observed
            self._holder_url = (lease["metadata"].get("annotations") or {}).get(URL_ANNOTATION)
        return observed

    def _try_acquire(self) -> bool:
        current = self._kube.get(self._resource, self.options.name, namespace=self.options.namespace)
        sent_at = time.monotonic()
        try:
            if current is None:
                body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": self._metadata(None), "spec": self._spec(None, acquiring=True)}
                lease = self._kube.create(self._resource, body, subject=self._subject)
            else:
                observed = self._observe(current)
                expired = time.monotonic() - observed.seen_at >= self.options.lease_duration
                if observed.holder and observed.holder != self.identity and not expired:
                    return False
                body = {**current, "metadata": self._metadata(current), "spec": self._spec(current, acquiring=True)}
                lease = self._kube.replace(self._resource, body, subject=self._subject)
        except Conflict:
            return False  # another candidate won the race; we will see its record next time
        with self._lock:
            self._lease, self._renewed_at = lease, sent_at
        self._observe(lease)
        return True

    def _renew(self) -> None:
        with self._lock:
            lease = self._lease
        if lease is None:
            raise ClusterError(self._subject, "no Lease to renew")
        sent_at = time.monotonic()
        body = {**lease, "metadata": self._metadata(lease), "spec": self._spec(lease, acquiring=False)}
        try:
            renewed = self._kube.replace(self._resource, body, subject=self._subject)
        except Conflict:
            # Someone else wrote the Lease: re-read it; we still lead only if it still names us.
            current = self._kube.get(self._resource, self.options.name, namespace=self.options.namespace)
            if current is None or (current.get("spec") or {}).get("holderIdentity") != self.identity:
                log.error("%s: the Lease was taken over; stepping down", self._subject)
                self._set_leading(False)
                if current is not None:
                    self._observe(current)
                raise ClusterError(self._subject, "lost the Lease to another replica") from None
            with self._lock:
                self._lease = current
            raise ClusterError(self._subject, "the Lease changed under us; renewing again") from None
        with self._lock:
            self._lease, self._renewed_at = renewed, sent_at

    def _release(self) -> None:
        with self._lock:
            lease = self._lease
            self._lease = None
        if lease is None:
            return
        spec = dict(lease.get("spec") or {})
        spec.update({"holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": now_micro()})
        metadata = self._metadata(lease)
        metadata["annotations"].pop(URL_ANNOTATION, None)
        try:
            self._kube.replace(self._resource, {**lease, "metadata": metadata, "spec": spec}, subject=self._subject)
            log.info("%s: released leadership", self._subject)
        except ClusterError as error:
            log.warning("%s: cannot release the Lease (a standby takes over when it expires): %s",
                        self._subject, error)
