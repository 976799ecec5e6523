"""What the daemon's watch cache keeps of an object: what plans, proofs and health read.

The daemon caches its Apps' objects as decoded JSON: 51 KiB per App of Flux's unit, half of
it `metadata.managedFields` (bench/RESULTS.md, "1,000 Apps, one replica, after the lean
changes"; 31 KiB as kept here). Its readers
(`syncer.diff.fieldsets`: the three-way proof and the fields syncer would remove;
`syncer.diff.explain`: who set a changed field; `syncer.apply.filters.never_applied`: whether
syncer ever applied it; ignore rules by manager) read, of each entry, the manager, the
operation, the subresource, the time and the `fieldsV1` tree, and no path under `status`:
every comparison drops the top-level `status` first (`syncer.diff.normalize`). So:

- an entry written through the `status` subresource loses its `f:status` tree (what it owns
  there can only be status); the entry itself stays, so every manager is still named; entries
  of the object itself keep theirs (a kind without a status subresource may have its status
  applied);
- an entry's `apiVersion` goes (field paths are the same across the versions syncer reads);
- every mapping key, and the few strings entries repeat, is interned: the JSON decoder shares
  a key only within one response, and a thousand Deployments repeat the same few hundred;
- the leaves of a `fieldsV1` tree, each an empty mapping, are one shared empty mapping. Its
  readers never write to a tree (a merge builds a new one); `copy.deepcopy` of an object gives
  separate ones again.

The object's `status` itself stays: health reads it.
"""

from __future__ import annotations

import sys
from typing import Any

from syncer.model import Object

_ENTRY_FIELDS = ("manager", "operation", "subresource", "time", "fieldsType", "fieldsV1")
_INTERNED_VALUES = ("manager", "operation", "subresource", "fieldsType")
_LEAF: dict[str, Any] = {}
"""The one empty mapping every `fieldsV1` leaf is (see the module docstring)."""


def slim(obj: Object) -> Object:
    """`obj` as the watch cache keeps it (see the module docstring); `obj` is not changed."""
    slimmed: Object = _interned(obj)
    metadata = slimmed.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("managedFields"), list):
        metadata["managedFields"] = [_entry(entry) for entry in metadata["managedFields"]]
    return slimmed


def _entry(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return entry
    fields = entry.get("fieldsV1")
    if isinstance(fields, dict) and entry.get("subresource") == "status":
        fields = {k: v for k, v in fields.items() if k != "f:status"}
    kept = {k: entry[k] for k in _ENTRY_FIELDS if k in entry}
    for key in _INTERNED_VALUES:
        if isinstance(kept.get(key), str):
            kept[key] = sys.intern(kept[key])
    if isinstance(fields, dict):
        kept["fieldsV1"] = _tree(fields) if fields else {}
    return kept


def _tree(fields: dict[str, Any]) -> dict[str, Any]:
    return {sys.intern(k): (_tree(v) if v else _LEAF) if isinstance(v, dict) else v for k, v in fields.items()}


def _interned(value: Any) -> Any:
    """A copy of decoded JSON with every mapping key interned."""
    if isinstance(value, dict):
        return {sys.intern(k) if isinstance(k, str) else k: _interned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interned(item) for item in value]
    return value
