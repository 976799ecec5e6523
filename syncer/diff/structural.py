"""Where two plain JSON objects differ, as concrete paths, the way deepdiff finds them.

Why not deepdiff itself, as STYLE.md would have it: this runs for every object a plan
compares with a difference (each of a thousand drifted objects in a resync), and deepdiff
spends most of its time on what plain JSON does not need: a `DiffLevel` chain per node, a
path rendered and matched against exclusion rules at every level, and a lock, since its path
parsing through `ast.literal_eval` is not thread-safe on the CPython 3.11 syncer supports.
This walk gives exactly deepdiff's paths for dicts, lists and scalars (a property test holds
it to `DeepDiff(before, after, view="tree")` as the oracle: `tests/unit/test_diff_structural.py`),
quirks included, so that nothing a user sees changes:

- a dict whose keys are mostly different (under a third shared) differs as a whole;
- a list of scalars is matched by `difflib`'s longest common blocks, unless comparing item
  by item gives no more differences; a list holding a dict or a list is compared item by item;
- values of different types differ as a whole (1 and 1.0, 1 and True), but difflib's
  matching takes equal items for the same (1 and True are equal in a list of scalars).
"""

from __future__ import annotations

from difflib import SequenceMatcher
from itertools import zip_longest
from typing import Any

from syncer.diff.explain import render_path
from syncer.diff.normalize import Path

DIFF_DEEPER_SHARE = 0.33
"""deepdiff's `threshold_to_diff_deeper`: dicts sharing less than this share of their keys
differ as a whole."""
_SCALARS = (str, int, float, bool, type(None))
_MISSING = object()


def differing(before: Any, after: Any) -> list[Path]:
    """Where two objects differ: a changed value, or the root of a subtree or list item only
    one of them has (an item's index is in the object that has it); sorted as rendered."""
    found: list[Path] = []
    _walk(before, after, (), found)
    return sorted(set(found), key=render_path)


def _walk(old: Any, new: Any, at: Path, found: list[Path]) -> None:
    if old is new:
        return
    if type(old) is not type(new):
        found.append(at)
    elif isinstance(old, dict):
        _dicts(old, new, at, found)
    elif isinstance(old, list):
        _lists(old, new, at, found)
    elif old != new:
        found.append(at)


def _dicts(old: dict[str, Any], new: dict[str, Any], at: Path, found: list[Path]) -> None:
    shared = old.keys() & new.keys()
    union = len(old.keys() | new.keys())
    if union > 1 and len(shared) / union < DIFF_DEEPER_SHARE:
        found.append(at)
        return
    found.extend((*at, key) for key in new.keys() - shared)
    found.extend((*at, key) for key in old.keys() - shared)
    for key in shared:
        _walk(old[key], new[key], (*at, key), found)


def _lists(old: list[Any], new: list[Any], at: Path, found: list[Path]) -> None:
    if not all(isinstance(item, _SCALARS) for item in (*old, *new)):
        _item_by_item(old, new, at, found, old_from=0, old_to=len(old), new_from=0, new_to=len(new))
        return
    by_blocks: list[Path] = []
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    for tag, old_from, old_to, new_from, new_to in matcher.get_opcodes():
        if tag == "replace":
            _item_by_item(old, new, at, by_blocks, old_from=old_from, old_to=old_to, new_from=new_from, new_to=new_to)
        elif tag == "delete":
            by_blocks.extend((*at, index) for index in range(old_from, old_to))
        elif tag == "insert":
            by_blocks.extend((*at, index) for index in range(new_from, new_to))
    if len(by_blocks) > 1:
        # deepdiff keeps whichever of the two matchings reports fewer differences, counted
        # before equal paths merge (a removed and an added item can share an index).
        by_items: list[Path] = []
        _item_by_item(old, new, at, by_items, old_from=0, old_to=len(old), new_from=0, new_to=len(new))
        if len(by_blocks) >= len(by_items):
            by_blocks = by_items
    found.extend(by_blocks)


def _item_by_item(old: list[Any], new: list[Any], at: Path, found: list[Path], *,
                  old_from: int, old_to: int, new_from: int, new_to: int) -> None:
    """The items of two slices paired by position. (deepdiff would report an item paired with
    an equal one at another index as moved; that cannot happen here: difflib's replaced
    slices hold no item equal to one on the other side, and whole lists pair by index.)"""
    pairs = zip_longest(old[old_from:old_to], new[new_from:new_to], fillvalue=_MISSING)
    for offset, (old_item, new_item) in enumerate(pairs):
        old_index, new_index = old_from + offset, new_from + offset
        if new_item is _MISSING:
            found.append((*at, old_index))
        elif old_item is _MISSING:
            found.append((*at, new_index))
        else:
            _walk(old_item, new_item, (*at, old_index), found)
