"""The sync history's pure rules: what is added, what is merged, what is kept."""

from __future__ import annotations

import pytest

from syncer.apply.history import (
    MAX_ENTRIES,
    MAX_ERROR,
    MAX_OBJECTS,
    HistoryEntry,
    HistoryResult,
    Trigger,
    TriggerKind,
    add_entry,
    decode,
    encode,
    entry,
)
from syncer.apply.intent import INTENT_ANNOTATION, Interrupted, SyncIntent, read_intent

HEAL = Trigger(TriggerKind.HEAL)


def sync(revision: str = "a" * 40, *, trigger: Trigger = Trigger(TriggerKind.INTERVAL),
         result: HistoryResult = "Succeeded", summary: dict[str, int] | None = None, at: str = "10:00",
         seconds: float = 1.0) -> HistoryEntry:
    return entry(revision=revision, started=f"2026-01-01T{at}:00Z", finished=f"2026-01-01T{at}:01Z", seconds=seconds,
                 trigger=trigger, result=result, summary=summary if summary is not None else {"configured": 1})


@pytest.mark.parametrize(("history", "new", "want"), [
    pytest.param((), sync(), 1, id="first-sync"),
    pytest.param((sync(),), sync("b" * 40), 2, id="another-revision"),
    pytest.param((sync(),), sync(trigger=HEAL, summary={"unchanged": 3}), 1, id="heal-writing-nothing-left-out"),
    pytest.param((sync(),), sync(trigger=HEAL, summary={"configured": 1}), 2, id="heal-that-wrote"),
    pytest.param((sync(),), sync(trigger=HEAL, result="Failed", summary={}), 2, id="failed-heal-kept"),
    pytest.param((sync(trigger=HEAL),), sync(trigger=HEAL, summary={"configured": 2}), 1, id="heals-merge"),
    pytest.param((sync(trigger=HEAL),), sync("b" * 40, trigger=HEAL), 2, id="heal-of-another-revision"),
    pytest.param((sync(trigger=HEAL),), sync(trigger=HEAL, result="Failed"), 2, id="heal-with-another-result"),
    pytest.param((sync(trigger=HEAL), sync()), sync(), 3, id="same-revision-not-a-heal"),
])
def test_what_a_sync_adds(history: tuple[HistoryEntry, ...], new: HistoryEntry, want: int) -> None:
    assert len(add_entry(history, new)) == want


def test_consecutive_heals_share_one_entry_with_a_count_and_their_objects() -> None:
    first = sync(trigger=Trigger(TriggerKind.HEAL, objects=("ConfigMap/a/x",)), at="10:00")
    second = sync(trigger=Trigger(TriggerKind.HEAL, objects=("ConfigMap/a/y", "ConfigMap/a/x")), at="10:05",
                  summary={"configured": 2, "unchanged": 5})
    merged, = add_entry(add_entry((), first), second)
    assert merged.count == 2
    assert merged.started == first.started and merged.finished == second.finished
    assert merged.summary == {"configured": 3, "unchanged": 5}
    assert set(merged.trigger.objects) == {"ConfigMap/a/x", "ConfigMap/a/y"}
    assert merged.seconds == pytest.approx(2.0)


def test_the_history_keeps_the_newest_entries_first() -> None:
    history: tuple[HistoryEntry, ...] = ()
    for n in range(MAX_ENTRIES + 5):
        history = add_entry(history, sync(f"{n:040d}"))
    assert len(history) == MAX_ENTRIES
    assert history[0].revision == f"{MAX_ENTRIES + 4:040d}"
    assert history[-1].revision == f"{5:040d}"


def test_an_entry_bounds_its_error_and_objects() -> None:
    made = entry(revision="r", started="", finished="", seconds=0, result="Failed", error="x" * 5000,
                 trigger=Trigger(TriggerKind.HEAL, objects=tuple(f"ConfigMap/a/{n}" for n in range(50))))
    assert len(made.error) == MAX_ERROR
    assert len(made.trigger.objects) == MAX_OBJECTS


def test_the_history_round_trips_and_ignores_what_is_not_an_entry() -> None:
    history = (sync(trigger=Trigger(TriggerKind.CLI, user="alice")), sync(result="Failed", summary={}))
    assert decode(encode(history)) == history
    assert decode('[{"revision": "r"}, 3, {"result": "Succeeded", "revision": "s"}]')[0].revision == "s"
    assert decode("not json") == ()
    assert decode(None) == ()


def test_an_intent_round_trips_and_an_interrupted_sync_becomes_an_entry() -> None:
    intent = SyncIntent(revision="c" * 40, plan_digest="sha256:1", started="2026-01-01T10:00:00Z",
                        trigger=Trigger(TriggerKind.WEBHOOK))
    assert read_intent({INTENT_ANNOTATION: intent.encode()}) == intent
    assert read_intent({}) is None
    found = Interrupted(intent=intent, already_applied=3, planned=5, found="2026-01-01T10:01:00Z")
    made = found.history_entry()
    assert (made.result, made.revision, made.plan_digest) == ("Interrupted", "c" * 40, "sha256:1")
    assert (made.already_applied, made.planned) == (3, 5)
    assert "3 of the 5 planned" in found.message(app="shop")
    assert HistoryEntry.from_dict(made.to_dict()) == made
