"""Rendered manifests are cached per commit, and only where that is safe."""

from __future__ import annotations

from pathlib import Path

from syncer.sources import open_source, render
from tests.unit.test_sources_git import Upstream, upstream  # noqa: F401  (fixture)

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: \"{value}\"\n"


def test_second_render_of_a_commit_comes_from_the_cache(upstream: Upstream, tmp_path: Path) -> None:  # noqa: F811
    upstream.commit({"deploy/a.yaml": CM.format(name="a", value="1"), "deploy/b.yaml": CM.format(name="b", value="2")})
    snapshot = open_source(upstream.url, cache_dir=tmp_path / "cache").fetch()
    first = render(snapshot, "deploy", namespace="shop")
    assert snapshot.render_cache is not None
    entries = list(snapshot.render_cache.glob("*.json"))
    assert len(entries) == 1
    # Proof that the cache is read: an entry edited behind syncer's back is what comes out.
    entries[0].write_text(entries[0].read_text().replace('"k":"1"', '"k":"from-cache"'))
    second = render(snapshot, "deploy", namespace="shop")
    assert [m.obj["data"]["k"] for m in second] == ["from-cache", "2"]
    assert [(m.ref, m.origin, m.namespace_defaulted) for m in second] == [
        (m.ref, m.origin, m.namespace_defaulted) for m in first]


def test_cache_is_keyed_by_path_and_namespace(upstream: Upstream, tmp_path: Path) -> None:  # noqa: F811
    upstream.commit({"deploy/a.yaml": CM.format(name="a", value="1")})
    snapshot = open_source(upstream.url, cache_dir=tmp_path / "cache").fetch()
    assert render(snapshot, "deploy", namespace="one")[0].ref.namespace == "one"
    assert render(snapshot, "deploy", namespace="two")[0].ref.namespace == "two"


def test_unreadable_cache_entry_is_rendered_again(upstream: Upstream, tmp_path: Path) -> None:  # noqa: F811
    upstream.commit({"deploy/a.yaml": CM.format(name="a", value="1")})
    snapshot = open_source(upstream.url, cache_dir=tmp_path / "cache").fetch()
    render(snapshot, "deploy")
    assert snapshot.render_cache is not None
    for entry in snapshot.render_cache.glob("*.json"):
        entry.write_text("{not json")
    assert render(snapshot, "deploy")[0].obj["data"] == {"k": "1"}


def test_plain_directories_are_never_cached(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(CM.format(name="a", value="1"))
    snapshot = open_source(str(tmp_path)).fetch()
    assert snapshot.render_cache is None
    render(snapshot)
    (tmp_path / "a.yaml").write_text(CM.format(name="a", value="2"))
    assert render(snapshot)[0].obj["data"] == {"k": "2"}
