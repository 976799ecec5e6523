"""Strip what the API server adds to an object, so live and desired compare by content.

A live object carries bookkeeping no manifest sets (uid, resourceVersion, managedFields,
status, ...). Left in, every object would look changed; so both sides of a diff go through
`normalize` first. The same module holds the one way syncer removes paths from an object
(`without_paths`), so that normalising, ignore rules and managed-field filtering all leave the
same shape behind: a map or list that *became* empty because its contents were removed is
dropped too, while one that was empty to begin with (`emptyDir: {}`) is kept, as it means
something.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from syncer.model import Object

Path = tuple[str | int, ...]
"""A concrete location in an object: map keys and list indices, outermost first."""

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"

SERVER_METADATA: tuple[str, ...] = (
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
    "deletionGracePeriodSeconds",
)
"""metadata fields the server writes; no manifest sets them, so they are never drift."""

NOISE_ANNOTATIONS: tuple[str, ...] = (
    LAST_APPLIED_ANNOTATION,
    "deprecated.daemonset.template.generation",
)
"""Annotations written by tools or controllers as a side effect of an apply, not by the user.
The client-side-apply record also duplicates the whole object (and a Secret's values)."""


class _Removed:
    """Marks a spot to delete; `_prune` sweeps the marks out in one pass, so removing list
    item 0 does not shift the index of the next path to remove."""

    def __repr__(self) -> str:
        return "<removed>"


_REMOVED = _Removed()


def normalize(obj: Object) -> Object:
    """A deep copy of `obj` without server-managed noise.

    Drops the server's metadata (`SERVER_METADATA`), top-level `status` (not ours to set and
    never part of an apply), the `NOISE_ANNOTATIONS`, and every `None` value: in a manifest,
    `key: null` means "unset", which is how the server stores it. `metadata.labels` and
    `metadata.annotations` are dropped when empty, since the server omits empty maps there.
    """
    # `_prune` below rebuilds every map and list, so the result shares nothing mutable with
    # `obj`; only the maps marked here need copying first (a deep copy of a live object,
    # managedFields and all, was most of the cost of a resync that changes nothing).
    result = dict(obj)
    result.pop("status", None)
    metadata = result.get("metadata")
    if isinstance(metadata, dict):
        metadata = result["metadata"] = dict(metadata)
        if isinstance(metadata.get("annotations"), dict):
            metadata["annotations"] = dict(metadata["annotations"])
        for key in SERVER_METADATA:
            if key in metadata:
                metadata[key] = _REMOVED
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict):
            for key in NOISE_ANNOTATIONS:
                if key in annotations:
                    annotations[key] = _REMOVED
        for key in ("labels", "annotations"):
            if key in metadata and not metadata[key]:
                metadata[key] = _REMOVED
    cleaned, _ = _prune(result)
    assert isinstance(cleaned, dict)
    return cleaned


def without_paths(obj: Object, paths: Iterable[Path]) -> Object:
    """A deep copy of `obj` with each of `paths` removed; paths that do not exist are skipped.

    Maps and lists left empty by a removal are removed as well, so that removing the only
    annotation from one side and nothing from a side without annotations compares equal.
    """
    paths = list(paths)
    # Without paths nothing is marked, and `_prune` alone copies (see `normalize`).
    result = copy.deepcopy(obj) if paths else obj
    for path in paths:
        _mark(result, path)
    cleaned, _ = _prune(result)
    assert isinstance(cleaned, dict)
    return cleaned


def _mark(root: Any, path: Path) -> None:
    if not path:
        return
    parent = root
    for step in path[:-1]:
        parent = _step(parent, step)
        if parent is None or parent is _REMOVED:
            return
    last = path[-1]
    if isinstance(parent, dict) and isinstance(last, str) and last in parent:
        parent[last] = _REMOVED
    elif isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
        parent[last] = _REMOVED


def _step(value: Any, step: str | int) -> Any:
    if isinstance(value, dict) and isinstance(step, str):
        return value.get(step)
    if isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value):
        return value[step]
    return None


def _prune(value: Any) -> tuple[Any, bool]:
    """(value without removal marks and `None` map values, whether it became empty by that)."""
    if isinstance(value, dict):
        kept: dict[str, Any] = {}
        lost = False
        for key, item in value.items():
            if item is None or item is _REMOVED:
                lost = True
                continue
            cleaned, emptied = _prune(item)
            if emptied:
                lost = True
                continue
            kept[key] = cleaned
        return kept, lost and not kept
    if isinstance(value, list):
        items: list[Any] = []
        lost = False
        for item in value:
            if item is _REMOVED:
                lost = True
                continue
            cleaned, emptied = _prune(item)
            if emptied:
                lost = True
                continue
            items.append(cleaned)
        return items, lost and not items
    return value, False
