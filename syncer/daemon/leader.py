"""Leader election between daemon replicas through a `coordination.k8s.io/v1` Lease.

Through the one Lease protocol (`syncer.kube.lease`, client-go's leaderelection), so its
guarantees carry over:

* A candidate takes the Lease when it has no holder, or when the holder's record has not
  changed for the lease duration as measured by the candidate's own clock from when it
  first saw that record. Wall-clock times written by another machine are never compared
  with ours, so clock skew between nodes cannot make two replicas think they lead.
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

from syncer.errors import ClusterError
from syncer.kube import Kube
from syncer.kube.lease import HeldLease, LeaseLost, LeaseTiming

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

    @property
    def timing(self) -> LeaseTiming:
        return LeaseTiming(duration=self.lease_duration, renew_deadline=self.renew_deadline)


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
        self.identity = identity
        self.options = options
        self._url = url
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._lease = HeldLease(kube, namespace=options.namespace, name=options.name, identity=identity,
                                timing=options.timing)
        self._subject = self._lease.subject
        self._lock = threading.Lock()
        self._leading = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._campaign_error: str | None = None

    # -- state -----------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        with self._lock:
            leading = self._leading
        return leading and self._lease.held()

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
        observed = self._lease.observed
        return observed.holder if observed and observed.holder else None

    @property
    def leader_url(self) -> str | None:
        """The current leader's advertised HTTP address, when it is another replica."""
        with self._lock:
            if self._leading:
                return None
        seen = self._lease.seen or {}
        url = ((seen.get("metadata") or {}).get("annotations") or {}).get(URL_ANNOTATION)
        return str(url) if url and (seen.get("spec") or {}).get("holderIdentity") else None

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
        if not (release and was_leading):
            self._lease.forget()
            return
        try:
            self._lease.release_by_clearing(annotations={URL_ANNOTATION: None})
            log.info("%s: released leadership", self._subject)
        except ClusterError as error:
            log.warning("%s: cannot release the Lease (a standby takes over when it expires): %s",
                        self._subject, error)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._leading:
                wait = self._lead_step()
            else:
                wait = self._campaign_step()
            self._stop.wait(wait)

    def _campaign_step(self) -> float:
        try:
            if self._lease.try_acquire(annotations={URL_ANNOTATION: self._url}):
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
        if not self._lease.held():
            # Not renewed for the renew deadline (the process was paused, or renewals failed):
            # leadership lapsed, and a standby may have led meanwhile. Step down before a
            # renewal could make this replica the leader again without anyone noticing the
            # gap: what it held for its apps is dropped (`on_stopped_leading`).
            log.error("%s: not renewed for %.0fs; stepping down", self._subject, self.options.renew_deadline)
            self._lease.forget()
            self._set_leading(False)
            return self.options.retry_period
        try:
            self._lease.renew(annotations={URL_ANNOTATION: self._url})
            return self.options.renew_period
        except LeaseLost as error:
            log.error("%s: the Lease was taken over (%s); stepping down", self._subject, error.message)
            self._set_leading(False)
            return self.options.retry_period
        except ClusterError as error:
            log.warning("%s: renewal failed: %s", self._subject, error)
        if not self._lease.held():
            log.error("%s: could not renew for %.0fs; stepping down", self._subject, self.options.renew_deadline)
            self._lease.forget()
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
