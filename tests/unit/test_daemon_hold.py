"""A rollback's hold in the daemon (`spec.hold`, syncer.hold), against real Git: the App goes
back to the revision rolled back to and stays there while the tracked ref renders as the
revision rolled back from did; a commit that changes the App's render ends the hold."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from syncer.daemon.metrics import Metrics
from syncer.daemon.reconciler import AppReconciler
from syncer.hold import Hold
from tests.unit.test_daemon_heal_revision import Cluster, NoParent, cluster, colour, daemon  # noqa: F401 - fixture
from tests.unit.test_sources_git import Upstream, cache, git, upstream  # noqa: F401 - fixtures


def held(app: AppReconciler, hold: Hold | None, cluster: Cluster) -> AppReconciler:  # noqa: F811
    """The App as the daemon builds it again once `syncer rollback` set (or removed) spec.hold."""
    config = replace(app.app, hold=hold)
    kube: Any = NoParent()
    return AppReconciler(config, kube=kube, metrics=Metrics([config.id]), cache_dir=app.source.cache_dir,
                         cache=cluster)


def synced_twice(upstream: Upstream, cache: Path, cluster: Cluster) -> tuple[AppReconciler, str, str]:  # noqa: F811
    first = colour(upstream, "blue")
    app = daemon(upstream, cache, cluster)
    assert app.tick()
    second = colour(upstream, "green")
    app.expect_news()
    assert app.tick()
    assert cluster.applied == second
    return app, first, second


def rolled_back(upstream: Upstream, cache: Path, cluster: Cluster) -> tuple[AppReconciler, str, str]:  # noqa: F811
    """An App synced at two commits, then held at the first: (the App, first, second)."""
    app, first, second = synced_twice(upstream, cache, cluster)
    app = held(app, Hold(revision=first, from_revision=second), cluster)
    assert app.tick()
    assert cluster.syncs[-1] == (first, "blue", None) and cluster.applied == first
    return app, first, second


def test_a_held_app_goes_back_and_stays_while_the_head_renders_as_before(
    upstream: Upstream, cache: Path, cluster: Cluster,  # noqa: F811
) -> None:
    app, first, second = rolled_back(upstream, cache, cluster)
    assert app.current_attempt is not None and (app.current_attempt.revision, app.current_attempt.ok) == (first, True)

    # A commit elsewhere in the repository (a monorepo) moves the head, not the App.
    elsewhere = upstream.commit({"other/cm.yaml": "kind: ConfigMap"})
    for _ in range(2):
        app.expect_news()
        assert app.tick()
        assert cluster.syncs[-1][:2] == (first, "blue")
    assert app.current_attempt is not None and app.current_attempt.ok, app.current_attempt.error
    assert app.hold_status == {"revision": first, "from": second, "holding": True}

    # `syncer reconcile` does not undo the rollback either.
    app.expect_news(move_on=True)
    assert app.tick()
    assert cluster.syncs[-1][:2] == (first, "blue") and cluster.applied == first

    # A restarted daemon keeps it.
    app = held(app, Hold(revision=first, from_revision=second), cluster)
    assert app.tick()
    assert cluster.applied == first and all(revision != elsewhere for revision, _, _ in cluster.syncs)


def test_a_commit_that_changes_the_apps_render_ends_the_hold(
    upstream: Upstream, cache: Path, cluster: Cluster,  # noqa: F811
) -> None:
    app, first, second = rolled_back(upstream, cache, cluster)
    third = colour(upstream, "yellow")
    app.expect_news()
    assert app.tick()
    assert cluster.syncs[-1] == (third, "yellow", None) and cluster.applied == third
    assert app.current_attempt is not None and (app.current_attempt.revision, app.current_attempt.ok) == (third, True)
    assert app.hold_status == {"revision": first, "from": second, "holding": False, "releasedBy": third}


def test_a_released_hold_moves_the_app_to_the_head(
    upstream: Upstream, cache: Path, cluster: Cluster,  # noqa: F811
) -> None:
    app, first, second = synced_twice(upstream, cache, cluster)
    app = held(app, Hold(revision=first, from_revision=second), cluster)
    assert app.tick()
    assert cluster.applied == first
    released = held(app, None, cluster)  # syncer rollback --release
    assert released.tick()
    assert cluster.applied == second and released.hold_status is None
