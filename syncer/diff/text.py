"""Objects as YAML text and unified diffs between them, for people to read.

Both sides are dumped with one fixed key order (the server returns keys in its own order, a
manifest in the author's), so the text diff shows changed values only. The order follows
how manifests are usually written rather than the alphabet: apiVersion, kind, metadata,
spec, data first; `name` first in every nested map (a container reads best starting from its
name); everything else sorted.
"""

from __future__ import annotations

import difflib
from typing import Any

import yaml

from syncer.model import Object

try:
    from yaml import CSafeDumper as _BaseDumper
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]

TOP_LEVEL_ORDER = ("apiVersion", "kind", "metadata", "spec", "data", "stringData")
METADATA_ORDER = ("name", "generateName", "namespace", "labels", "annotations")
NESTED_ORDER = ("name",)

_WIDTH = 1 << 20
"""Never fold long strings: a folded line makes a one-character change look like several."""


class _Dumper(_BaseDumper):
    """Safe dumper that writes multi-line strings as `|` blocks, so a changed line in a
    ConfigMap script shows as that line in the diff rather than one huge quoted string."""


def _represent_str(dumper: _Dumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _ordered(value: Any, first: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        keys = [k for k in first if k in value]
        keys += sorted((k for k in value if k not in first), key=str)
        return {
            k: _ordered(value[k], METADATA_ORDER if k == "metadata" and first is TOP_LEVEL_ORDER
                        else NESTED_ORDER)
            for k in keys
        }
    if isinstance(value, list):
        return [_ordered(item, NESTED_ORDER) for item in value]
    return value


def to_yaml(obj: Object) -> str:
    """`obj` as block YAML in the stable, readable key order described above."""
    text: str = yaml.dump(
        _ordered(obj, TOP_LEVEL_ORDER),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=_WIDTH,
    )
    return text


def unified_yaml_diff(
    before: Object | None, after: Object | None, *, label: str, sides: tuple[str, str] = ("live", "desired"),
) -> str:
    """A unified diff (3 lines of context) from live `before` to desired `after`; "" if equal.

    None stands for "does not exist", so a create shows every line added and a delete every
    line removed. `sides` names the two in the file headers (two revisions, offline).
    """
    old = to_yaml(before).splitlines(keepends=True) if before is not None else []
    new = to_yaml(after).splitlines(keepends=True) if after is not None else []
    return "".join(
        difflib.unified_diff(old, new, fromfile=f"{label} ({sides[0]})", tofile=f"{label} ({sides[1]})", n=3)
    )
