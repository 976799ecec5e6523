"""The one Lease protocol (`coordination.k8s.io/v1`): app locks, leader election, shard membership.

client-go's leaderelection protocol, so its guarantees carry over:

* **Expiry is judged on the observer's clock.** A candidate may take a Lease when it names
  no holder (released), when it names the candidate itself, or when its record (holder and
  resourceVersion) has not changed for the Lease's duration, measured on the candidate's
  own monotonic clock from when it *first saw* that record. The renewTime another machine
  wrote is never compared with our wall clock: a holder whose clock runs hours ahead or
  behind can neither take a live Lease over nor lose its own early. (The times written are
  for people reading the Lease.)
* **Writes are optimistic.** Acquire is a create, or a replace carrying the resourceVersion
  read; renew is a replace. Of two candidates racing for one expired Lease exactly one
  wins; the other gets a Conflict and sees the winner's record next time.
* **Held is judged on the holder's clock from when its last successful write was *sent*.**
  A holder counts as holding only for `renew_deadline` (shorter than the duration) after
  it sent its last successful write, not after the answer came: a process paused between
  request and answer (SIGSTOP, a long GC, a frozen VM) must not count the pause as time
  it held the Lease. An observer starts counting no earlier than the server wrote, which
  is after the holder sent, so the holder stops holding at least `duration - renew_deadline`
  before anyone may take over (give or take how fast the two clocks run).
* **Release** either clears the holder (a standby retrying sees a released Lease and takes
  it at once) or deletes the Lease with uid and resourceVersion preconditions, so only our
  own, unchanged Lease goes.
* **A takeover waits out the holder's writes (fencing).** A holder whose writes each carry a
  server-side `timeout` (`write_bound`, see `Kube.write_bound`) writes that bound into its
  Lease (`WRITE_BOUND_ANNOTATION`), and a candidate may take over only once the record has
  not changed for its duration *plus* that bound. The holder checks that it holds before
  the last byte of each write goes out (`Kube.guarded`), when the server has read the
  request's headers and started its timeout: its last write is checked before
  `renew_deadline` after its last renewal was sent, and the server gives up on it
  `write_bound` later, before `renew_deadline + write_bound`, earlier than the first moment a
  candidate may write, `duration + write_bound` after that renewal (the difference
  `duration - renew_deadline` is the margin for the network and for clock rates). However
  long the holder is paused after its check, its write cannot land after a takeover.

What this does not bound (the README's Fencing section; issue 20): a network that delays a
request's headers by more than the margin, an API server that commits a write after its
timeout (an etcd transaction already sent), clocks whose rates differ by more than the margin.

The decisions (`observe`, `may_acquire`, `holding`, the `*_spec` functions) are pure
functions over plain data and an explicit `now`; `HeldLease` is the thin I/O edge that sends
`get`/`create`/`replace`/`delete` through anything shaped like `syncer.kube.Kube`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from syncer.errors import ClusterError, Conflict, NotFound
from syncer.kube.resource import Resource
from syncer.model import Object

log = logging.getLogger(__name__)

LEASE = Resource(group="coordination.k8s.io", version="v1", kind="Lease", plural="leases", namespaced=True)
"""Served by every supported Kubernetes (GA since 1.14): no discovery needed, so a daemon
starts, and reports itself not ready, while the API server is unreachable."""
MANAGED_BY = {"app.kubernetes.io/managed-by": "syncer"}
WRITE_BOUND_ANNOTATION = "syncer.dev/write-bound-seconds"
"""Written by a holder whose writes carry a server-side timeout: at most this many seconds
after the server received one of its writes, the server has finished with it. A candidate
adds it to the Lease's duration before it takes over (`may_acquire`)."""


# -- the pure core ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LeaseTiming:
    """How long a Lease lasts without renewal (`duration`, what observers wait), how long
    its holder counts itself as holding after its last successful write was sent
    (`renew_deadline`, shorter: the difference is the margin for the write in flight and for
    clocks that run at slightly different rates), and how long after the server received a
    write of the holder's the server may still be working on it (`write_bound`, the
    server-side `timeout` every write carries; 0 for a Lease that fences no writes of its
    own). A candidate waits `duration + write_bound` of the holder's before it takes over."""

    duration: float
    renew_deadline: float
    write_bound: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.renew_deadline < self.duration:
            raise ValueError("a Lease needs 0 < renew_deadline < duration")
        if self.write_bound < 0:
            raise ValueError("a Lease needs write_bound >= 0")

    @property
    def duration_seconds(self) -> int:
        """What goes into `leaseDurationSeconds` (whole seconds): rounded up, so observers
        that go by the written duration never wait less than the holder assumes."""
        return max(1, math.ceil(self.duration))


@dataclass(frozen=True)
class Observed:
    """A Lease record as last seen, and when (the observer's monotonic clock) it last changed."""

    holder: str
    """"" when the Lease names no holder (released)."""
    resource_version: str
    uid: str
    duration: float | None
    """The `leaseDurationSeconds` its holder wrote."""
    seen_at: float
    write_bound: float | None = None
    """The `WRITE_BOUND_ANNOTATION` its holder wrote (None: it wrote none)."""


def observe(previous: Observed | None, lease: Object, *, now: float) -> Observed:
    """The record of `lease` as seen at `now`. The clock restarts only when the record
    changed: the same holder and resourceVersion seen again (a re-list, a retry) proves no
    renewal happened since."""
    metadata = lease.get("metadata") or {}
    spec = lease.get("spec") or {}
    holder = str(spec.get("holderIdentity") or "")
    version = str(metadata.get("resourceVersion") or "")
    duration = spec.get("leaseDurationSeconds")
    unchanged = previous is not None and (previous.holder, previous.resource_version) == (holder, version)
    return Observed(holder=holder, resource_version=version, uid=str(metadata.get("uid") or ""),
                    duration=float(duration) if duration else None,
                    seen_at=previous.seen_at if previous is not None and unchanged else now,
                    write_bound=_seconds((metadata.get("annotations") or {}).get(WRITE_BOUND_ANNOTATION)))


def _seconds(text: object) -> float | None:
    """A non-negative number of seconds written by someone else, or None when it is not one."""
    try:
        value = float(str(text))
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def expires_at(observed: Observed, *, default_duration: float) -> float:
    """When (the observer's clock) the record expires unless it changes: the duration its
    holder wrote (ours when it wrote none) after the observer first saw it."""
    return observed.seen_at + (observed.duration or default_duration)


def takeover_at(observed: Observed, *, default: LeaseTiming) -> float:
    """When (the observer's clock) another candidate may take the record over unless it
    changes: once it expired and the holder's last write, sent before it expired, has ended
    on the server. The duration and write bound its holder wrote count; ours stand in for
    what it did not write."""
    bound = observed.write_bound if observed.write_bound is not None else default.write_bound
    return expires_at(observed, default_duration=default.duration) + bound


def may_acquire(observed: Observed | None, *, identity: str, now: float, default: LeaseTiming) -> bool:
    """Whether `identity` may write itself into the Lease now: there is none, it names no
    holder or ourselves, or its record has not changed for its duration plus its holder's
    write bound (`takeover_at`)."""
    if observed is None or not observed.holder or observed.holder == identity:
        return True
    return now >= takeover_at(observed, default=default)


def holding(sent_at: float | None, *, now: float, renew_deadline: float) -> bool:
    """Whether a holder whose last successful write was sent at `sent_at` still holds."""
    return sent_at is not None and now - sent_at < renew_deadline


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def acquired_spec(current: Object | None, *, identity: str, duration_seconds: int, now: datetime) -> Object:
    """The spec that makes `identity` the holder of `current` (None: a new Lease). Taking
    over from another holder counts a transition and restarts acquireTime; re-acquiring
    our own Lease (after a restart with the same identity) keeps both, as client-go does."""
    spec = dict((current or {}).get("spec") or {})
    stamp = micro_time(now)
    previous = spec.get("holderIdentity")
    transitions = int(spec.get("leaseTransitions") or 0)
    if previous != identity or not spec.get("acquireTime"):
        spec["acquireTime"] = stamp
        if previous:
            transitions += 1
    spec.update({"holderIdentity": identity, "leaseDurationSeconds": duration_seconds, "renewTime": stamp,
                 "leaseTransitions": transitions})
    return spec


def renewed_spec(current: Object, *, now: datetime) -> Object:
    return {**(current.get("spec") or {}), "renewTime": micro_time(now)}


def released_spec(current: Object, *, now: datetime) -> Object:
    """No holder: the next candidate to look takes the Lease at once."""
    return {**(current.get("spec") or {}), "holderIdentity": None, "leaseDurationSeconds": 1,
            "renewTime": micro_time(now)}


def with_metadata(lease: Object, *, labels: Mapping[str, str], annotations: Mapping[str, str | None]) -> Object:
    """`lease` with `labels` set and `annotations` set (a value) or removed (None)."""
    metadata = dict(lease.get("metadata") or {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    merged = {**(metadata.get("annotations") or {}), **annotations}
    metadata["annotations"] = {key: value for key, value in merged.items() if value is not None}
    return {**lease, "metadata": metadata}


def names_us(lease: Object | None, *, identity: str, uid: str) -> bool:
    """`lease` (as read back) is the Lease we wrote, and still names us as its holder."""
    return (lease is not None and (lease.get("metadata") or {}).get("uid") == uid
            and (lease.get("spec") or {}).get("holderIdentity") == identity)


# -- the I/O edge ----------------------------------------------------------------------------------

class LeaseApi(Protocol):
    """The verbs the protocol needs (`syncer.kube.Kube` has them; tests use a fake)."""

    def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Object | None: ...

    def create(self, resource: Resource, obj: Object, *, subject: str) -> Object: ...

    def replace(self, resource: Resource, obj: Object, *, subject: str) -> Object: ...

    def delete(self, resource: Resource, name: str, *, namespace: str | None, subject: str,
               uid: str | None = None, resource_version: str | None = None) -> bool: ...


def delete_unchanged(api: LeaseApi, *, namespace: str, name: str, observed: Observed) -> bool:
    """Delete a Lease only if it is still the record observed (uid and resourceVersion
    preconditions): one renewed or taken over since stays. True when it was deleted; raises
    ClusterError when the delete failed for another reason."""
    subject = f"Lease/{namespace}/{name}"
    try:
        return api.delete(LEASE, name, namespace=namespace, subject=subject, uid=observed.uid or None,
                          resource_version=observed.resource_version or None)
    except Conflict:
        log.debug("%s: not deleted: changed since it was observed", subject)
        return False


class LeaseLost(ClusterError):
    """A renewal found the Lease gone, or naming another holder: it is not ours any more."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class HeldLease:
    """One identity's claim on one Lease: acquire, renew, release, and whether it holds.

    Safe to share between threads: a renewer writes while others ask `held`.
    """

    def __init__(
        self,
        api: LeaseApi,
        *,
        namespace: str,
        name: str,
        identity: str,
        timing: LeaseTiming,
        labels: Mapping[str, str] = MANAGED_BY,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
        observed: Observed | None = None,
    ) -> None:
        """`observed`: what an earlier claim of this process on the same Lease saw, so that
        the time the holder has already been silent counts (see `AppLock`)."""
        self._api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing
        self._labels = dict(labels)
        self._clock = clock
        self._wall = wall
        self.subject = f"Lease/{namespace}/{name}"
        self._lock = threading.Lock()
        self._lease: Object | None = None
        """Our Lease as the server last answered a write of ours (None: not ours)."""
        self._sent_at: float | None = None
        """When (our clock) our last successful write was sent."""
        self._observed: Observed | None = observed
        self._seen: Object | None = None

    # -- state -----------------------------------------------------------------------------------

    def held(self, *, now: float | None = None) -> bool:
        with self._lock:
            return self._lease is not None and holding(
                self._sent_at, now=self._clock() if now is None else now, renew_deadline=self.timing.renew_deadline)

    @property
    def acquired(self) -> bool:
        """We acquired the Lease and have not released or lost it (held or not)."""
        with self._lock:
            return self._lease is not None

    @property
    def sent_at(self) -> float | None:
        with self._lock:
            return self._sent_at

    def age(self) -> float | None:
        """Seconds since our last successful write was sent."""
        with self._lock:
            return None if self._sent_at is None else self._clock() - self._sent_at

    @property
    def observed(self) -> Observed | None:
        """The record as last seen (read or written), with when it last changed."""
        with self._lock:
            return self._observed

    @property
    def seen(self) -> Object | None:
        """The Lease as last seen (read or written), e.g. for its holder's annotations."""
        with self._lock:
            return self._seen

    def _saw(self, lease: Object | None, *, now: float) -> None:
        with self._lock:
            self._seen = lease
            self._observed = None if lease is None else observe(self._observed, lease, now=now)

    def _wrote(self, lease: Object | None, *, sent_at: float | None) -> None:
        with self._lock:
            self._lease, self._sent_at = lease, sent_at
        if lease is not None:
            self._saw(lease, now=self._clock())

    # -- writes ----------------------------------------------------------------------------------

    def _annotations(self, annotations: Mapping[str, str | None]) -> dict[str, str | None]:
        """The caller's annotations, and our write bound, which every acquisition and renewal
        states afresh (a candidate waits it out before taking over)."""
        bound = self.timing.write_bound
        return {**annotations, WRITE_BOUND_ANNOTATION: f"{bound:g}" if bound else None}

    def try_acquire(self, *, annotations: Mapping[str, str | None] = {}) -> bool:
        """Take the Lease if `may_acquire` allows; False when another holder has it (see
        `observed`) or won the race for it."""
        current = self._api.get(LEASE, self.name, namespace=self.namespace)
        now = self._clock()
        self._saw(current, now=now)
        if not may_acquire(self.observed, identity=self.identity, now=now, default=self.timing):
            return False
        base: Object = current or {"apiVersion": LEASE.api_version, "kind": LEASE.kind,
                                   "metadata": {"name": self.name, "namespace": self.namespace}}
        spec = acquired_spec(current, identity=self.identity, duration_seconds=self.timing.duration_seconds,
                             now=self._wall())
        body = with_metadata({**base, "spec": spec}, labels=self._labels, annotations=self._annotations(annotations))
        sent_at = self._clock()
        try:
            if current is None:
                written = self._api.create(LEASE, body, subject=self.subject)
            else:
                written = self._api.replace(LEASE, body, subject=self.subject)
        except Conflict:
            return False  # another candidate won the race; we will see its record next time
        self._wrote(written, sent_at=sent_at)
        return True

    def renew(self, *, annotations: Mapping[str, str | None] = {}) -> None:
        """Renew our Lease. Raises LeaseLost when it is gone or names someone else, and
        another ClusterError when this attempt failed (try again; `held` says for how long)."""
        with self._lock:
            lease = self._lease
        if lease is None:
            raise LeaseLost(self.subject, "not held")
        body = with_metadata({**lease, "spec": renewed_spec(lease, now=self._wall())},
                             labels=self._labels, annotations=self._annotations(annotations))
        sent_at = self._clock()
        try:
            written = self._api.replace(LEASE, body, subject=self.subject)
        except NotFound:
            self._wrote(None, sent_at=None)
            raise LeaseLost(self.subject, "the Lease was deleted") from None
        except Conflict:
            # Someone else wrote the Lease: it is still ours only if it still names us.
            current = self._api.get(LEASE, self.name, namespace=self.namespace)
            self._saw(current, now=self._clock())
            if not names_us(current, identity=self.identity, uid=str(lease["metadata"].get("uid") or "")):
                self._wrote(None, sent_at=None)
                holder = ((current or {}).get("spec") or {}).get("holderIdentity")
                raise LeaseLost(self.subject, f"taken over by {holder}" if current else "the Lease was deleted") \
                    from None
            assert current is not None
            with self._lock:
                self._lease = current  # renew from its version next time, without counting it as ours
            raise ClusterError(self.subject, "the Lease changed under us; renewing again") from None
        self._wrote(written, sent_at=sent_at)

    def forget(self) -> None:
        """Stop counting the Lease as ours without writing (it is lost, or left to expire)."""
        self._wrote(None, sent_at=None)

    def release_by_clearing(self, *, annotations: Mapping[str, str | None] = {}) -> None:
        """Clear the holder: a candidate takes the Lease at its next look, without waiting.
        Raises ClusterError when the write failed (the Lease then expires as after a crash)."""
        with self._lock:
            lease = self._lease
        self.forget()
        if lease is None:
            return
        body = with_metadata({**lease, "spec": released_spec(lease, now=self._wall())},
                             labels=self._labels, annotations=annotations)
        self._saw(self._api.replace(LEASE, body, subject=self.subject), now=self._clock())

    def release_by_deleting(self) -> None:
        """Delete our Lease, only if it is still the one we last wrote (uid and
        resourceVersion preconditions): a Lease taken over since stays. Raises ClusterError
        when the delete failed for another reason."""
        with self._lock:
            lease = self._lease
        self.forget()
        if lease is None:
            return
        delete_unchanged(self._api, namespace=self.namespace, name=self.name,
                         observed=observe(None, lease, now=self._clock()))

    def read_back(self) -> bool:
        """Read the Lease: True when it is still the one we wrote, naming us."""
        with self._lock:
            lease = self._lease
        if lease is None:
            return False
        current = self._api.get(LEASE, self.name, namespace=self.namespace)
        self._saw(current, now=self._clock())
        return names_us(current, identity=self.identity, uid=str(lease["metadata"].get("uid") or ""))
