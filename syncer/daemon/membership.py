"""Shard membership as one replica sees it: plain data and pure functions, no I/O.

Each replica holds a membership Lease (`syncer.daemon.shard`). From the Leases it has
observed, a replica derives its *view*: the live members, itself included once its own
Lease is renewed and has come back on its own watch. Apps map to the members of the view by
rendezvous hashing (`syncer.daemon.rendezvous`).

Liveness is judged by the one Lease protocol's rule (`syncer.kube.lease`, as leader election
and the app lock judge a holder): a member is gone once its record has not changed for its
lease duration, measured by the observer's own monotonic clock from when the observer first
saw that record. Wall-clock times written by other machines are never compared. Time only counts while the observer's view is current
(it heard from the API server within `margin`): a watch that silently stalls must not make
every other member look dead.

Two replicas whose views differ could both think they own an app (a new member counts
itself before the others have seen it; a member that lost an app may still be syncing it).
So views are *acknowledged*: each member writes the hash of the view it acts on into its
Lease once it has stopped every tick of an app it does not own under that view. A replica
starts an app it gained only when every other member of its view acknowledged that same
view; until then it owns only the apps it owns under both its new view and the last view
everyone agreed on (rendezvous hashing keeps those stable). The per-app lock stays the last
guard for a sync that outlives a replica's liveness.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from syncer.daemon.rendezvous import owner
from syncer.kube.lease import Observed, expires_at, observe
from syncer.model import Object

MEMBER_LABEL = "syncer.dev/shard-member"
"""On every membership Lease (value "true"): what replicas LIST and WATCH."""
VIEW_ANNOTATION = "syncer.dev/shard-view"
"""The hash of the member list the Lease's holder acts on (see the module docstring)."""
URL_ANNOTATION = "syncer.dev/url"
"""The holder's HTTP address, for passing webhooks on to an app's owner."""


def view_hash(members: Iterable[str]) -> str:
    """A short, stable name for a member list (order does not matter)."""
    return hashlib.sha256("\n".join(sorted(set(members))).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Member:
    """A membership Lease as last observed, and when (observer's clock) it last changed."""

    name: str
    view: str | None
    url: str | None
    observed: Observed

    @property
    def identity(self) -> str:
        return self.observed.holder

    @property
    def uid(self) -> str:
        return self.observed.uid

    @property
    def resource_version(self) -> str:
        return self.observed.resource_version

    @property
    def duration(self) -> float | None:
        return self.observed.duration


def member_of(lease: Object, *, previous: Observed | None, now: float) -> Member | None:
    """The member a Lease names, observed at `now` (`previous`: as last observed); None
    when it names no holder (released)."""
    observed = observe(previous, lease, now=now)
    if not observed.holder:
        return None
    metadata = lease.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    return Member(name=str(metadata.get("name")), view=annotations.get(VIEW_ANNOTATION),
                  url=annotations.get(URL_ANNOTATION), observed=observed)


class MemberTable:
    """The membership Leases one replica has observed (through its LIST and WATCH)."""

    def __init__(self, *, own_lease: str, lease_duration: float, margin: float) -> None:
        self.own_lease = own_lease
        self._lease_duration = lease_duration
        self._margin = margin
        self._members: dict[str, Member] = {}
        self._heard_at: float | None = None
        """When the API server last told us anything about the Leases (None: not yet listed)."""

    @property
    def listed(self) -> bool:
        return self._heard_at is not None

    def heard(self, *, now: float) -> None:
        """The watch is alive (a bookmark, or any event): the view is current up to now."""
        self._heard_at = now

    def observe(self, lease: Object, *, now: float) -> None:
        """A Lease as the watch (or a list) delivered it. The clock restarts only when its
        record changed: the same resourceVersion seen again proves no renewal happened."""
        self.heard(now=now)
        name = str((lease.get("metadata") or {}).get("name"))
        previous = self._members.get(name)
        member = member_of(lease, previous=previous.observed if previous is not None else None, now=now)
        if member is None:
            self._members.pop(name, None)
        else:
            self._members[name] = member

    def remove(self, name: str, *, now: float) -> None:
        self.heard(now=now)
        self._members.pop(name, None)

    def replace(self, leases: Iterable[Object], *, now: float) -> None:
        """A fresh LIST: Leases not in it are gone; the others are observed as usual."""
        leases = list(leases)
        listed = {str((lease.get("metadata") or {}).get("name")) for lease in leases}
        for name in [name for name in self._members if name not in listed]:
            del self._members[name]
        for lease in leases:
            self.observe(lease, now=now)

    def _current_until(self, now: float) -> float:
        """Up to when we know the Leases' state: now, unless we have heard nothing for longer
        than the margin (then only up to the last news plus the margin)."""
        heard = self._heard_at if self._heard_at is not None else now
        return min(now, heard + self._margin)

    def _expires_at(self, member: Member) -> float:
        return expires_at(member.observed, default_duration=self._lease_duration)

    def others(self, *, now: float) -> list[Member]:
        """The other members whose record changed within their lease duration."""
        until = self._current_until(now)
        return [m for name, m in self._members.items() if name != self.own_lease and self._expires_at(m) > until]

    def expired(self, *, now: float) -> list[Member]:
        until = self._current_until(now)
        return [m for name, m in self._members.items() if name != self.own_lease and self._expires_at(m) <= until]

    def next_expiry(self, *, now: float) -> float | None:
        """When (our clock) the next live member expires if it does not renew."""
        times = [self._expires_at(m) for m in self.others(now=now)]
        return min(times) if times else None

    @property
    def own_observed(self) -> bool:
        """Our own Lease came back through the LIST or WATCH. Events arrive in order, so by
        then every member that joined before us has arrived too; any that joins later sees
        us before itself, and waits for our acknowledgement."""
        return self.own_lease in self._members

    def url_of(self, identity: str) -> str | None:
        for member in self._members.values():
            if member.identity == identity:
                return member.url
        return None


@dataclass(frozen=True)
class Assignment:
    """What one replica owns: the apps rendezvous hashing gives it under its current view
    (`members`) and under the last view every member acknowledged (`settled`)."""

    identity: str
    members: tuple[str, ...] = ()
    settled: tuple[str, ...] | None = None

    @property
    def active(self) -> bool:
        """This replica is in its own view (live, and seen by itself)."""
        return self.identity in self.members

    def owner(self, app: str) -> str | None:
        return owner(app, self.members)

    def owns(self, app: str) -> bool:
        return (self.active and self.settled is not None and self.owner(app) == self.identity
                and owner(app, self.settled) == self.identity)

    def may_run(self, app: str) -> bool:
        """Whether a tick of `app` already running here is consistent with this view (what
        must hold for every running tick before the view is acknowledged)."""
        return self.active and self.owner(app) == self.identity


def next_assignment(previous: Assignment, *, members: Collection[str], acks: Mapping[str, str | None]) -> Assignment:
    """The assignment after observing `members` (the view, sorted or not) and each other
    member's acknowledged view hash (`acks`, by identity)."""
    view = tuple(sorted(set(members)))
    if previous.identity not in view:
        # Out of our own view (cannot renew, or our Lease is gone): what we owned may have
        # moved meanwhile, so nothing is owned again until everyone agrees anew.
        return Assignment(identity=previous.identity, members=view, settled=None)
    agreed = view_hash(view)
    if all(acks.get(member) == agreed for member in view if member != previous.identity):
        return Assignment(identity=previous.identity, members=view, settled=view)
    return Assignment(identity=previous.identity, members=view, settled=previous.settled)


def drained(assignment: Assignment, running: Iterable[str]) -> bool:
    """No running tick is of an app this replica does not own under its current view: then
    it may acknowledge that view."""
    return assignment.active and all(assignment.may_run(app) for app in running)
