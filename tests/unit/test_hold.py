"""The rollback hold's pure parts: which revision a rollback picks from the history, what a
hold in the spec may say, when it stands, and how the App's status shows it."""

from __future__ import annotations

from typing import Any

import pytest

from syncer.daemon.appspec import InvalidApp, TenantPolicy, app_spec
from syncer.daemon.appstatus import AppHealth, Observation, app_status
from syncer.daemon.notify import transitions
from syncer.hold import Hold, hold_status, holds, parse_hold, pick_revision
from tests.unit.test_daemon_apps import _outcome

A, B, C, D = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)


@pytest.mark.parametrize(("revisions", "to", "steps", "picked"), [
    ([D, C, C, B, A], None, 1, C),       # one back from the current, repeats counted once
    ([D, C, C, B, A], None, 2, B),
    ([D, C, B, A], "aaaaaaa", None, A),  # an abbreviated SHA
    ([D, C, B, A], B, None, B),
    ([C, D, B], None, 1, C),             # the current revision is skipped wherever it is
])
def test_a_rollback_picks_from_the_revisions_the_history_applied(
    revisions: list[str], to: str | None, steps: int | None, picked: str,
) -> None:
    assert pick_revision(revisions, current=D, to=to, steps=steps).revision == picked


@pytest.mark.parametrize(("to", "steps", "error"), [
    ("eeeeeee", None, "not a revision the app's history applied (it has dddddddddddd, cccccccccccc)"),
    ("ddddddd", None, "already runs dddddddddddd"),
    ("ccc", None, "at least 7 hex digits"),
    ("main", None, "at least 7 hex digits"),
    (None, 2, "--steps 2: the app's history has 1 earlier revision(s)"),
])
def test_a_rollback_that_cannot_be_picked_says_why(to: str | None, steps: int | None, error: str) -> None:
    with pytest.raises(ValueError, match=None) as raised:
        pick_revision([D, C], current=D, to=to, steps=steps)
    assert error in str(raised.value)


def test_an_ambiguous_abbreviation_is_refused() -> None:
    first, second = "abcdef1" + "0" * 33, "abcdef1" + "1" * 33
    with pytest.raises(ValueError, match="ambiguous"):
        pick_revision([D, first, second], current=D, to="abcdef1")


def test_a_hold_stands_while_the_head_renders_as_the_revision_rolled_back_from() -> None:
    hold = Hold(revision=A, from_revision=B)
    assert holds(hold, head=B, head_render=None, from_render=None)
    assert holds(hold, head=C, head_render="sha256:1", from_render="sha256:1")
    assert not holds(hold, head=C, head_render="sha256:2", from_render="sha256:1")
    assert not holds(hold, head=C, head_render=None, from_render="sha256:1")  # a broken head ends it


def app(spec_hold: Any) -> dict[str, Any]:
    return {"apiVersion": "syncer.dev/v1alpha1", "kind": "App", "metadata": {"name": "shop", "namespace": "team-a"},
            "spec": {"repo": "https://git.example/shop.git", "hold": spec_hold}}


def test_spec_hold_is_read_as_syncer_rollback_writes_it() -> None:
    spec = app_spec(app({"revision": A, "from": B, "requestedAt": "2026-12-02T18:00:00Z", "requestedBy": "ann"}),
                    policy=TenantPolicy())
    assert spec.config.hold == Hold(revision=A, from_revision=B, requested_at="2026-12-02T18:00:00Z",
                                    requested_by="ann")
    assert parse_hold(spec.config.hold.to_spec()) == spec.config.hold


@pytest.mark.parametrize(("value", "problem"), [
    ({"revision": "main", "from": B}, "spec.hold: revision: 'main' must be a full commit SHA"),
    ({"revision": A}, "spec.hold: from: None must be a full commit SHA"),
    ({"revision": A, "from": A}, "spec.hold: revision and from are both aaaaaaaaaaaa"),
    ({"revision": A, "from": B, "until": "x"}, "spec.hold: unknown field(s) until"),
    ("aaaa", "spec.hold: must be {revision, from, requestedAt, requestedBy}"),
])
def test_a_bad_spec_hold_makes_the_app_invalid(value: Any, problem: str) -> None:
    with pytest.raises(InvalidApp) as raised:
        app_spec(app(value), policy=TenantPolicy())
    assert problem in str(raised.value)


HEALTHY = AppHealth("Healthy")


def test_the_status_shows_the_hold_and_when_it_ended() -> None:
    before = app_status({}, Observation(1, outcome=_outcome(B, "created"), health=HEALTHY), now="t1")
    holding = hold_status(Hold(revision=A, from_revision=B, requested_by="ann"), holding=True, head=B)
    back = app_status(before, Observation(2, outcome=_outcome(A, "configured"), health=HEALTHY, hold=holding),
                      now="t2")
    assert back["hold"] == {"revision": A, "from": B, "requestedBy": "ann", "holding": True}
    assert back["lastAppliedRevision"] == A
    conditions = {c["type"]: c for c in back["conditions"]}
    assert (conditions["Ready"]["status"], conditions["RolledBack"]["status"]) == ("True", "True")
    assert conditions["RolledBack"]["message"].startswith(f"rolled back to {A[:12]} from {B[:12]} by ann; held")
    assert app_status(back, Observation(2, outcome=_outcome(A, "configured"), health=HEALTHY, hold=holding),
                      now="t3") == back  # an idle tick writes nothing

    ended = hold_status(Hold(revision=A, from_revision=B), holding=False, head=C)
    moved = app_status(back, Observation(2, outcome=_outcome(C, "configured"), health=HEALTHY, hold=ended), now="t4")
    rolled = next(c for c in moved["conditions"] if c["type"] == "RolledBack")
    assert (rolled["status"], rolled["reason"], rolled["lastTransitionTime"]) == ("False", "Released", "t4")
    assert f"commit {C[:12]} changed the App's render" in rolled["message"]

    released = app_status(moved, Observation(3, outcome=_outcome(C, "configured"), health=HEALTHY), now="t5")
    assert "hold" not in released and all(c["type"] != "RolledBack" for c in released["conditions"])
    assert transitions(before, back) == ["rolled-back"]
    assert transitions(back, back) == []
    assert transitions(back, moved) == ["hold-released"]
    assert transitions(moved, released) == []


def test_a_rollback_goes_back_from_the_standing_holds_from_or_from_where_the_app_is() -> None:
    from syncer.daemon.rollback import rollback_hold

    history = [{"revision": r, "result": "Succeeded"} for r in (C, A, B, A)]
    held = {"metadata": {"namespace": "team-a", "name": "shop"}, "spec": {"hold": {"revision": A, "from": C}},
            "status": {"lastAppliedRevision": A, "lastAttemptedRevision": A, "history": history,
                       "hold": {"revision": A, "from": C, "holding": True}}}
    assert rollback_hold(held, to=B, steps=None, requested_by="ann").from_revision == C
    ended = {**held, "status": {**held["status"], "lastAppliedRevision": D, "lastAttemptedRevision": D,
                                "hold": {"revision": A, "from": C, "holding": False, "releasedBy": D}}}
    again = rollback_hold(ended, to=None, steps=2, requested_by="ann")
    assert (again.revision, again.from_revision, again.requested_by) == (A, D, "ann")
