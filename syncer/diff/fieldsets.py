"""Field ownership from `metadata.managedFields`: what syncer set last time, and what others own.

This is the "last applied" leg of the three-way diff. Server-side apply records, per field
manager, the set of fields it owns as a `fieldsV1` tree:

    f:<name>        the map key <name>
    k:{"name":"web"} the list item whose associative keys have these values
    v:<json>        the set item equal to <json>
    i:<n>           the list item at index n
    .               the node itself (a list item or map the manager created)

A field syncer owns that the desired object no longer sets is one the next apply removes; a
field owned only by another manager (an HPA's replicas, a label added with `kubectl label`)
is none of syncer's business and is never reported as removed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from syncer.diff.normalize import Path, normalize
from syncer.model import Object

FieldSet = dict[str, Any]
"""A parsed `fieldsV1` tree (nested dicts keyed by `f:`/`k:`/`v:`/`i:` and `.`)."""

LIST_KEY_DEFAULTS: Mapping[str, Any] = {"protocol": "TCP"}
"""List-map key fields the server defaults. The managed-fields key of a container or Service
port always carries `protocol`, while a manifest may leave it out and mean TCP."""

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _entries(live: Object) -> list[dict[str, Any]]:
    metadata = live.get("metadata")
    entries = metadata.get("managedFields") if isinstance(metadata, dict) else None
    if not isinstance(entries, list):
        return []
    return [
        entry
        for entry in entries
        if isinstance(entry, dict)
        and entry.get("fieldsType", "FieldsV1") == "FieldsV1"
        and isinstance(entry.get("fieldsV1"), dict)
    ]


def merge_fields(sets: Iterable[FieldSet]) -> FieldSet:
    """The union of field sets."""
    merged: FieldSet = {}
    for fields in sets:
        for element, child in fields.items():
            existing = merged.get(element)
            if isinstance(existing, dict) and isinstance(child, dict):
                merged[element] = merge_fields([existing, child])
            else:
                merged[element] = merge_fields([child]) if isinstance(child, dict) else {}
    return merged


def owned_fields(live: Object, manager: str) -> FieldSet | None:
    """The fields `manager` owns through server-side apply of the object itself, or None.

    Only `operation: Apply` entries on the main resource count: fields the same manager name
    set with a plain update are not part of its apply intent, and an apply never removes them.
    The entry's `apiVersion` is ignored; field paths are the same across versions syncer uses.
    """
    owned = merge_fields(
        entry["fieldsV1"]
        for entry in _entries(live)
        if entry.get("manager") == manager
        and entry.get("operation") == "Apply"
        and not entry.get("subresource")
    )
    return owned or None


def managed_by(live: Object, managers: Iterable[str]) -> FieldSet:
    """Every field any of `managers` owns, by apply or update, through any subresource
    (an HPA writes `spec.replicas` through `scale`)."""
    wanted = set(managers)
    return merge_fields(e["fieldsV1"] for e in _entries(live) if e.get("manager") in wanted)


def values_equal(a: Any, b: Any) -> bool:
    """Deep equality as the API server sees it: 1 == 1.0, but true != 1 and "1" != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and bool(a == b)


def _children(node: Any) -> bool:
    return isinstance(node, dict) and any(element != "." for element in node)


def _scalar_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def describe(element: str) -> str:
    """One fieldsV1 element as a readable path segment: `.name`, `["a.b/c"]`, `[name=web]`."""
    prefix, _, raw = element.partition(":")
    if prefix == "f":
        return f".{raw}" if _PLAIN_KEY.fullmatch(raw) else f"[{json.dumps(raw)}]"
    try:
        parsed = json.loads(raw) if prefix in ("k", "v") else None
    except ValueError:
        return f"[{element}]"
    if prefix == "k" and isinstance(parsed, dict):
        return "[" + ",".join(f"{k}={_scalar_text(v)}" for k, v in parsed.items()) + "]"
    if prefix == "v":
        return f"[{_scalar_text(parsed)}]"
    if prefix == "i" and raw.isdigit():
        return f"[{raw}]"
    return f"[{element}]"


def _key_matches(item: Any, key: dict[str, Any]) -> bool:
    if not isinstance(item, dict):
        return False
    return all(values_equal(item.get(f, LIST_KEY_DEFAULTS.get(f)), want) for f, want in key.items())


def resolve_element(value: Any, element: str) -> tuple[str | int, Any] | None:
    """The (key or index, child value) `element` names inside `value`, or None if absent."""
    prefix, _, raw = element.partition(":")
    if prefix == "f":
        if isinstance(value, dict) and value.get(raw) is not None:
            return raw, value[raw]
        return None
    if not isinstance(value, list):
        return None
    if prefix == "i":
        index = int(raw) if raw.isdigit() else -1
        return (index, value[index]) if 0 <= index < len(value) else None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    for index, item in enumerate(value):
        if prefix == "k" and isinstance(parsed, dict) and _key_matches(item, parsed):
            return index, item
        if prefix == "v" and values_equal(item, parsed):
            return index, item
    return None


def _units(element: str, node: Any, readable: str) -> Iterator[str]:
    """What removing an owned subtree takes away, for messages: a list item goes as a whole;
    a map is listed key by key, because other managers' keys in it stay."""
    if element.startswith("f:") and _children(node):
        for child_element, child in node.items():
            if child_element != ".":
                yield from _units(child_element, child, readable + describe(child_element))
    else:
        yield readable


def _key_fields(element: str) -> frozenset[str]:
    """The associative key fields of a `k:` element: an item matched by its key sets them,
    even where it leaves a defaulted one (`protocol`) out."""
    if not element.startswith("k:"):
        return frozenset()
    try:
        parsed = json.loads(element[2:])
    except ValueError:
        return frozenset()
    return frozenset(f"f:{field}" for field in parsed) if isinstance(parsed, dict) else frozenset()


def _missing(
    node: FieldSet, value: Any, readable: str, implied: frozenset[str] = frozenset()
) -> Iterator[str]:
    for element, child in node.items():
        if element == "." or element in implied:
            continue
        here = readable + describe(element)
        found = resolve_element(value, element)
        if found is None:
            yield from _units(element, child, here)
        elif _children(child):
            yield from _missing(child, found[1], here, _key_fields(element))


def removed_paths(desired: Object, owned: FieldSet) -> list[str]:
    """Readable paths syncer owns that `desired` no longer sets, i.e. what the apply removes:
    `.metadata.labels.tier`, `.spec.template.spec.containers[name=web].env[name=DEBUG]`.

    `desired` must be the object as it will be applied (with anything syncer adds to it).
    A `null` value in desired counts as not set.
    """
    return list(_missing(owned, desired, ""))


def present_paths(obj: Object, fields: FieldSet) -> list[Path]:
    """The concrete paths in `obj` of the fields in `fields` that `obj` has.

    A list item the field set owns as a whole (`.`) is one path; a map is resolved to its keys,
    since a map one manager created usually holds keys of others (labels). This deliberately
    differs from structured-merge-diff, which would remove such a map entirely.
    """
    return list(_present(fields, obj, ()))


def resolved(node: FieldSet, value: Any, path: Path) -> Iterator[tuple[str, Any, Path, Any]]:
    """Each element of the field set `node` that `value` (found at `path`) has: the element,
    its own field set, its concrete path and its value."""
    for element, child in node.items():
        if element == ".":
            continue
        found = resolve_element(value, element)
        if found is not None:
            yield element, child, (*path, found[0]), found[1]


def _present(node: FieldSet, value: Any, path: Path) -> Iterator[Path]:
    for element, child, here, sub in resolved(node, value, path):
        if _children(child):
            if element.startswith("f:") or "." not in child:
                yield from _present(child, sub, here)
            else:
                yield here
        elif not element.startswith("f:") or not child:
            yield here
        # else: a map owned only as `.` (created, keys since taken over by others): the keys
        # are not this manager's, so nothing of it is removed.


def _subset(desired: Any, live: Any) -> bool:
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        return all(
            live.get(key) is None if value is None else key in live and _subset(value, live[key])
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(_subset(d, l) for d, l in zip(desired, live))
        )
    return values_equal(desired, live)


def is_subset(desired: Object, live: Object) -> bool:
    """Whether every value `desired` sets equals `live`'s value at the same place.

    Lists are compared conservatively (same length, element-wise subset, in order): a merge
    by key could make other lists equal too, but False only means "not proven" and the caller
    then asks the server with a dry-run. Quantities ("500m" vs "0.5") are left to the server
    the same way.
    """
    return _subset(desired, live)


def proven_unchanged(desired: Object, live: Object, *, manager: str) -> bool:
    """The cheap local proof that applying `desired` would change nothing on `live`.

    Everything desired sets is already live, and no field `manager` owns is missing from
    desired (or the apply would remove it). Fields owned by no-one or by others are fine as
    long as they are equal. When `manager` owns nothing yet this is False: the apply would
    record ownership, and only owned fields are removed when Git later drops them.
    """
    owned = owned_fields(live, manager)
    if owned is None:
        return False
    wanted = normalize(desired)
    return is_subset(wanted, live) and not removed_paths(wanted, owned)
