"""`differing` gives exactly the paths deepdiff gives for plain JSON (dicts, lists, scalars):
deepdiff is the oracle, every difference a user sees (the changed fields of a plan, their
causes) is made from these paths.

Runs 500 examples per property with a fixed seed (derandomized) in the default suite; set
SYNCER_FUZZ_EXAMPLES=100000 for a long run with fresh random examples.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from deepdiff import DeepDiff
from hypothesis import given
from hypothesis import strategies as st

from syncer.diff.explain import render_path
from syncer.diff.normalize import Path
from syncer.diff.structural import differing
from tests.unit.properties import property_settings

PROPERTY = property_settings(examples=500)

# Few distinct values, so that two drawn objects share keys, items and values often (and
# 1, 1.0 and True meet, which deepdiff tells apart by type but difflib does not).
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from([0.0, 1.0, 2.5]),
                    st.sampled_from(["", "a", "b", "web", "a\nb"]))
keys = st.sampled_from(["a", "b", "c", "d", "spec", "name", "app.kubernetes.io/name"])
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)


def oracle(before: Any, after: Any) -> list[Path]:
    """How syncer found the paths before it had its own walk."""
    tree = DeepDiff(before, after, view="tree")
    return sorted({tuple(change.path(output_format="list")) for changes in tree.values() for change in changes},
                  key=render_path)


@st.composite
def edited(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """`value` with a few edits, as a resync sees an object: most of it the same."""
    choice = draw(st.integers(0, 9))
    if choice == 0 or depth > 4:
        return draw(json_values)
    if isinstance(value, dict) and value:
        result = dict(value)
        for key in draw(st.lists(st.sampled_from(sorted(value)), max_size=2, unique=True)):
            result[key] = draw(edited(value[key], depth + 1))
        if draw(st.booleans()):
            result.pop(draw(st.sampled_from(sorted(value))), None)
        if draw(st.booleans()):
            result[draw(keys)] = draw(json_values)
        return result
    if isinstance(value, list) and value:
        items = list(value)
        index = draw(st.integers(0, len(items) - 1))
        action = draw(st.sampled_from(["edit", "insert", "delete", "append", "swap"]))
        if action == "edit":
            items[index] = draw(edited(items[index], depth + 1))
        elif action == "insert":
            items.insert(index, draw(json_values))
        elif action == "delete":
            del items[index]
        elif action == "append":
            items.append(draw(json_values))
        else:
            items[0], items[index] = items[index], items[0]
        return items
    return value if choice < 5 else draw(scalars)


@st.composite
def before_and_after(draw: st.DrawFn) -> tuple[Any, Any]:
    before = draw(json_values)
    return before, draw(edited(before))


@PROPERTY
@given(before=json_values, after=json_values)
def test_any_two_values_differ_where_deepdiff_says(before: Any, after: Any) -> None:
    assert differing(before, after) == oracle(before, after)


@PROPERTY
@given(pair=before_and_after())
def test_an_edited_value_differs_where_deepdiff_says(pair: tuple[Any, Any]) -> None:
    before, after = pair
    assert differing(before, after) == oracle(before, after)


DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web", "tier": "front"}},
    "spec": {"replicas": 2, "template": {"spec": {"containers": [
        {"name": "web", "image": "web:1", "args": ["--port", "80", "--verbose"],
         "ports": [{"containerPort": 80, "protocol": "TCP"}]},
    ]}}},
}


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    result = copy.deepcopy(DEPLOYMENT)
    target: Any = result
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return result


@pytest.mark.parametrize(("after", "paths"), [
    (DEPLOYMENT, []),
    (_with(("spec", "replicas"), 3), [("spec", "replicas")]),
    (_with(("spec", "replicas"), 2.0), [("spec", "replicas")]),
    (_with(("metadata", "labels"), {"app": "web"}), [("metadata", "labels", "tier")]),
    # No key in common: the labels differ as a whole, as deepdiff says.
    (_with(("metadata", "labels"), {"team": "a", "owner": "b"}), [("metadata", "labels")]),
    (_with(("spec", "template", "spec", "containers", 0, "image"), "web:2"),
     [("spec", "template", "spec", "containers", 0, "image")]),
    # An argument inserted: one added item, found by difflib's matching.
    (_with(("spec", "template", "spec", "containers", 0, "args"), ["--port", "80", "--debug", "--verbose"]),
     [("spec", "template", "spec", "containers", 0, "args", 2)]),
], ids=["same", "replicas", "int-to-float", "label-removed", "labels-replaced", "image", "arg-inserted"])
def test_a_deployments_changes_are_found_where_deepdiff_finds_them(after: dict[str, Any],
                                                                    paths: list[tuple[Any, ...]]) -> None:
    assert differing(DEPLOYMENT, after) == paths == oracle(DEPLOYMENT, after)
