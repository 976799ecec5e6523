"""Which render a tick applies (issue 20, report 4): heals restore the revision the cluster
records, never an older render the daemon happens to hold; only a Git change the daemon sees
moves the app on."""

from __future__ import annotations

import pytest

from syncer.apply.status import APPLIED_REVISION_ANNOTATION, RESULT_ANNOTATION, REVISION_ANNOTATION
from syncer.daemon.recorded import Move, applied_revision, moved_by_others, next_move

V1, V2, V3 = "1" * 40, "2" * 40, "3" * 40


@pytest.mark.parametrize(("held", "recorded", "target", "asked_git", "gone", "move"), [
    # The daemon saw a Git change: it moves the app there, whatever is recorded.
    pytest.param(V1, V1, V2, True, None, Move.SYNC_HEAD, id="git moved: sync the head"),
    pytest.param(None, V1, V2, True, None, Move.SYNC_HEAD, id="first look at git: sync the head"),
    pytest.param(V2, V1, V2, False, None, Move.SYNC_HEAD, id="a change while moving, head held: sync it"),
    # ... but a change while the head does not render heals with what the cluster records.
    pytest.param(V1, V1, V2, False, None, Move.HEAL_HELD, id="head failed to render: heal the recorded one"),
    # Heals: the recorded revision, never the held one when it differs.
    pytest.param(V1, V1, None, False, None, Move.HEAL_HELD, id="held is recorded: heal with it"),
    pytest.param(V1, V1, None, True, None, Move.HEAL_HELD, id="interval tick, nothing moved"),
    pytest.param(V1, V2, None, False, None, Move.RENDER_RECORDED, id="4b: a newer commit synced by hand"),
    pytest.param(V1, V2, None, True, None, Move.RENDER_RECORDED, id="4a: another replica applied a newer one"),
    pytest.param(V2, V1, None, False, None, Move.RENDER_RECORDED, id="a rollback by hand"),
    pytest.param(None, V2, None, False, None, Move.RENDER_RECORDED, id="nothing held: render the recorded one"),
    pytest.param(V1, V3, None, False, V3, Move.NO_HEAL, id="recorded revision gone from git: no heal"),
    pytest.param(V1, V1, None, False, V3, Move.HEAL_HELD, id="a gone revision no longer recorded"),
    # Nothing recorded (no parent yet, or deleted by hand): the held render, else the head.
    pytest.param(V1, "", None, False, None, Move.HEAL_HELD, id="nothing recorded: heal with the held render"),
    pytest.param(None, "", None, True, None, Move.SYNC_HEAD, id="nothing recorded, nothing held"),
])
def test_the_move_of_a_tick(held: str | None, recorded: str, target: str | None, asked_git: bool, gone: str | None,
                            move: Move) -> None:
    assert next_move(held=held, recorded=recorded, target=target, asked_git=asked_git, gone=gone) is move


def test_a_heal_never_applies_a_render_older_than_the_record() -> None:
    """Whatever the daemon holds, a heal (no Git change to move to) applies the recorded revision."""
    for held in (None, V1, V2, V3):
        for recorded in (V1, V2, V3):
            move = next_move(held=held, recorded=recorded, target=None, asked_git=False, gone=None)
            assert move is (Move.HEAL_HELD if held == recorded else Move.RENDER_RECORDED), (held, recorded)


@pytest.mark.parametrize(("recorded", "seen", "ours", "moved"), [
    pytest.param(V1, None, None, False, id="first look"),
    pytest.param(V1, V1, V1, False, id="unchanged"),
    pytest.param(V2, V1, V2, False, id="our own record arrived"),
    pytest.param(V1, V1, V2, False, id="the cache has not caught up with our record yet"),
    pytest.param(V2, V1, V1, True, id="someone else recorded a newer revision"),
    pytest.param(V3, V2, V2, True, id="someone else rolled back"),
    pytest.param("", V1, V1, True, id="the record was deleted"),
])
def test_a_record_moved_by_others(recorded: str, seen: str | None, ours: str | None, moved: bool) -> None:
    assert moved_by_others(recorded, seen=seen, ours=ours) is moved


def test_the_applied_revision_of_a_parent() -> None:
    def parent(**annotations: str) -> dict[str, object]:
        return {"metadata": {"name": "syncer-shop", "namespace": "shop", "annotations": annotations}}

    assert applied_revision(None) == ""
    assert applied_revision(parent()) == ""
    assert applied_revision(parent(**{REVISION_ANNOTATION: V2, RESULT_ANNOTATION: "Failed",
                                      APPLIED_REVISION_ANNOTATION: V1})) == V1
    # A parent recorded before applied-revision existed: its last success.
    assert applied_revision(parent(**{REVISION_ANNOTATION: V2, RESULT_ANNOTATION: "Succeeded"})) == V2
