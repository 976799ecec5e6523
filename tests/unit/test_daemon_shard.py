"""Sharding's pure parts: rendezvous hashing, the member table's clock, and when a replica
may start an app it gained (every member acknowledged the view)."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

import pytest

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
from syncer.daemon.rendezvous import assign, owner, score
from syncer.daemon.shard import lease_name

APPS = [f"team-{t}/app-{n}" for t in range(10) for n in range(100)]
MEMBERS = ["syncer-7d9f-a", "syncer-7d9f-b", "syncer-7d9f-c", "syncer-7d9f-d", "syncer-7d9f-e"]


# -- rendezvous hashing ---------------------------------------------------------------------

def test_the_owner_does_not_depend_on_the_order_of_members() -> None:
    for app in APPS[:50]:
        assert owner(app, MEMBERS) == owner(app, list(reversed(MEMBERS))) == owner(app, sorted(MEMBERS))


def test_scores_are_stable_across_processes() -> None:
    """A fixed value: `hash()` would change with PYTHONHASHSEED, and replicas would disagree."""
    assert score("a", "shop") == score("a", "shop")
    assert score("a", "shop") != score("b", "shop")
    assert owner("shop", ["a", "b", "c"]) == owner("shop", ["c", "b", "a"])
    assert format(score("member-1", "team-a/shop"), "016x") == "be692d51d7e6bb13"


def test_no_members_own_nothing_and_one_member_owns_everything() -> None:
    assert owner("shop", []) is None
    assert set(assign(APPS, ["only"]).values()) == {"only"}


@pytest.mark.parametrize("removed", MEMBERS)
def test_removing_a_member_moves_only_its_apps(removed: str) -> None:
    before = assign(APPS, MEMBERS)
    after = assign(APPS, [m for m in MEMBERS if m != removed])
    moved = {app for app in APPS if before[app] != after[app]}
    assert moved == {app for app in APPS if before[app] == removed}
    assert moved  # the member owned something


def test_adding_a_member_moves_only_apps_to_it_about_one_in_n() -> None:
    before = assign(APPS, MEMBERS)
    after = assign(APPS, [*MEMBERS, "syncer-7d9f-f"])
    moved = [app for app in APPS if before[app] != after[app]]
    assert {after[app] for app in moved} == {"syncer-7d9f-f"}
    assert len(APPS) / 6 * 0.8 < len(moved) < len(APPS) / 6 * 1.2


@pytest.mark.parametrize("count", [2, 3, 5, 10])
def test_the_spread_is_even(count: int) -> None:
    members = [f"syncer-{n}" for n in range(count)]
    shares = Counter(assign(APPS, members).values())
    assert set(shares) == set(members)
    expected = len(APPS) / count
    # As even as independent random choices can be: each share is binomial, with standard
    # deviation sqrt(n p (1-p)) (under 16 apps here). No share strays 4 of them, and the
    # spread as a whole is within 1.5 of them (a ring without virtual nodes is far worse).
    sigma = (len(APPS) * (1 / count) * (1 - 1 / count)) ** 0.5
    assert max(abs(share - expected) for share in shares.values()) < 4 * sigma
    assert statistics.pstdev(shares.values()) < 1.5 * sigma


def test_lease_names_are_valid_and_distinct() -> None:
    assert lease_name("syncer-7d9f-abc") == "syncer-member-syncer-7d9f-abc"
    odd = [lease_name("Host_1"), lease_name("host-1"), lease_name("HOST_1"), lease_name("x" * 300)]
    assert len(set(odd)) == 4
    for name in odd:
        assert len(name) <= 253 and name == name.lower() and name[-1].isalnum() and "_" not in name


# -- the member table -----------------------------------------------------------------------

def lease(name: str, identity: str | None, version: str, *, view: str | None = None, duration: int = 15) -> Any:
    annotations = {URL_ANNOTATION: f"http://{name}:8080"}
    if view:
        annotations[VIEW_ANNOTATION] = view
    return {"metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": version,
                         "labels": {MEMBER_LABEL: "true"}, "annotations": annotations},
            "spec": {"holderIdentity": identity, "leaseDurationSeconds": duration}}


def table() -> MemberTable:
    return MemberTable(own_lease="me", lease_duration=15.0, margin=5.0)


def identities(members: list[Any]) -> set[str]:
    return {m.identity for m in members}


def test_a_member_expires_by_the_observers_clock_since_its_record_last_changed() -> None:
    members = table()
    members.replace([lease("a", "a", "1"), lease("b", "b", "1"), lease("me", "me", "1")], now=100.0)
    assert identities(members.others(now=100.0)) == {"a", "b"}  # never ourselves
    for now in (104.0, 108.0, 112.0):
        members.observe(lease("a", "a", str(int(now))), now=now)  # a renews, b does not
        members.observe(lease("me", "me", str(int(now))), now=now)
    assert identities(members.others(now=114.9)) == {"a", "b"}
    assert identities(members.others(now=115.0)) == {"a"}
    assert identities(members.expired(now=115.0)) == {"b"}
    assert members.next_expiry(now=115.0) == 112.0 + 15.0


def test_seeing_the_same_record_again_does_not_restart_its_clock() -> None:
    """A re-list after a watch broke returns unchanged records: that proves no renewal."""
    members = table()
    members.replace([lease("b", "b", "7")], now=100.0)
    members.replace([lease("b", "b", "7")], now=114.0)
    assert identities(members.expired(now=115.0)) == {"b"}
    members.replace([lease("b", "b", "8")], now=116.0)
    assert identities(members.others(now=116.0)) == {"b"}


def test_the_lease_duration_the_member_wrote_counts() -> None:
    members = table()
    members.replace([lease("b", "b", "1", duration=30)], now=100.0)
    members.heard(now=125.0)
    assert identities(members.others(now=125.0)) == {"b"}


def test_nobody_expires_while_the_observer_hears_nothing() -> None:
    """A stalled watch must not make every other member look dead: time counts only up to
    the last news plus the margin."""
    members = table()
    members.replace([lease("b", "b", "1")], now=100.0)
    assert identities(members.others(now=200.0)) == {"b"}
    members.heard(now=200.0)  # news again (a bookmark, our own renewal): now it has expired
    assert identities(members.expired(now=200.0)) == {"b"}


def test_released_deleted_and_unlisted_leases_are_no_members() -> None:
    members = table()
    members.replace([lease("a", "a", "1"), lease("b", "b", "1"), lease("c", "c", "1")], now=100.0)
    members.observe(lease("a", None, "2"), now=101.0)  # released: holder cleared
    members.remove("b", now=101.0)
    assert identities(members.others(now=101.0)) == {"c"}
    members.replace([], now=102.0)
    assert members.others(now=102.0) == [] and members.listed and not members.own_observed
    assert members.url_of("c") is None


# -- when a replica owns an app -------------------------------------------------------------

def test_a_lone_replica_owns_every_app_once_it_sees_itself() -> None:
    alone = next_assignment(Assignment(identity="a"), members=["a"], acks={})
    assert alone.settled == ("a",) and all(alone.owns(app) for app in APPS[:50])
    assert not Assignment(identity="a").owns("shop")  # before it saw any view


def test_a_joining_replica_waits_for_the_others_to_acknowledge_the_view() -> None:
    a = next_assignment(Assignment(identity="a"), members=["a"], acks={})
    b = next_assignment(Assignment(identity="b"), members=["a", "b"], acks={"a": view_hash(["a"])})
    assert not any(b.owns(app) for app in APPS)  # a still acts on the view without b

    a = next_assignment(a, members=["a", "b"], acks={"b": view_hash(["a", "b"])})
    assert a.settled == ("a", "b")
    b = next_assignment(b, members=["a", "b"], acks={"a": view_hash(["a", "b"])})
    assert b.settled == ("a", "b")
    owners = assign(APPS, ["a", "b"])
    for app in APPS:
        assert a.owns(app) == (owners[app] == "a") and b.owns(app) == (owners[app] == "b")


def test_while_the_view_is_not_agreed_a_replica_keeps_only_what_it_owns_under_both() -> None:
    a = next_assignment(Assignment(identity="a"), members=["a", "b", "c"],
                        acks={"b": view_hash("abc"), "c": view_hash("abc")})
    a = next_assignment(a, members=["a", "b"], acks={"b": view_hash("abc")})  # c left; b has not agreed yet
    before, after = assign(APPS, "abc"), assign(APPS, "ab")
    for app in APPS:
        assert a.owns(app) == (before[app] == "a" and after[app] == "a")
    assert any(before[app] == "c" and after[app] == "a" for app in APPS)  # gains wait

    a = next_assignment(a, members=["a", "b"], acks={"b": view_hash("ab")})
    assert all(a.owns(app) == (after[app] == "a") for app in APPS)


def test_no_two_replicas_own_an_app_in_any_order_of_observations() -> None:
    """Three replicas join one after the other and one leaves; at every step, whatever each
    has seen so far, no app has two owners."""
    views = {"a": ["a"], "b": ["a", "b"], "c": ["a", "b", "c"]}
    assignments = {name: next_assignment(Assignment(identity=name), members=view, acks={})
                   for name, view in views.items()}
    acks: dict[str, str | None] = {"a": view_hash(["a"]), "b": None, "c": None}
    steps = [("a", ["a", "b"]), ("b", ["a", "b"]), ("b", ["a", "b", "c"]), ("c", ["a", "b", "c"]),
             ("a", ["a", "b", "c"]), ("b", ["a", "b", "c"]), ("c", ["a", "b", "c"]), ("a", ["a", "b", "c"]),
             ("a", ["a", "c"]), ("c", ["a", "c"]), ("a", ["a", "c"]), ("c", ["a", "c"])]
    for name, view in steps:
        assignments[name] = next_assignment(assignments[name], members=view,
                                            acks={m: acks[m] for m in view if m != name})
        acks[name] = view_hash(view)  # nothing of another runs: it acknowledges at once
        live = [n for n in assignments if n in view]
        for app in APPS[:200]:
            assert sum(assignments[n].owns(app) for n in live) <= 1, (name, view, app)
    final = assign(APPS, ["a", "c"])
    assert all(assignments["a"].owns(app) == (final[app] == "a") for app in APPS)
    assert all(assignments["c"].owns(app) == (final[app] == "c") for app in APPS)


def test_a_replica_out_of_its_own_view_owns_nothing_until_all_agree_again() -> None:
    a = next_assignment(Assignment(identity="a"), members=["a", "b"], acks={"b": view_hash("ab")})
    out = next_assignment(a, members=["b"], acks={"b": view_hash("ab")})
    assert out.settled is None and not out.active
    back = next_assignment(out, members=["a", "b"], acks={"b": view_hash("b")})
    assert not any(back.owns(app) for app in APPS)


def test_a_view_is_acknowledged_only_when_no_lost_app_is_still_running() -> None:
    a = next_assignment(Assignment(identity="a"), members=["a"], acks={})
    a = next_assignment(a, members=["a", "b"], acks={})
    owners = assign(APPS, ["a", "b"])
    kept = next(app for app in APPS if owners[app] == "a")
    lost = next(app for app in APPS if owners[app] == "b")
    assert drained(a, [kept])
    assert not drained(a, [kept, lost])
    assert not drained(Assignment(identity="a", members=("b",)), [])


def test_shard_and_leader_election_exclude_each_other() -> None:
    """Refused before anything connects (there is no cluster here)."""
    from click.testing import CliRunner

    from syncer.cli import cli

    result = CliRunner().invoke(cli, ["run", "--shard", "--leader-elect", "--kubeconfig", "/nonexistent"])
    assert result.exit_code == 2
    assert "--leader-elect and --shard exclude each other" in result.output
