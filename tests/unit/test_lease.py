"""The one Lease protocol (`syncer.kube.lease`) without a server: a fake monotonic clock, wall
clocks that may be skewed by hours, and an in-memory Lease store with the API server's
resourceVersion semantics (create fails when the Lease exists, replace when the version is
stale, delete when a precondition fails).

The central invariant, checked at every step of the timed histories below: a candidate never
acquires the Lease while its previous holder still counts itself as holding it."""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest

from syncer.errors import ClusterError, Conflict, NotFound, Unavailable
from syncer.kube.lease import (
    LEASE,
    WRITE_BOUND_ANNOTATION,
    HeldLease,
    LeaseLost,
    LeaseTiming,
    Observed,
    acquired_spec,
    expires_at,
    holding,
    may_acquire,
    observe,
    takeover_at,
)
from syncer.kube.resource import Resource
from syncer.model import Object

TIMING = LeaseTiming(duration=15.0, renew_deadline=10.0)
FENCED = LeaseTiming(duration=15.0, renew_deadline=10.0, write_bound=30.0)
"""A holder whose writes may run on the server for up to 30 s after it received them."""
RENEW_PERIOD = 5.0
RETRY_PERIOD = 2.0
EPOCH = datetime(2024, 3, 1, 10, 0, 0, tzinfo=timezone.utc)
HOURS = timedelta(hours=3)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Store:
    """Leases in memory, with the server's concurrency rules."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], Object] = {}
        self._versions = itertools.count(1)
        self._uids = itertools.count(1)

    def get(self, name: str, namespace: str) -> Object | None:
        lease = self.leases.get((namespace, name))
        return copy.deepcopy(lease) if lease is not None else None

    def create(self, obj: Object) -> Object:
        metadata = obj["metadata"]
        key = (metadata["namespace"], metadata["name"])
        if key in self.leases:
            raise Conflict(f"Lease/{key[0]}/{key[1]}", "already exists", status=409, reason="AlreadyExists")
        stored = copy.deepcopy(obj)
        stored["metadata"].update(uid=f"uid-{next(self._uids)}", resourceVersion=str(next(self._versions)))
        self.leases[key] = stored
        return copy.deepcopy(stored)

    def replace(self, obj: Object) -> Object:
        metadata = obj["metadata"]
        key = (metadata["namespace"], metadata["name"])
        current = self.leases.get(key)
        if current is None:
            raise NotFound(f"Lease/{key[0]}/{key[1]}", "not found", status=404)
        if metadata.get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise Conflict(f"Lease/{key[0]}/{key[1]}", "the object has been modified", status=409)
        stored = copy.deepcopy(obj)
        stored["metadata"].update(uid=current["metadata"]["uid"], resourceVersion=str(next(self._versions)))
        self.leases[key] = stored
        return copy.deepcopy(stored)

    def delete(self, name: str, namespace: str, *, uid: str | None, resource_version: str | None) -> bool:
        current = self.leases.get((namespace, name))
        if current is None:
            return False
        if (uid and uid != current["metadata"]["uid"]) or (
                resource_version and resource_version != current["metadata"]["resourceVersion"]):
            raise Conflict(f"Lease/{namespace}/{name}", "precondition failed", status=409)
        del self.leases[(namespace, name)]
        return True


class Client:
    """One replica's connection to the store (`syncer.kube.lease.LeaseApi`): it can be cut
    (every write fails as Unavailable), and a hook runs inside each write, before the store
    applies it (`before_write`: another replica's request gets in first) or after (`after_write`:
    this process pauses before it hears the answer)."""

    server = "https://fake"
    write_bound = 30

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cut = False
        self.before_write: Callable[[], None] = lambda: None
        self.after_write: Callable[[], None] = lambda: None
        self.writes = 0

    def _write(self, apply: Callable[[], Object]) -> Object:
        if self.cut:
            raise Unavailable("Lease", "connection refused")
        self.writes += 1
        self.before_write()
        written = apply()
        self.after_write()
        return written

    def resource_for(self, api_version: str, kind: str) -> Resource:
        assert (api_version, kind) == (LEASE.api_version, LEASE.kind)
        return LEASE

    def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Object | None:
        assert resource.plural == LEASE.plural and namespace
        if self.cut:
            raise Unavailable("Lease", "connection refused")
        return self.store.get(name, namespace)

    def create(self, resource: Resource, obj: Object, *, subject: str) -> Object:
        return self._write(lambda: self.store.create(obj))

    def replace(self, resource: Resource, obj: Object, *, subject: str) -> Object:
        return self._write(lambda: self.store.replace(obj))

    def delete(self, resource: Resource, name: str, *, namespace: str | None, subject: str,
               uid: str | None = None, resource_version: str | None = None) -> bool:
        assert namespace
        if self.cut:
            raise Unavailable("Lease", "connection refused")
        return self.store.delete(name, namespace, uid=uid, resource_version=resource_version)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> Store:
    return Store()


def replica(store: Store, clock: Clock, identity: str, *, skew: timedelta = timedelta(0),
            timing: LeaseTiming = TIMING) -> tuple[HeldLease, Client]:
    """A replica whose wall clock is `skew` off (what it writes as renewTime and acquireTime)."""
    api = Client(store)
    lease = HeldLease(api, namespace="ns", name="syncer-shop", identity=identity, timing=timing, clock=clock,
                      wall=lambda: EPOCH + skew + timedelta(seconds=clock.now))
    return lease, api


def holder_of(store: Store) -> str | None:
    lease = store.get("syncer-shop", "ns")
    return None if lease is None else lease["spec"].get("holderIdentity")


def ticks(clock: Clock, *, until: float, step: float = 0.05) -> Iterator[float]:
    """Move the clock by `step` up to `until` seconds from now, yielding each time."""
    end = clock.now + until
    while clock.now < end:
        clock.advance(step)
        yield clock.now


def run(clock: Clock, *, seconds: float, holder: HeldLease | None, candidate: HeldLease,
        holder_renews: bool = True) -> float | None:
    """Both replicas act as leader election does: the holder renews every renew period (its
    errors ignored), the candidate tries every retry period. Returns when (seconds from the
    start) the candidate acquired, None if it did not; checks the invariant at every step."""
    start = clock.now
    next_renewal = clock.now + RENEW_PERIOD
    next_try = clock.now
    for now in ticks(clock, until=seconds):
        if holder is not None and holder_renews and now >= next_renewal:
            next_renewal = now + RENEW_PERIOD
            try:
                holder.renew()
            except ClusterError:
                next_renewal = now + RETRY_PERIOD
        if now >= next_try:
            next_try = now + RETRY_PERIOD
            if candidate.try_acquire():
                assert holder is None or not holder.held(), "taken over while the holder still held it"
                return now - start
        assert not (holder is not None and holder.held() and candidate.held())
    return None


# -- the pure rules ----------------------------------------------------------------------------------

def record(holder: str | None, version: str, duration: int | None = 15, bound: str | None = None) -> Object:
    annotations = {} if bound is None else {WRITE_BOUND_ANNOTATION: bound}
    return {"metadata": {"name": "syncer-shop", "uid": "u1", "resourceVersion": version, "annotations": annotations},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration}}


def test_the_clock_restarts_only_when_the_record_changes() -> None:
    first = observe(None, record("a", "1"), now=100.0)
    assert observe(first, record("a", "1"), now=110.0).seen_at == 100.0  # seen again: no renewal
    assert observe(first, record("a", "2"), now=110.0).seen_at == 110.0  # renewed
    assert observe(first, record("b", "1"), now=110.0).seen_at == 110.0  # another holder


@pytest.mark.parametrize(("observed", "now", "allowed"), [
    pytest.param(None, 100.0, True, id="no-lease"),
    pytest.param(Observed("", "1", "u1", 15.0, seen_at=100.0), 100.0, True, id="released"),
    pytest.param(Observed("me", "1", "u1", 15.0, seen_at=100.0), 100.0, True, id="our-own"),
    pytest.param(Observed("a", "1", "u1", 15.0, seen_at=100.0), 114.9, False, id="live"),
    pytest.param(Observed("a", "1", "u1", 15.0, seen_at=100.0), 115.0, True, id="expired"),
    pytest.param(Observed("a", "1", "u1", 30.0, seen_at=100.0), 115.0, False, id="its-own-longer-duration"),
    pytest.param(Observed("a", "1", "u1", None, seen_at=100.0), 115.0, True, id="no-duration-written"),
])
def test_may_acquire(observed: Observed | None, now: float, allowed: bool) -> None:
    assert may_acquire(observed, identity="me", now=now, default=TIMING) is allowed


@pytest.mark.parametrize(("observed", "now", "allowed"), [
    pytest.param(Observed("a", "1", "u1", 15.0, seen_at=100.0, write_bound=5.0), 115.0, False,
                 id="expired-but-its-last-write-may-still-run"),
    pytest.param(Observed("a", "1", "u1", 15.0, seen_at=100.0, write_bound=5.0), 119.9, False, id="just-before"),
    pytest.param(Observed("a", "1", "u1", 15.0, seen_at=100.0, write_bound=5.0), 120.0, True,
                 id="duration-plus-its-bound"),
    pytest.param(Observed("a", "1", "u1", 15.0, seen_at=100.0, write_bound=0.0), 115.0, True,
                 id="it-wrote-a-zero-bound"),
    pytest.param(Observed("a", "1", "u1", 15.0, seen_at=100.0), 144.9, False, id="no-bound-written-ours-counts"),
    pytest.param(Observed("a", "1", "u1", 15.0, seen_at=100.0), 145.0, True, id="no-bound-written-after-ours"),
    pytest.param(Observed("a", "1", "u1", 15.0, seen_at=100.0, write_bound=60.0), 145.0, False,
                 id="its-own-longer-bound"),
    pytest.param(Observed("", "1", "u1", 15.0, seen_at=100.0, write_bound=60.0), 100.0, True, id="released"),
    pytest.param(Observed("me", "1", "u1", 15.0, seen_at=100.0, write_bound=60.0), 100.0, True, id="our-own"),
])
def test_a_takeover_waits_the_duration_plus_the_holders_write_bound(
    observed: Observed, now: float, allowed: bool,
) -> None:
    """Fencing: a write the holder sent just before its lease ran out may run on the server for
    up to its write bound; a candidate that wrote before then could be undone by it."""
    assert may_acquire(observed, identity="me", now=now, default=FENCED) is allowed


@pytest.mark.parametrize(("written", "bound"), [
    ("30", 30.0), ("2.5", 2.5), ("0", 0.0), ("-1", None), ("soon", None), ("nan", None), ("inf", None), (None, None)])
def test_the_write_bound_is_read_from_the_lease(written: str | None, bound: float | None) -> None:
    observed = observe(None, record("a", "1", bound=written), now=100.0)
    assert observed.write_bound == bound
    assert takeover_at(observed, default=FENCED) == 115.0 + (FENCED.write_bound if bound is None else bound)


def test_expiry_uses_the_written_duration_and_falls_back_to_ours() -> None:
    assert expires_at(Observed("a", "1", "u", 30.0, seen_at=10.0), default_duration=15.0) == 40.0
    assert expires_at(Observed("a", "1", "u", None, seen_at=10.0), default_duration=15.0) == 25.0


@pytest.mark.parametrize(("sent_at", "now", "held"), [
    (None, 100.0, False), (100.0, 100.0, True), (100.0, 109.9, True), (100.0, 110.0, False)])
def test_holding_counts_from_the_last_write_sent(sent_at: float | None, now: float, held: bool) -> None:
    assert holding(sent_at, now=now, renew_deadline=10.0) is held


def test_a_takeover_counts_a_transition_and_a_reacquisition_does_not() -> None:
    new = acquired_spec(None, identity="a", duration_seconds=15, now=EPOCH)
    assert (new["holderIdentity"], new["leaseTransitions"], new["acquireTime"]) == ("a", 0, "2024-03-01T10:00:00.000000Z")
    later = EPOCH + timedelta(seconds=60)
    again = acquired_spec({"spec": new}, identity="a", duration_seconds=15, now=later)
    assert (again["leaseTransitions"], again["acquireTime"]) == (0, new["acquireTime"])
    assert again["renewTime"] == "2024-03-01T10:01:00.000000Z"
    taken = acquired_spec({"spec": new}, identity="b", duration_seconds=15, now=later)
    assert (taken["holderIdentity"], taken["leaseTransitions"], taken["acquireTime"]) == ("b", 1, again["renewTime"])
    released = {**new, "holderIdentity": None}
    assert acquired_spec({"spec": released}, identity="b", duration_seconds=15, now=later)["leaseTransitions"] == 0


def test_the_written_duration_never_rounds_down() -> None:
    assert LeaseTiming(duration=2.4, renew_deadline=2.2).duration_seconds == 3
    assert LeaseTiming(duration=0.5, renew_deadline=0.3).duration_seconds == 1
    with pytest.raises(ValueError):
        LeaseTiming(duration=10.0, renew_deadline=10.0)
    with pytest.raises(ValueError):
        LeaseTiming(duration=10.0, renew_deadline=5.0, write_bound=-1.0)


# -- the protocol over the fake store ----------------------------------------------------------------

def test_a_missing_lease_is_created_and_held(store: Store, clock: Clock) -> None:
    lease, _ = replica(store, clock, "a")
    assert lease.try_acquire()
    assert lease.held() and holder_of(store) == "a"


def test_no_takeover_before_expiry_and_takeover_after(store: Store, clock: Clock) -> None:
    """The holder dies right after acquiring: the candidate waits the full duration from when
    it first saw that record, and not a moment less."""
    holder, _ = replica(store, clock, "a")
    candidate, _ = replica(store, clock, "b")
    assert holder.try_acquire()
    clock.advance(1.0)
    assert not candidate.try_acquire()  # first sight of the record: the clock starts now
    seen = clock.now
    clock.advance(TIMING.duration - 0.01)
    assert not candidate.try_acquire()
    assert holder_of(store) == "a"
    clock.now = seen + TIMING.duration
    assert candidate.try_acquire()
    assert holder_of(store) == "b" and candidate.held() and not holder.held()


def test_a_renewed_lease_is_never_taken_over(store: Store, clock: Clock) -> None:
    holder, _ = replica(store, clock, "a")
    candidate, _ = replica(store, clock, "b")
    assert holder.try_acquire()
    assert run(clock, seconds=10 * TIMING.duration, holder=holder, candidate=candidate) is None
    assert holder.held() and holder_of(store) == "a"


def test_a_dead_holder_is_taken_over_after_the_duration(store: Store, clock: Clock) -> None:
    holder, _ = replica(store, clock, "a")
    candidate, _ = replica(store, clock, "b")
    assert holder.try_acquire()
    took = run(clock, seconds=3 * TIMING.duration, holder=holder, candidate=candidate, holder_renews=False)
    assert took is not None and TIMING.duration <= took <= TIMING.duration + RETRY_PERIOD + 0.1
    assert holder_of(store) == "b"


def test_a_holder_that_cannot_renew_stops_holding_before_anyone_may_take_over(store: Store, clock: Clock) -> None:
    holder, holder_api = replica(store, clock, "a")
    candidate, _ = replica(store, clock, "b")
    assert holder.try_acquire()
    assert run(clock, seconds=2 * TIMING.duration, holder=holder, candidate=candidate) is None
    holder_api.cut = True  # every renewal fails from now on
    last_renewal, started = holder.sent_at, clock.now
    assert last_renewal is not None
    took = run(clock, seconds=3 * TIMING.duration, holder=holder, candidate=candidate)
    assert took is not None, "the candidate never took over"
    # The holder stopped at its renew deadline after its last good renewal; the candidate
    # took over no earlier than a full duration after it.
    assert not holder.held(now=last_renewal + TIMING.renew_deadline)
    assert started + took - last_renewal >= TIMING.duration


def test_the_holders_last_write_has_ended_on_the_server_before_anyone_takes_over(store: Store, clock: Clock) -> None:
    """Fencing over the fake store. The holder checks that it holds before each write it sends,
    as a sync does, and each may run on the server for its write bound; then it stops renewing
    (paused, or cut off) while its writes go on as long as it counts itself holding. The
    candidate, which fences no writes of its own (write bound 0), goes by the bound the
    holder wrote into the Lease: it takes over only after every write the holder sent has
    ended."""
    holder, _ = replica(store, clock, "a", timing=FENCED)
    candidate, _ = replica(store, clock, "b", timing=TIMING)
    assert holder.try_acquire()
    assert (store.get("syncer-shop", "ns") or {})["metadata"]["annotations"][WRITE_BOUND_ANNOTATION] == "30"
    assert run(clock, seconds=2 * FENCED.duration, holder=holder, candidate=candidate) is None
    running_until: list[float] = []
    next_try = clock.now
    for now in ticks(clock, until=3 * (FENCED.duration + FENCED.write_bound)):
        if holder.held():
            running_until.append(now + FENCED.write_bound)
        if now >= next_try:
            next_try = now + RETRY_PERIOD
            if candidate.try_acquire():
                break
    else:
        pytest.fail("the candidate never took over")
    assert running_until, "the holder sent no write after its last renewal"
    assert clock.now >= max(running_until), "taken over while a write of the holder's may still run on the server"
    assert holder_of(store) == "b"


def test_a_lease_that_fences_no_writes_states_no_bound(store: Store, clock: Clock) -> None:
    """Leader election and shard membership fence no writes of their own (write bound 0): their
    Leases say nothing, and a candidate uses its own bound, 0 for them too."""
    holder, _ = replica(store, clock, "a", timing=TIMING)
    assert holder.try_acquire()
    holder.renew()
    assert WRITE_BOUND_ANNOTATION not in ((store.get("syncer-shop", "ns") or {})["metadata"].get("annotations") or {})


def test_of_two_racers_exactly_one_wins(store: Store, clock: Clock) -> None:
    """Both saw the same expired record; the second's write gets in while the first's is on
    its way: the first gets a Conflict."""
    holder, _ = replica(store, clock, "dead")
    first, first_api = replica(store, clock, "first")
    second, _ = replica(store, clock, "second")
    assert holder.try_acquire()
    assert not first.try_acquire() and not second.try_acquire()
    clock.advance(TIMING.duration)
    results: dict[str, bool] = {}
    first_api.before_write = lambda: results.setdefault("second", second.try_acquire())
    results["first"] = first.try_acquire()
    assert results == {"second": True, "first": False}
    assert holder_of(store) == "second" and second.held() and not first.held()
    assert not first.try_acquire()  # it now sees the winner's fresh record
    assert first.observed is not None and first.observed.holder == "second"


@pytest.mark.parametrize(("holder_skew", "candidate_skew"), [
    pytest.param(-HOURS, timedelta(0), id="holder-hours-behind"),
    pytest.param(HOURS, timedelta(0), id="holder-hours-ahead"),
    pytest.param(timedelta(0), -HOURS, id="candidate-hours-behind"),
    pytest.param(timedelta(0), HOURS, id="candidate-hours-ahead"),
])
def test_skewed_wall_clocks_neither_take_over_nor_lose_a_lease_early(
    store: Store, clock: Clock, holder_skew: timedelta, candidate_skew: timedelta,
) -> None:
    """The renewTime a holder hours behind writes looks long expired to a correct clock, and a
    candidate hours ahead sees every renewTime as ancient: neither may matter. A dead holder
    whose renewTime lies hours in the future is still taken over after the duration."""
    holder, _ = replica(store, clock, "a", skew=holder_skew)
    candidate, _ = replica(store, clock, "b", skew=candidate_skew)
    assert holder.try_acquire()
    assert run(clock, seconds=4 * TIMING.duration, holder=holder, candidate=candidate) is None
    assert holder.held() and holder_of(store) == "a"
    last_renewal, started = holder.sent_at, clock.now
    assert last_renewal is not None
    took = run(clock, seconds=3 * TIMING.duration, holder=holder, candidate=candidate, holder_renews=False)
    assert took is not None and started + took - last_renewal >= TIMING.duration


def test_a_paused_holder_stops_holding(store: Store, clock: Clock) -> None:
    holder, _ = replica(store, clock, "a")
    assert holder.try_acquire()
    clock.advance(TIMING.renew_deadline - 0.01)
    assert holder.held()
    clock.advance(0.01)  # paused through its renewals (SIGSTOP, a frozen VM)
    assert not holder.held()


def test_a_pause_between_request_and_answer_counts_against_the_holder(store: Store, clock: Clock) -> None:
    """The server wrote the Lease, then the process stalled longer than the lease before it
    heard back: the Lease counts from when the request was sent, so it is not held."""
    holder, api = replica(store, clock, "a")
    api.after_write = lambda: clock.advance(TIMING.duration + 1)
    assert holder.try_acquire()
    assert holder_of(store) == "a" and not holder.held()
    api.after_write = lambda: clock.advance(TIMING.renew_deadline)
    holder.renew()
    assert not holder.held()


def test_a_released_lease_is_taken_at_once(store: Store, clock: Clock) -> None:
    holder, _ = replica(store, clock, "a")
    candidate, _ = replica(store, clock, "b")
    assert holder.try_acquire()
    assert not candidate.try_acquire()
    holder.release_by_clearing()
    assert holder_of(store) is None and not holder.held()
    assert candidate.try_acquire()  # no wait: nobody holds it
    assert holder_of(store) == "b"


def test_a_deleted_lease_is_created_at_once_and_a_taken_one_is_not_deleted(store: Store, clock: Clock) -> None:
    holder, _ = replica(store, clock, "a")
    candidate, _ = replica(store, clock, "b")
    assert holder.try_acquire()
    holder.release_by_deleting()
    assert holder_of(store) is None and store.get("syncer-shop", "ns") is None
    assert candidate.try_acquire()
    holder.release_by_deleting()  # not ours any more: nothing to delete
    assert holder_of(store) == "b"


def test_a_renewal_finds_the_lease_taken_over_or_deleted(store: Store, clock: Clock) -> None:
    holder, _ = replica(store, clock, "a")
    assert holder.try_acquire()
    taken = store.get("syncer-shop", "ns")
    assert taken is not None
    taken["spec"]["holderIdentity"] = "intruder"
    store.replace(taken)
    with pytest.raises(LeaseLost, match="taken over by intruder"):
        holder.renew()
    assert not holder.held() and not holder.acquired
    holder.release_by_deleting()
    assert holder_of(store) == "intruder"  # a lost Lease is never deleted

    other, _ = replica(store, clock, "b")
    store.leases.clear()
    assert other.try_acquire()
    store.leases.clear()
    with pytest.raises(LeaseLost, match="deleted"):
        other.renew()


def test_a_renewal_that_lost_its_answer_recovers(store: Store, clock: Clock) -> None:
    """A renewal the server applied but whose answer was lost leaves us a stale version: the
    next renewal conflicts, reads the Lease back, finds it still ours, and renews from it."""
    holder, _ = replica(store, clock, "a")
    assert holder.try_acquire()
    mine = store.get("syncer-shop", "ns")
    assert mine is not None
    store.replace(mine)  # our renewal, applied; its answer never arrived
    clock.advance(RENEW_PERIOD)
    with pytest.raises(ClusterError, match="changed under us") as failure:
        holder.renew()
    assert not isinstance(failure.value, LeaseLost)
    holder.renew()
    assert holder.held() and holder.sent_at == clock.now


# -- the app lock on the protocol -------------------------------------------------------------------

def test_the_app_lock_does_not_take_over_a_live_lock_whose_holder_clock_is_behind(store: Store) -> None:
    """The bug of the old rule: renewTime three hours ago on our clock looked expired, and a
    second sync took over a lock its holder was renewing."""
    from syncer.apply.lock import AppLock
    from syncer.errors import LockHeld

    behind = (datetime.now(timezone.utc) - HOURS).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    store.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                  "metadata": {"name": "syncer-shop", "namespace": "ns"},
                  "spec": {"holderIdentity": "ci-1", "leaseDurationSeconds": 30, "acquireTime": behind,
                           "renewTime": behind}})
    lock = AppLock(Client(store), app="shop", namespace="ns", timeout=0.2, poll_interval=0.05)  # type: ignore[arg-type]
    with pytest.raises(LockHeld, match=r"another sync holds Lease/ns/syncer-shop \(holder ci-1, since"):
        lock.acquire()
    assert holder_of(store) == "ci-1"


def test_the_app_lock_takes_a_released_lock_at_once_and_deletes_it_on_release(store: Store) -> None:
    from syncer.apply.lock import AppLock

    store.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                  "metadata": {"name": "syncer-shop", "namespace": "ns"},
                  "spec": {"holderIdentity": None, "leaseDurationSeconds": 1}})
    with AppLock(Client(store), app="shop", namespace="ns", timeout=0, identity="me") as lock:  # type: ignore[arg-type]
        assert holder_of(store) == "me"
        # What its writes' server-side timeout is (Kube.write_bound): a sync taking over waits it out.
        assert (store.get("syncer-shop", "ns") or {})["metadata"]["annotations"][WRITE_BOUND_ANNOTATION] == "30"
        lock.ensure_held()
        lock.confirm()
    assert store.get("syncer-shop", "ns") is None


def test_retried_app_locks_take_a_dead_holders_lock_however_short_their_timeout(store: Store) -> None:
    """A daemon retries a sync that gave up waiting with a new AppLock. Each must not start the
    count of the holder's silence from zero, or a lock timeout no longer than the lease's
    duration would never take a dead holder's lock."""
    from syncer.apply.lock import AppLock
    from syncer.errors import LockHeld

    store.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                  "metadata": {"name": "syncer-shop", "namespace": "ns",
                               "annotations": {WRITE_BOUND_ANNOTATION: "1"}},
                  "spec": {"holderIdentity": "crashed", "leaseDurationSeconds": 1}})
    started = time.monotonic()
    while True:
        lock = AppLock(Client(store), app="shop", namespace="ns", timeout=0, duration_seconds=1,  # type: ignore[arg-type]
                       identity="retry")
        try:
            lock.acquire()
            break
        except LockHeld:
            assert time.monotonic() - started < 10, "a retried sync never took the dead holder's lock"
            time.sleep(0.3)
    try:
        assert holder_of(store) == "retry"
        assert time.monotonic() - started >= 2.0  # its duration and its write bound
    finally:
        lock.release()
