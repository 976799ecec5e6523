"""The benchmark's generated app: deterministic, the advertised shape, and the edits the
scenarios make (one value changed, a tenth removed) touch exactly what they say."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from bench.generate import (
    CHANGED_KEY,
    KINDS,
    NAMESPACES_FILE,
    change_one,
    generate,
    list_budget,
    remove_fraction,
    render_files,
    write_tree,
)


def test_same_inputs_give_identical_files() -> None:
    assert render_files(generate(200, prefix="a")) == render_files(generate(200, prefix="a"))


def test_prefixes_keep_two_tools_apart() -> None:
    ours = {(o.namespace, o.name) for o in generate(100, prefix="sy")}
    theirs = {(o.namespace, o.name) for o in generate(100, prefix="kc")}
    namespaces = {o.name for o in generate(100, prefix="sy") if o.kind == "Namespace"}
    assert ours.isdisjoint(theirs)
    assert namespaces == {f"sy-ns-{i:02d}" for i in range(10)}


@pytest.mark.parametrize("count", [40, 100, 1000])
def test_count_kinds_and_namespaces(count: int) -> None:
    objects = generate(count, prefix="p")
    kinds = Counter(o.kind for o in objects)
    assert kinds["Namespace"] == 10
    assert sum(kinds[kind] for kind in KINDS) == count
    assert max(kinds[kind] for kind in KINDS) - min(kinds[kind] for kind in KINDS) <= 1
    namespaced = Counter(o.namespace for o in objects if o.kind != "Namespace")
    assert len(namespaced) == 10
    assert list_budget(objects) == 4 * 10 + 1


def test_namespaces_come_first_for_kubectl() -> None:
    """kubectl -R applies files in lexical order: the Namespaces must exist before the rest."""
    files = sorted(render_files(generate(80, prefix="p")))
    assert files[0] == NAMESPACES_FILE


def test_change_one_changes_a_single_configmap_value() -> None:
    before = generate(100, prefix="p")
    after, changed = change_one(before, value="2")
    differing = [(b, a) for b, a in zip(before, after) if b.obj != a.obj]
    assert len(differing) == 1
    old, new = differing[0]
    assert new == changed and new.kind == "ConfigMap"
    assert (old.obj["data"][CHANGED_KEY], new.obj["data"][CHANGED_KEY]) == ("1", "2")
    assert {k: v for k, v in old.obj["data"].items() if k != CHANGED_KEY} == \
        {k: v for k, v in new.obj["data"].items() if k != CHANGED_KEY}


def test_remove_fraction_keeps_namespaces_and_spreads_removals() -> None:
    objects = generate(1000, prefix="p")
    kept, removed = remove_fraction(objects, fraction=0.1)
    assert len(removed) == 100 and len(kept) == 910
    assert not any(o.kind == "Namespace" for o in removed)
    assert set(Counter(o.kind for o in removed)) == set(KINDS)
    assert len({o.namespace for o in removed}) == 10
    assert {id(o) for o in kept}.isdisjoint({id(o) for o in removed})


def test_write_tree_removes_files_no_longer_wanted(tmp_path: Path) -> None:
    objects = generate(80, prefix="p")
    write_tree(tmp_path, objects)
    kept, removed = remove_fraction(objects)
    write_tree(tmp_path, kept)
    on_disk = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.yaml")}
    assert on_disk == set(render_files(kept))
    assert not any((tmp_path / o.file).exists() for o in removed)
    namespaces = list(yaml.safe_load_all((tmp_path / NAMESPACES_FILE).read_text()))
    assert [n["metadata"]["name"] for n in namespaces] == [f"p-ns-{i:02d}" for i in range(10)]


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError):
        generate(-1, prefix="p")
