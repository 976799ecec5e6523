"""The daemon model's invariants, as pure functions of what the test saw (samples of an App,
requests from the audit log, Events) and what the model knows (each app's `Ledger`).

Each returns the problems found, one line each, empty when the invariant holds:

    went_back          a member's content changed to that of a revision older than the
                       recorded one (a heal or a stale replica went back in time)
    record_went_back   the recorded revision moved to an older, unknown or broken revision
                       (only a Git change or an explicit command moves it, and only forward)
    ready_lies         Ready=True for a revision older than one already attempted, or with
                       lastAppliedRevision != lastAttemptedRevision
    trespasses         a request allowed in one team's namespace with another team's rights,
                       or with the daemon's own rights on what is not the daemon's
    idle_writes        a write of the daemon (its own or a team's rights) while nothing happened
    failure_events     more SyncFailed Events for a revision than distinct failures of it
    interrupted_unreported
                       a sync killed with its intent recorded is not in the converged App's
                       history as Interrupted, or not its status.lastInterrupted
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from syncer.apply.intent import SyncIntent
from tests.e2e.daemonmodel.lab import DAEMON_USER, tenant_user
from tests.e2e.daemonmodel.observe import Audited, Sample
from tests.e2e.daemonmodel.repos import Key, Ledger

DAEMON_OWN = frozenset({"apps", "apps/status", "events"})
"""What the daemon may read and write with its own rights in a team's namespace: the team's
Apps, their status, and Events about them. Everything else it does for an App it does with
the App's service account."""


def _revisions_with(ledger: Ledger, key: Key, content: dict[str, Any] | None, *, at: float) -> list[int]:
    """The places in the ledger of the revisions introduced by `at` that render `key` as
    `content` (absent: None)."""
    found = []
    for index, revision in enumerate(ledger.revisions):
        if revision.at > at:
            continue
        if revision.content is not None and revision.content.desired().get(key) == content:
            found.append(index)
    return found


def went_back(history: Sequence[Sample], ledger: Ledger, *, app: str,
              deleted_by_hand: Sequence[tuple[Key, float]] = ()) -> list[str]:
    """Every change of a member to the content (or absence) only older revisions than the
    recorded one render. Content no revision renders is a hand edit, and a member gone
    between two samples around its deletion by the test is the test's: not judged here."""
    problems, recorded = [], -1
    for before, after in zip(history, history[1:]):
        # The newest revision recorded so far: a record that went back is its own violation,
        # and the members it took along are judged against what was recorded before it.
        recorded = max(recorded, ledger.index(after.recorded, at=after.at))
        if recorded < 0:
            continue
        for key in sorted(set(before.members) | set(after.members)):
            content = after.members.get(key)
            if content == before.members.get(key):
                continue
            if content is None and any(k == key and before.at - 1.0 <= t <= after.at for k, t in deleted_by_hand):
                continue
            places = _revisions_with(ledger, key, content, at=after.at)
            if places and max(places) < recorded:
                shown = "absent" if content is None else f"{content}"
                problems.append(
                    f"{app}: {key[0]}/{key[1]} became {shown}, as only revision(s) "
                    f"{', '.join(ledger.revisions[p].sha[:12] for p in places)} render it, after the parent recorded "
                    f"the newer {ledger.revisions[recorded].sha[:12]}")
    return problems


def record_went_back(history: Sequence[Sample], ledger: Ledger, *, app: str) -> list[str]:
    problems = []
    for before, after in zip(history, history[1:]):
        if after.recorded == before.recorded or after.recorded is None:
            continue
        revision = ledger.get(after.recorded)
        if revision is None:
            problems.append(f"{app}: the parent records {after.recorded[:12]}, which is no revision of the app's")
        elif revision.content is None:
            problems.append(f"{app}: the parent records the broken revision {after.recorded[:12]} as applied")
        elif before.recorded is not None and (ledger.index(after.recorded, at=after.at)
                                              < ledger.index(before.recorded, at=before.at)):
            problems.append(f"{app}: the recorded revision went back from {before.recorded[:12]} to "
                            f"{after.recorded[:12]}")
    return problems


def ready_lies(history: Sequence[Sample], ledger: Ledger, *, app: str) -> list[str]:
    problems, newest_attempt = [], -1
    for sample in history:
        status = sample.status or {}
        applied, attempted = status.get("lastAppliedRevision"), status.get("lastAttemptedRevision")
        if sample.ready() == "True":
            if applied != attempted:
                problems.append(f"{app}: Ready=True with lastAppliedRevision {str(applied)[:12]} but "
                                f"lastAttemptedRevision {str(attempted)[:12]}")
            elif ledger.index(applied, at=sample.at) < newest_attempt:
                problems.append(f"{app}: Ready=True for {str(applied)[:12]} after the newer revision "
                                f"{ledger.revisions[newest_attempt].sha[:12]} was attempted")
        newest_attempt = max(newest_attempt, ledger.index(attempted, at=sample.at))
    return sorted(set(problems), key=problems.index)


def tenant_of(user: str, tenants: Iterable[str]) -> str | None:
    return next((namespace for namespace in tenants if user == tenant_user(namespace)), None)


def trespasses(requests: Iterable[Audited], *, tenants: Sequence[str]) -> list[str]:
    problems = []
    for request in requests:
        if not request.allowed or request.namespace not in tenants:
            continue
        owner = tenant_of(request.user, tenants)
        if owner is not None and owner != request.namespace:
            problems.append(f"another team's rights in {request.namespace}: {request}")
        elif request.user == DAEMON_USER and request.resource not in DAEMON_OWN:
            problems.append(f"the daemon's own rights on a team's objects: {request}")
    return sorted(set(problems), key=problems.index)


def idle_writes(requests: Iterable[Audited], *, tenants: Sequence[str]) -> list[str]:
    return [str(r) for r in requests
            if r.allowed and r.writes and r.namespace in tenants and DAEMON_USER in (r.via, r.user)]


def failure_events(events: Iterable[dict[str, Any]], ledger: Ledger, *, allowed: Counter[str],
                   about: str) -> list[str]:
    """SyncFailed Events about one object, per revision (named in the message), against the
    distinct failures the model allows for that revision."""
    counted: Counter[str] = Counter()
    for event in events:
        if event.get("reason") != "SyncFailed":
            continue
        revision = ledger.short(str(event.get("message", "")))
        counted[revision.sha if revision else "?"] += int(event.get("count") or 1)
    return [f"{about}: {n} SyncFailed Event(s) for revision {sha[:12]}, {allowed[sha]} distinct failure(s)"
            for sha, n in sorted(counted.items()) if n > allowed[sha]]


def interrupted_unreported(status: dict[str, Any], intent: SyncIntent, *, app: str) -> list[str]:
    """The App's status, once converged, against the intent a killed sync left on its parent."""
    killed = (intent.revision, intent.started)
    reported = [(e.get("revision"), e.get("started")) for e in status.get("history") or []
                if e.get("result") == "Interrupted"]
    last = status.get("lastInterrupted") or {}
    problems = []
    if killed not in reported:
        problems.append(f"{app}: the sync of {intent.revision[:12]} started at {intent.started} was killed with its "
                        f"intent recorded, and its history has no Interrupted entry for it (it has {reported})")
    if (last.get("revision"), last.get("started")) != killed:
        problems.append(f"{app}: status.lastInterrupted is {last or None}, not the killed sync of "
                        f"{intent.revision[:12]} started at {intent.started}")
    return problems
