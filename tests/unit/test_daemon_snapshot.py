"""A tick of an App works from one snapshot of it, whatever the watch swaps in meanwhile.

The watch replaces an App's `AppEntry` as one reference while a tick of that App may run. The
tick read its entry once, at its start: everything it writes pairs that version's generation
with that version's spec. Here a fake reconciler lets the watch swap in a new generation (with
a new repository) in the middle of the tick, and every status the ticks wrote must pair a
generation with the revision synced from that generation's repository.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from syncer.apply import ChangeSet
from syncer.config import AppConfig
from syncer.daemon import AppsOptions, ClusterApps, DaemonOptions, Metrics
from syncer.daemon.reconciler import SyncAttempt, SyncStep
from syncer.daemon.source import SourceContext
from syncer.kube import ClientOptions, Kube, Resource
from syncer.sources import SharedLsRemote

REPOS = {1: "https://git.example.com/one.git", 2: "https://git.example.com/two.git"}


def app_object(generation: int) -> dict[str, Any]:
    return {"apiVersion": "syncer.dev/v1alpha1", "kind": "App",
            "metadata": {"name": "shop", "namespace": "team-a", "uid": "u1", "generation": generation,
                         "resourceVersion": str(generation)},
            "spec": {"repo": REPOS[generation]}}


class FakeKube:
    """Answers what a tick asks of the API server; keeps the statuses written."""

    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []

    def resource_for(self, api_version: str, kind: str) -> Resource:
        group, _, version = api_version.rpartition("/")
        return Resource(group=group, version=version, kind=kind, plural=kind.lower() + "s", namespaced=True)

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        assert method == "PATCH" and path.endswith("/status"), (method, path)
        replace = next(op for op in kwargs["body"] if op["path"] == "/status")  # the JSON patch
        status = replace["value"]
        self.statuses.append(status)
        return {"status": status}

    def create(self, resource: Resource, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return body  # an Event

    def close(self) -> None:
        pass


class FakeSchedule:
    def put(self, app: str, *, interval: float) -> None:
        pass

    def route(self, app: str, *, applyset: str | None) -> None:
        pass

    def remove(self, app: str) -> None:
        pass

    def trigger(self, app: str) -> None:
        pass


class FakeReconciler:
    """Syncs "the revision of its repository"; `during_step` runs in the middle of a step."""

    during_step: Callable[[], None] = staticmethod(lambda: None)

    def __init__(self, app: AppConfig, *, cache: Any = None, **_: Any) -> None:
        self.app = app
        self.cache = cache
        self.manifests = None
        self.last_attempt: SyncAttempt | None = None
        self.current_attempt: SyncAttempt | None = None
        self.pending = None
        self.hold_status = None
        self.history = None
        self.rendered_revision = f"revision-of-{app.repo}"

    def step(self) -> SyncStep:
        FakeReconciler.during_step()
        changes = ChangeSet(app=self.app.name, revision=self.rendered_revision)
        self.last_attempt = self.current_attempt = SyncAttempt(revision=self.rendered_revision, changes=changes,
                                                               error=None)
        return SyncStep(ok=True, attempt=self.last_attempt)

    def expect_news(self, *, move_on: bool = False) -> None:
        pass

    def note_drift(self) -> None:
        pass


def test_a_tick_pairs_generation_and_spec_from_one_snapshot() -> None:
    kube = FakeKube()
    source = ClusterApps(AppsOptions(), new_reconciler=FakeReconciler)  # type: ignore[arg-type]
    source.attach(SourceContext(
        kube=kube, control=kube, client=ClientOptions(), options=DaemonOptions(), metrics=Metrics(()),  # type: ignore[arg-type]
        cache=None, shared_git=SharedLsRemote(), schedule=FakeSchedule(),
    ))
    assert source.table is not None
    table = source.table
    table.upsert(app_object(1))
    swapped: list[int] = []

    def the_watch_sees_generation_2() -> None:
        if not swapped:
            table.upsert(app_object(2))
            swapped.append(2)

    FakeReconciler.during_step = staticmethod(the_watch_sees_generation_2)
    try:
        first = source.tick("team-a/shop")
        second = source.tick("team-a/shop")
    finally:
        FakeReconciler.during_step = staticmethod(lambda: None)

    # The swap did happen in the middle of the first tick (else this test proves nothing).
    assert swapped == [2]
    found = table.get("team-a/shop")
    assert found is not None and found[0].generation == 2
    assert first is not None and first.ok and first.attempt is not None
    assert first.attempt.revision == f"revision-of-{REPOS[1]}"
    assert second is not None and second.attempt is not None
    assert second.attempt.revision == f"revision-of-{REPOS[2]}"

    # What each status says of the spec it was written for: while syncing, the repository
    # being synced; after the sync, the revision synced (from that repository).
    written = [(status["observedGeneration"], _what_it_says(status)) for status in kube.statuses]
    for generation, says in written:
        assert says.endswith(REPOS[generation]), (
            f"a status paired generation {generation} with another generation's spec: {says!r}; all: {written}")
    assert written == [(1, f"syncing {REPOS[1]}"), (1, f"synced revision-of-{REPOS[1]}"),
                       (2, f"syncing {REPOS[2]}"), (2, f"synced revision-of-{REPOS[2]}")]


def _what_it_says(status: dict[str, Any]) -> str:
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    if ready["message"].startswith("syncing "):
        return str(ready["message"]).removesuffix(" at HEAD")
    return f"synced {status['lastSync']['revision']}"


def test_the_fake_kube_is_a_kube_for_the_tick() -> None:
    """The fake stands in for `Kube` only where a tick calls it."""
    assert all(callable(getattr(Kube, name)) for name in ("resource_for", "request", "create", "close"))
