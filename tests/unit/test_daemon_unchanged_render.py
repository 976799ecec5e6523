"""A commit that does not change what an App renders (in a monorepo, most commits are to other
paths) costs the App nothing: no sync, no status, no request; against real Git."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from syncer.daemon.reconciler import AppReconciler
from tests.unit.test_daemon_heal_revision import Cluster, colour, daemon
from tests.unit.test_daemon_heal_revision import cluster as heal_cluster  # noqa: F401 - fixture
from tests.unit.test_sources_git import Upstream, cache, git, upstream  # noqa: F401 - fixtures

import pytest


@dataclass
class Watched(Cluster):
    """A cluster whose every kind the daemon watches: no change goes unseen."""

    def watching(self, resources: object) -> bool:
        return True


@pytest.fixture
def cluster(heal_cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Watched:  # noqa: F811
    from syncer.daemon import reconciler as reconciler_module

    world = Watched()
    monkeypatch.setattr(reconciler_module, "sync", world.sync)
    from tests.unit.test_daemon_heal_revision import Recorder
    monkeypatch.setattr(reconciler_module, "OutcomeRecorder", lambda *args, **kwargs: Recorder(world))
    return world


def applied(upstream: Upstream, cache: Path, cluster: Watched) -> tuple[AppReconciler, str]:  # noqa: F811
    first = colour(upstream, "blue")
    app = daemon(upstream, cache, cluster)
    assert app.tick()
    app.note_drift()  # the watch brings the daemon's own record
    assert app.tick()
    return app, first


def test_a_commit_elsewhere_syncs_nothing_and_the_app_keeps_its_revision(
    upstream: Upstream, cache: Path, cluster: Watched,  # noqa: F811
) -> None:
    app, first = applied(upstream, cache, cluster)
    syncs = len(cluster.syncs)
    upstream.commit({"other/cm.yaml": "kind: ConfigMap"})
    for _ in range(3):
        app.expect_news()  # a push, then more
        assert app.tick()
    assert len(cluster.syncs) == syncs and cluster.applied == first
    assert app.current_attempt is not None and (app.current_attempt.revision, app.current_attempt.ok) == (first, True)

    app.note_drift()  # a member changed: healed with the applied revision, which stays current
    assert app.tick()
    assert cluster.syncs[-1] == (first, "blue", first)
    assert app.current_attempt is not None and app.current_attempt.ok, app.current_attempt.error

    second = colour(upstream, "green")  # a commit that changes the app
    app.expect_news()
    assert app.tick()
    assert cluster.syncs[-1] == (second, "green", None) and cluster.applied == second


def test_a_commit_elsewhere_with_a_member_changed_is_synced(
    upstream: Upstream, cache: Path, cluster: Watched,  # noqa: F811
) -> None:
    app, first = applied(upstream, cache, cluster)
    elsewhere = upstream.commit({"other/cm.yaml": "kind: ConfigMap"})
    app.note_drift()
    app.expect_news()
    assert app.tick()
    assert cluster.syncs[-1] == (elsewhere, "blue", None) and cluster.applied == elsewhere
