"""What the daemon does to spare Git and rendering: one `ls-remote` per repository for all apps
that share it, and no render of a path that a new commit did not change."""

from __future__ import annotations

import os
from pathlib import Path

from syncer.config import AppConfig
from syncer.daemon.metrics import Metrics
from syncer.daemon.reconciler import AppReconciler
from syncer.sources import SharedLsRemote, open_source
from tests.unit.test_sources_git import Upstream, cache, git, upstream  # noqa: F401 - fixtures

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  v: '{value}'\n"


def test_sources_of_one_repository_share_its_ls_remote(upstream: Upstream, cache: Path) -> None:
    upstream.tag("v1")
    shared = SharedLsRemote()
    main = open_source(upstream.url, revision="main", cache_dir=cache, shared=shared)
    tagged = open_source(upstream.url, revision="v1", cache_dir=cache, shared=shared)
    first = git(upstream.work, "rev-parse", "HEAD")

    assert main.remote_revision(max_age=60) == first
    assert tagged.remote_revision(max_age=60) == first
    assert shared.calls == 1

    second = upstream.commit({"app/cm.yaml": "version: 2\n"})
    assert main.remote_revision(max_age=60) == first  # the shared answer is young enough
    assert main.remote_revision(max_age=0) == second  # a webhook asks afresh
    assert tagged.remote_revision(max_age=60) == first  # the tag did not move
    assert shared.calls == 2


def test_a_paths_tree_id_changes_only_with_its_content(upstream: Upstream, cache: Path) -> None:
    source = open_source(upstream.url, cache_dir=cache)
    before = source.fetch()
    upstream.commit({"other/cm.yaml": "version: 1\n"})
    elsewhere = source.fetch()
    upstream.commit({"app/cm.yaml": "version: 2\n"})
    changed = source.fetch()
    assert before.tree_of is not None and elsewhere.tree_of is not None and changed.tree_of is not None

    assert before.revision != elsewhere.revision
    assert before.tree_of("app") == elsewhere.tree_of("app") == elsewhere.tree_of("./app/")
    assert changed.tree_of("app") != elsewhere.tree_of("app")
    assert elsewhere.tree_of(".") != before.tree_of(".")
    assert before.tree_of("missing") is None

    os.symlink("../other/cm.yaml", upstream.work / "app" / "link.yaml")
    upstream.commit({})
    assert source.fetch().tree_of("app") is None  # a link's target is not part of the tree id


def test_a_commit_elsewhere_in_the_repository_is_not_rendered_again(upstream: Upstream, cache: Path) -> None:
    upstream.commit({"app/cm.yaml": CONFIGMAP.format(name="app", value=1)})
    config = AppConfig(name="app", repo=upstream.url, path="app", namespace="default")
    reconciler = AppReconciler(config, kube=None, metrics=Metrics([config.id]), cache_dir=cache)  # type: ignore[arg-type]

    first = reconciler._fetch_and_render()
    rendered = reconciler.manifests
    second = upstream.commit({"other/cm.yaml": CONFIGMAP.format(name="other", value=1)})
    assert reconciler._fetch_and_render() == second != first
    assert reconciler.manifests is rendered

    upstream.commit({"app/cm.yaml": CONFIGMAP.format(name="app", value=2)})
    reconciler._fetch_and_render()
    assert reconciler.manifests is not rendered
    assert reconciler.manifests is not None and reconciler.manifests[0].obj["data"] == {"v": "2"}
