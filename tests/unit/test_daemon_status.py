"""The app status the daemon records: derived from a ChangeSet, written only when it is news,
and read back from annotations unchanged."""

from __future__ import annotations

from syncer.apply.changeset import Change, ChangeSet
from syncer.apply.status import (
    ERROR_ANNOTATION,
    MAX_ERROR_LENGTH,
    AppStatus,
    needs_recording,
    read_status,
)
from syncer.model import Action, ObjectRef

WEB = ObjectRef(group="apps", kind="Deployment", namespace="shop", name="web")
CONFIG = ObjectRef(group="", kind="ConfigMap", namespace="shop", name="config")


def changes(*actions: str, error: str | None = None) -> ChangeSet:
    refs = [WEB, CONFIG]
    return ChangeSet(app="shop", revision="abc123", error=error, changes=[
        Change(ref=refs[i % 2], api_version="v1", action=Action(action), message="boom" if action == "failed" else "")
        for i, action in enumerate(actions)
    ])


def test_status_of_a_successful_sync() -> None:
    status = AppStatus.of(changes("created", "unchanged"))
    assert (status.revision, status.result, status.error) == ("abc123", "Succeeded", "")
    assert status.summary == {"created": 1, "unchanged": 1}
    assert status.summary_text() == "1 created, 1 unchanged"


def test_status_of_a_failed_sync_names_the_objects() -> None:
    status = AppStatus.of(changes("configured", "failed"))
    assert status.result == "Failed"
    assert status.error == "ConfigMap/shop/config: boom"
    assert AppStatus.of(changes("configured", error="stopped early")).error == "stopped early"


def test_only_news_is_recorded() -> None:
    recorded = AppStatus(revision="abc123", result="Succeeded")
    idle = AppStatus.of(changes("unchanged", "unchanged"))
    assert not changes("unchanged", "skipped", "kept").changed_something
    assert changes("unchanged", "deleted").changed_something
    assert not needs_recording(idle, recorded, changed=False)
    assert needs_recording(idle, None, changed=False)
    assert needs_recording(idle, recorded, changed=True)  # drift was reverted
    assert needs_recording(AppStatus(revision="def456", result="Succeeded"), recorded, changed=False)
    assert needs_recording(AppStatus.failed(revision="abc123", error="x"), recorded, changed=False)
    failed = AppStatus.failed(revision="abc123", error="x")
    assert not needs_recording(AppStatus.failed(revision="abc123", error="x"), failed, changed=False)
    assert needs_recording(AppStatus.failed(revision="abc123", error="y"), failed, changed=False)


def test_annotations_round_trip() -> None:
    status = AppStatus(revision="abc123", result="Failed", error="it broke", summary={"failed": 1},
                       time="2024-05-01T10:00:00Z")
    parent = {"metadata": {"annotations": status.annotations()}}
    assert read_status(parent) == status
    success = AppStatus(revision="abc123", result="Succeeded", time="2024-05-01T10:00:00Z",
                        applied_revision="abc123")
    assert ERROR_ANNOTATION not in success.annotations()
    assert read_status({"metadata": {"annotations": success.annotations()}}) == success


def test_a_success_recorded_before_applied_revision_existed_counts_as_applied() -> None:
    older = {"metadata": {"annotations": {"status.syncer.dev/revision": "abc123",
                                          "status.syncer.dev/result": "Succeeded"}}}
    recorded = read_status(older)
    assert recorded is not None and recorded.applied_revision == "abc123"


def test_no_status_on_a_parent_without_one() -> None:
    assert read_status(None) is None
    assert read_status({"metadata": {"annotations": {"applyset.kubernetes.io/tooling": "syncer/v0.1.0"}}}) is None


def test_long_errors_are_cut() -> None:
    value = AppStatus.failed(revision="a", error="x" * 10_000).annotations()[ERROR_ANNOTATION]
    assert len(value) <= MAX_ERROR_LENGTH
    assert value.endswith("(truncated)")
