"""A replica paused past its renew deadline lost its apps, even when nobody took its Lease
meanwhile and its next renewal succeeds (issue 20, report 4a): the loss is observed, and what
it held for its apps dropped, before that renewal makes it a member (or the leader) again.
Against the in-memory Lease store of the lease tests, with real time and a short lease."""

from __future__ import annotations

import time

from syncer.daemon.leader import ElectionOptions, LeaderElector
from syncer.daemon.membership import Assignment
from syncer.daemon.shard import ShardMember
from tests.unit.test_lease import Client, Store

LEASE = 0.6
"""Seconds: its renew deadline is 0.4 s, the pause below longer."""
PAUSE = 0.55


def test_a_member_that_renews_after_a_pause_first_loses_its_apps() -> None:
    store = Store()
    changes: list[tuple[Assignment, Assignment]] = []
    member = ShardMember(Client(store), identity="a", options=ElectionOptions.for_lease(LEASE, namespace="ns"),
                         url=None, running=lambda: [], on_change=lambda before, after: changes.append((before, after)))
    member._write(None)
    member._listed([lease for lease in store.leases.values()])
    assert member.owns("shop")

    time.sleep(PAUSE)  # SIGSTOP: no renewal, nobody takes the Lease
    assert not member.owns("shop")
    member._write(None)  # resumed: the renewal succeeds
    lost = [(before, after) for before, after in changes if before.owns("shop") and not after.owns("shop")]
    assert lost, "the renewal after the pause made it a member again without the loss being seen"


def test_a_leader_that_renews_after_a_pause_first_steps_down() -> None:
    store = Store()
    events: list[str] = []
    elector = LeaderElector(Client(store), identity="a", options=ElectionOptions.for_lease(LEASE, namespace="ns"),
                            on_started_leading=lambda: events.append("started"),
                            on_stopped_leading=lambda: events.append("stopped"))
    elector._campaign_step()
    assert elector.is_leader and events == ["started"]

    time.sleep(PAUSE)
    elector._lead_step()  # resumed
    assert events[:2] == ["started", "stopped"]
    elector._campaign_step()
    assert elector.is_leader and events == ["started", "stopped", "started"]
