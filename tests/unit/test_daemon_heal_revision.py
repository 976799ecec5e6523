"""The reconciler heals to the revision the cluster records (issue 20, report 4), against a real
Git repository, with the cluster reduced to what the decision reads: the applied revision on
the app's parent, and the syncs made (what they applied, and what record they expected)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from syncer.apply import ChangeSet, SyncOptions
from syncer.apply.status import APPLIED_REVISION_ANNOTATION, RESULT_ANNOTATION, REVISION_ANNOTATION
from syncer.apply.sync import RecordMoved
from syncer.config import AppConfig
from syncer.daemon import reconciler as reconciler_module
from syncer.daemon.metrics import Metrics
from syncer.daemon.reconciler import AppReconciler
from syncer.model import Manifest, Object
from tests.unit.test_sources_git import Upstream, cache, git, upstream  # noqa: F401 - fixtures

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  color: {color}\n"


@dataclass
class Cluster:
    """The parent's applied revision, and every sync: (revision, color, expected record)."""

    applied: str = ""
    syncs: list[tuple[str, str, str | None]] = field(default_factory=list)
    moves_before_lock: str | None = None
    """Someone else records this revision while the next sync waits for the lock."""
    lagging: bool = False
    """The watch has not yet brought the daemon's own records."""

    def parent(self, namespace: str, name: str) -> tuple[bool, Object | None]:
        if not self.applied:
            return True, None
        return True, {"metadata": {"name": name, "namespace": namespace, "annotations": {
            REVISION_ANNOTATION: self.applied, RESULT_ANNOTATION: "Succeeded",
            APPLIED_REVISION_ANNOTATION: self.applied}}}

    def wrote_parent(self, namespace: str, name: str) -> None:
        pass  # this cluster's parent is always current (`lagging` aside)

    def watching(self, resources: object) -> bool:
        return False

    def sync(self, kube: object, manifests: Sequence[Manifest], *, options: SyncOptions, revision: str,
             cache: object, accept: object = None, trigger: object = None,
             record: Callable[[object, ChangeSet], None] | None = None) -> ChangeSet:
        if self.moves_before_lock is not None:
            self.applied, self.moves_before_lock = self.moves_before_lock, None
        if options.expect_applied is not None and options.expect_applied != self.applied:
            raise RecordMoved("moved", expected=options.expect_applied, recorded=self.applied)
        self.syncs.append((revision, str(manifests[0].obj["data"]["color"]), options.expect_applied))
        changes = ChangeSet(app=options.app, revision=revision)
        if record is not None:  # as the sync records its outcome: under its lock, before it returns
            record(kube, changes)
        return changes


class NoParent:
    """The API server as the reconciler reads it when the cache has no parent: none."""

    def resource_for(self, api_version: str, kind: str) -> str:
        return f"{api_version}/{kind}"

    def get(self, resource: object, name: str, *, namespace: str | None = None) -> None:
        return None


@dataclass
class Recorder:
    """The daemon's own records land on the parent."""

    cluster: Cluster

    history = None

    def record_changes(self, changes: ChangeSet, *, current: bool = True, kube: object = None) -> bool:
        """A heal of an older revision than the current one records only its history entry."""
        if current and changes.applied and not self.cluster.lagging:
            self.cluster.applied = changes.revision
        return True

    def record_failure(self, *, revision: str, error: Exception, **when: object) -> bool:
        return True


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Cluster:
    world = Cluster()
    monkeypatch.setattr(reconciler_module, "sync", world.sync)
    monkeypatch.setattr(reconciler_module, "OutcomeRecorder", lambda *args, **kwargs: Recorder(world))
    return world


def daemon(upstream: Upstream, cache: Path, cluster: Cluster) -> AppReconciler:  # noqa: F811
    config = AppConfig(name="shop", repo=upstream.url, revision="main", path="app", namespace="shop", interval=3600)
    kube: Any = NoParent()
    return AppReconciler(config, kube=kube, metrics=Metrics([config.id]), cache_dir=cache, cache=cluster)


def colour(upstream: Upstream, color: str) -> str:  # noqa: F811
    return upstream.commit({"app/cm.yaml": CONFIGMAP.format(color=color)})


def test_a_newer_commit_synced_by_hand_is_healed_to_and_becomes_current(
    upstream: Upstream, cache: Path, cluster: Cluster,  # noqa: F811
) -> None:
    first = colour(upstream, "blue")
    app = daemon(upstream, cache, cluster)
    assert app.tick()
    assert (cluster.syncs, cluster.applied) == ([(first, "blue", None)], first)

    second = colour(upstream, "green")
    cluster.applied = second  # `syncer sync` by hand, before the daemon's next look at Git
    app.note_drift()
    assert app.tick()
    assert cluster.syncs[-1] == (second, "green", second)
    assert app.current_attempt is not None and (app.current_attempt.revision, app.current_attempt.ok) == (second, True)


def test_a_rollback_by_hand_is_kept_until_an_explicit_request(
    upstream: Upstream, cache: Path, cluster: Cluster,  # noqa: F811
) -> None:
    first = colour(upstream, "blue")
    app = daemon(upstream, cache, cluster)
    assert app.tick()
    second = colour(upstream, "green")
    app.expect_news()
    assert app.tick()
    assert cluster.applied == second
    app.note_drift()  # the watch brings the daemon's own record
    assert app.tick()

    cluster.applied = first  # a rollback by hand
    for _ in range(2):  # a heal, then an interval tick: the head did not change
        app.note_drift()
        assert app.tick()
        assert cluster.syncs[-1] == (first, "blue", first)
    assert app.current_attempt is not None and not app.current_attempt.ok
    assert f"runs revision {first[:12]}" in (app.current_attempt.error or "")

    app.expect_news(move_on=True)  # syncer reconcile
    assert app.tick()
    assert cluster.syncs[-1] == (second, "green", None)
    assert app.current_attempt is not None and app.current_attempt.ok


def test_a_recorded_revision_gone_from_git_is_not_healed(
    upstream: Upstream, cache: Path, cluster: Cluster,  # noqa: F811
) -> None:
    colour(upstream, "blue")
    app = daemon(upstream, cache, cluster)
    assert app.tick()
    gone = "f" * 40
    cluster.applied = gone
    for _ in range(2):
        app.note_drift()
        assert app.tick()
    assert len(cluster.syncs) == 1
    assert app.current_attempt is not None and "no longer has" in (app.current_attempt.error or "")


def test_a_replica_that_lost_the_app_asks_git_before_it_heals(
    upstream: Upstream, cache: Path, cluster: Cluster,  # noqa: F811
) -> None:
    """What it held is dropped: its next tick, a heal, asks Git and syncs its head, not the
    render it held (report 4a)."""
    colour(upstream, "blue")
    app = daemon(upstream, cache, cluster)
    assert app.tick()
    second = colour(upstream, "green")
    app.forget()  # lost its membership (paused past its Lease)
    app.note_drift()  # the other replica's writes, seen when it resumes
    assert app.tick()
    assert cluster.syncs[-1] == (second, "green", None)


def test_a_heal_the_record_moved_under_is_not_a_failure(
    upstream: Upstream, cache: Path, cluster: Cluster,  # noqa: F811
) -> None:
    first = colour(upstream, "blue")
    app = daemon(upstream, cache, cluster)
    assert app.tick()
    before = app.current_attempt
    second = colour(upstream, "green")
    cluster.moves_before_lock = second  # a hand sync records while the heal waits for the lock
    app.note_drift()
    step = app.step()
    assert (step.ok, step.attempt) == (True, None)
    assert cluster.syncs == [(first, "blue", None)] and app.current_attempt is before
    assert app.tick()  # the record's change started it: heal to what is recorded now
    assert cluster.syncs[-1] == (second, "green", second)


def test_a_heal_before_the_watch_brings_the_daemons_own_record_keeps_the_head(
    upstream: Upstream, cache: Path, cluster: Cluster,  # noqa: F811
) -> None:
    """The daemon's own writes start a heal at once; its record of the new head may not be in
    the watch yet. That older record is not taken for someone else's."""
    colour(upstream, "blue")
    app = daemon(upstream, cache, cluster)
    assert app.tick()
    cluster.lagging = True
    second = colour(upstream, "green")
    app.expect_news()
    assert app.tick()
    app.note_drift()
    assert app.tick()
    assert cluster.syncs[-1] == (second, "green", None)
    assert app.current_attempt is not None and (app.current_attempt.revision, app.current_attempt.ok) == (second, True)
