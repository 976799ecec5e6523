"""Sharding apps over daemon replicas through membership Leases (`coordination.k8s.io/v1`).

Each replica holds the Lease `syncer-member-<identity>` in the election namespace, labelled
`syncer.dev/shard-member: "true"`, and renews it every renew period (client-go's
proportions, as leader election: 15s / 10s / 5s by default). It LISTs the labelled Leases
once and then WATCHes them: at rest that is one write per renew period per replica and one
open watch, re-opened every few minutes, instead of a LIST per retry period per replica, and
every change (a join, a clean leave) arrives at once instead of at the next poll. What each
replica owns follows from what it observed (`syncer.daemon.membership`):

* A replica that has not renewed for its renew deadline owns nothing (`owns` checks that on
  every call, as `LeaderElector.is_leader` does), before any other replica may count it gone.
* Others count a member gone once its Lease has not changed for its lease duration on their
  own clocks; the first to notice deletes the stale Lease (with UID and resourceVersion
  preconditions). A clean stop deletes the replica's own Lease, and the others take its apps
  at once.
* Gained apps start only once every member acknowledged the new view (each writes it at
  once, as soon as it runs no tick of an app it lost); they are then triggered at once.

There is no consensus of our own: the API server orders the Lease writes, and the per-app
lock (`syncer-<app>`) still guards a sync that outlives its replica's ownership.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from syncer.daemon.leader import ElectionOptions
from syncer.daemon.membership import (
    MEMBER_LABEL,
    URL_ANNOTATION,
    VIEW_ANNOTATION,
    Assignment,
    MemberTable,
    drained,
    next_assignment,
    view_hash,
)
from syncer.daemon.rendezvous import score
from syncer.errors import ClusterError
from syncer.kube import Kube, Resource
from syncer.kube.lease import MANAGED_BY, HeldLease, LeaseLost, delete_unchanged
from syncer.kube.watch import Reflector
from syncer.model import Object

log = logging.getLogger(__name__)

MEMBER_PREFIX = "syncer-member"

OnChange = Callable[[Assignment, Assignment], None]
"""Told the assignment before and after every change (to trigger the apps gained)."""


def lease_name(identity: str, *, prefix: str = MEMBER_PREFIX) -> str:
    """A valid Lease name for an identity: lowercase DNS-1123, with a hash of the identity
    when it had to be changed, so two identities never share a Lease."""
    cleaned = re.sub(r"[^a-z0-9.-]+", "-", identity.lower()).strip("-.")
    if cleaned == identity and len(prefix) + 1 + len(cleaned) <= 253:
        return f"{prefix}-{cleaned}"
    suffix = format(score("lease-name", identity), "016x")[:10]
    return f"{prefix}-{cleaned[:200]}-{suffix}".replace("--", "-")


class ShardMember:
    """One replica's membership; `owns(app)` says whether to sync an app now."""

    def __init__(
        self,
        kube: Kube,
        *,
        identity: str,
        options: ElectionOptions,
        url: str | None,
        running: Callable[[], Iterable[str]],
        on_change: OnChange = lambda before, after: None,
    ) -> None:
        self._kube = kube
        self.identity = identity
        self.options = options
        self._url = url
        self._running = running
        self._on_change = on_change
        self.lease_name = lease_name(identity)
        self._lease = HeldLease(kube, namespace=options.namespace, name=self.lease_name, identity=identity,
                                timing=options.timing, labels={**MANAGED_BY, MEMBER_LABEL: "true"})
        self._subject = self._lease.subject
        self._lock = threading.Lock()
        self._table = MemberTable(own_lease=self.lease_name, lease_duration=options.lease_duration,
                                  margin=options.renew_period)
        self._assignment = Assignment(identity=identity)
        self._published: str | None = None
        self._next_renewal = 0.0
        self._retry_at = 0.0
        """After a failed write, no write (not even an acknowledgement) before this."""
        self._deleted: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._renewer: threading.Thread | None = None
        self._problem: str | None = None
        self._watch_problem: str | None = None
        self._refreshing = threading.Lock()
        """One refresh at a time (the watch's and the loop's), so `on_change` sees the
        assignments in the order they were made."""

    @property
    def _resource(self) -> Resource:
        return self._kube.resource_for("coordination.k8s.io/v1", "Lease")

    # -- the Ownership interface -----------------------------------------------------------

    def owns(self, app: str) -> bool:
        with self._lock:
            return self._live(time.monotonic()) and self._assignment.owns(app)

    def owner_url(self, app: str) -> str | None:
        """Where the app's owner listens, when that is another replica that advertised it."""
        with self._lock:
            owner = self._assignment.owner(app)
            if owner is None or owner == self.identity:
                return None
            return self._table.url_of(owner)

    @property
    def assignment(self) -> Assignment:
        with self._lock:
            return self._assignment

    @property
    def live(self) -> bool:
        with self._lock:
            return self._live(time.monotonic())

    def owned(self, apps: Iterable[str]) -> list[str]:
        return [app for app in apps if self.owns(app)]

    def describe(self, apps: Collection[str]) -> str:
        assignment = self.assignment
        state = "member" if self.live and assignment.active else "not a member yet"
        waiting = "" if assignment.settled == assignment.members else ", waiting for the others to agree"
        return (f"shard {state} ({self.identity}): owns {len(self.owned(apps))} of {len(apps)} app(s); "
                f"{len(assignment.members)} member(s) seen{waiting}")

    def start(self) -> None:
        self._stop.clear()
        # The watch thread is not joined on stop: it may sit in a read until its connection
        # closes, and it only updates the table.
        threading.Thread(target=self._watch, name="shard-watch", daemon=True).start()
        self._renewer = threading.Thread(target=self._run, name="shard-member", daemon=True)
        self._renewer.start()

    def stop(self, *, release: bool = True) -> None:
        """Stop renewing; `release` deletes our Lease so the others take our apps at once
        (without it the Lease expires, as after a crash)."""
        self._stop.set()
        self._wake.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        if not release or not self._lease.acquired:
            self._lease.forget()
            return
        try:
            self._lease.release_by_deleting()
            log.info("%s: left the shard", self._subject)
        except ClusterError as error:
            log.warning("%s: cannot delete the membership Lease (the others take over when it expires): %s",
                        self._subject, error)

    # -- state -----------------------------------------------------------------------------

    def _live(self, now: float) -> bool:
        return not self._stop.is_set() and self._lease.held(now=now)

    def _refresh(self) -> None:
        """Recompute the view from what was observed; tell `on_change` when it changed."""
        with self._refreshing:
            self._reassign()

    def _reassign(self) -> None:
        with self._lock:
            now = time.monotonic()
            others = self._table.others(now=now)
            members = {m.identity for m in others}
            if self._live(now) and self._table.own_observed and self._table.listed:
                members.add(self.identity)
            before = self._assignment
            after = next_assignment(before, members=members, acks={m.identity: m.view for m in others})
            if after != before:  # a new object only on a change (`_run` compares identities)
                self._assignment = after
        if before.active and not after.active and not self._stop.is_set():
            log.error("%s: no longer a member (not renewed for %.0fs, or the Lease was deleted): no new syncs "
                      "start until it is renewed and the others agree", self._subject, self.options.renew_deadline)
        if after != before:
            log.info("%s: %d member(s) %s%s", self._subject, len(after.members), ", ".join(after.members) or "-",
                     "" if after.settled == after.members else " (waiting for every member to agree)",
                     extra={"members": list(after.members), "settled": after.settled == after.members})
            try:
                self._on_change(before, after)
            except Exception:  # a callback must not kill the membership thread
                log.exception("shard membership callback failed")

    # -- the renewal loop ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self._refresh()
            self._forget_expired()
            now = time.monotonic()
            with self._lock:
                read_before = self._assignment
            running = list(self._running())
            with self._lock:
                assignment = self._assignment
                # Unchanged around the read of the running ticks: a tick that started after it
                # asked `owns` under this very assignment, so it is consistent with it too.
                consistent = assignment is read_before and drained(assignment, running)
                acknowledge = consistent and view_hash(assignment.members) != self._published
                due = now >= self._next_renewal or (acknowledge and now >= self._retry_at)
                expiry = self._table.next_expiry(now=now)
            if due:
                self._write(view_hash(assignment.members) if consistent else self._published)
                continue
            waits = [self._next_renewal - now]
            if expiry is not None and expiry > now:
                waits.append(expiry - now + 0.01)
            if acknowledge:
                waits.append(self._retry_at - now)
            elif assignment.active and view_hash(assignment.members) != self._published:
                waits.append(self.options.retry_period)  # a lost app's tick is still running
            self._wake.wait(max(0.01, min(waits)))

    def _write(self, view: str | None) -> None:
        """Create or renew our Lease, acknowledging `view`."""
        try:
            self._put({URL_ANNOTATION: self._url, VIEW_ANNOTATION: view})
        except ClusterError as error:
            level = logging.DEBUG if str(error) == self._problem else logging.WARNING
            log.log(level, "%s: cannot renew the membership Lease: %s", self._subject, error)
            self._problem = str(error)
            with self._lock:
                self._next_renewal = self._retry_at = time.monotonic() + self.options.retry_period
            return
        self._problem = None
        sent_at = self._lease.sent_at or time.monotonic()
        with self._lock:
            self._published = view
            self._next_renewal, self._retry_at = sent_at + self.options.renew_period, 0.0

    def _put(self, annotations: dict[str, str | None]) -> None:
        """Renew our Lease, or join (again) when we hold none: at start, or after another
        member deleted it, counting us gone."""
        if self._lease.acquired and not self._lease.held():
            # Not renewed for the renew deadline (paused, or renewals failed): this replica
            # was no member, and another may have synced its apps meanwhile. The loss is
            # observed (and what it held for its apps dropped, `on_change`) before a renewal
            # makes it a member again, however short the gap looked from here.
            self._refresh()
        if self._lease.acquired:
            try:
                self._lease.renew(annotations=annotations)
                return
            except LeaseLost as error:
                log.warning("%s: %s; joining again", self._subject, error.message)
        if not self._lease.try_acquire(annotations=annotations):
            observed = self._lease.observed
            raise ClusterError(self._subject, f"held by {observed.holder if observed else 'another replica'}")

    def _forget_expired(self) -> None:
        """Delete the Leases of members that stopped renewing, each once, with preconditions
        so a Lease renewed (or replaced) since we looked stays."""
        with self._lock:
            expired = [m for m in self._table.expired(now=time.monotonic())
                       if (m.name, m.resource_version) not in self._deleted]
            self._deleted.update((m.name, m.resource_version) for m in expired)
        for member in expired:
            subject = f"Lease/{self.options.namespace}/{member.name}"
            log.warning("%s: member %s has not renewed for %.0fs; its apps move to the others", subject,
                        member.identity, member.duration or self.options.lease_duration)
            try:
                delete_unchanged(self._kube, namespace=self.options.namespace, name=member.name,
                                 observed=member.observed)
            except ClusterError as error:  # deleted by another member meanwhile, or unreachable
                log.debug("%s: not deleted: %s", subject, error)

    # -- the member watch ------------------------------------------------------------------

    def _watch(self) -> None:
        """Follow the member Leases with the reflector, once the Lease kind is known (the API
        server may be away when the daemon starts)."""
        while not self._stop.is_set():
            try:
                resource = self._resource
                break
            except ClusterError as error:
                self._failed(error)
                self._stop.wait(self.options.retry_period)
        else:
            return
        Reflector(self._kube, resource, handler=_MemberWatch(self), stop=self._stop,
                  namespace=self.options.namespace, label_selector=f"{MEMBER_LABEL}=true",
                  retry_seconds=self.options.retry_period, max_retry_seconds=self.options.retry_period).run()

    def _listed(self, leases: list[Object]) -> None:
        with self._lock:
            self._table.replace(leases, now=time.monotonic())
        self._watch_problem = None
        self._refresh()
        self._wake.set()

    def _event(self, kind: str, lease: Object) -> None:
        now = time.monotonic()
        with self._lock:
            if kind in ("ADDED", "MODIFIED"):
                self._table.observe(lease, now=now)
            elif kind == "DELETED":
                self._table.remove(str((lease.get("metadata") or {}).get("name")), now=now)
            else:  # BOOKMARK
                self._table.heard(now=now)
        self._refresh()
        self._wake.set()  # the loop acknowledges a new view, or deletes an expired Lease

    def _failed(self, error: ClusterError) -> bool:
        # Once per distinct problem: retries come every retry period while it lasts.
        level = logging.DEBUG if str(error) == self._watch_problem else logging.WARNING
        log.log(level, "%s: watch of the member Leases failed: %s; listing again", self._subject, error)
        self._watch_problem = str(error)
        return True


@dataclass(frozen=True)
class _MemberWatch:
    """What the reflector of the member Leases tells the member."""

    member: ShardMember

    def listed(self, objects: list[Object]) -> None:
        self.member._listed(objects)

    def event(self, kind: str, obj: Object) -> None:
        self.member._event(kind, obj)

    def failed(self, error: ClusterError) -> bool:
        return self.member._failed(error)
