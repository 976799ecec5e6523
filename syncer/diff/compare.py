"""Decide per object whether a sync creates, updates, deletes or leaves it, and show how.

The caller does the talking to the server: for an update it passes what a server-side-apply
dry-run predicts, so defaults, admission webhooks and the merge itself are the server's, and
this module only has to compare two objects of the same shape. Secret values are masked
before any text is produced, so they cannot reach a diff, a log line or an error.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from syncer.diff.fieldsets import values_equal
from syncer.diff.ignore import IgnoreRule, apply_ignores
from syncer.diff.normalize import normalize
from syncer.diff.secrets import PROCESS_SALT, mask_secret
from syncer.diff.text import unified_yaml_diff
from syncer.model import Action, Object, ObjectRef

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_DEEPDIFF_LOCK = threading.Lock()
"""deepdiff parses path parts with ast.literal_eval, and CPython 3.11 before 3.11.8 can fail
compile() run from several threads at once ("AST constructor recursion depth mismatch",
cpython#106905): the planner's threads take turns."""


@dataclass(frozen=True)
class ObjectDiff:
    """What a sync does to one object, as data for printers and the plan."""

    ref: ObjectRef
    api_version: str
    action: Action
    diff: str
    """Unified diff of the masked, normalised YAML; "" when unchanged."""
    removed: tuple[str, ...] = ()
    """Readable paths the apply removes (see `removed_paths`); only set for updates."""
    changed: tuple[str, ...] = ()
    """Readable paths whose values differ (`.spec.replicas`), for one-line summaries in
    change sets, logs and Events; only set for updates. Masked values, like the diff."""


def changed_paths(before: Object, after: Object) -> tuple[str, ...]:
    """The differing leaves of two objects (`.spec.replicas`, `.spec.containers[0].image`,
    `.metadata.labels["app.kubernetes.io/name"]`), found by deepdiff."""
    # Imported here: deepdiff (with pydantic) takes a tenth of a second to import, and a
    # resync that changes nothing never gets here.
    from deepdiff import DeepDiff

    with _DEEPDIFF_LOCK:
        tree = DeepDiff(before, after, view="tree")
        return _readable_paths(tree)


def _readable_paths(tree: Any) -> tuple[str, ...]:
    paths = set()
    for changes in tree.values():
        for change in changes:
            readable = ""
            for step in change.path(output_format="list"):
                if isinstance(step, int):
                    readable += f"[{step}]"
                elif _PLAIN_KEY.fullmatch(str(step)):
                    readable += f".{step}"
                else:
                    readable += f'["{step}"]'
            paths.add(readable)
    return tuple(sorted(paths))


def _prepared(obj: Object, *, live: Object | None, ignore: Sequence[IgnoreRule], salt: bytes) -> Object:
    """Normalised, then masked (folding stringData into data, so ignore pointers into /data
    catch values given as stringData too), then with ignored fields removed."""
    masked = mask_secret(normalize(obj), salt=salt)
    return apply_ignores(masked, rules=ignore, live=live) if ignore else masked


def compare(
    *,
    ref: ObjectRef,
    api_version: str,
    live: Object | None,
    predicted: Object | None,
    ignore: Sequence[IgnoreRule] = (),
    salt: bytes = PROCESS_SALT,
    removed: Sequence[str] = (),
    text: bool = True,
    sides: tuple[str, str] = ("live", "desired"),
) -> ObjectDiff:
    """Compare `live` with `predicted` (what the object will be after the sync).

    - no live object: created; pass the desired manifest as `predicted`, so server defaults
      do not pollute the diff; ignore rules do not apply, the whole object is new;
    - no predicted object: deleted, the whole live object shown as removed;
    - both: unchanged when equal after normalising, masking and ignoring, else configured.

    With `text=False` the unified diff is left empty: rendering YAML is most of the cost of
    comparing, and a sync that prints no diff needs only the action. `sides` names the two
    objects in the diff's headers.
    """
    label = ref.qualified()
    if live is None and predicted is None:
        raise ValueError(f"{ref}: compare() needs a live or a predicted object")
    if live is None:
        assert predicted is not None
        if not text:
            return ObjectDiff(ref, api_version, Action.CREATED, "")
        after = _prepared(predicted, live=None, ignore=(), salt=salt)
        return ObjectDiff(ref, api_version, Action.CREATED, unified_yaml_diff(None, after, label=label, sides=sides))
    if predicted is None:
        if not text:
            return ObjectDiff(ref, api_version, Action.DELETED, "")
        before = _prepared(live, live=None, ignore=(), salt=salt)
        return ObjectDiff(ref, api_version, Action.DELETED, unified_yaml_diff(before, None, label=label, sides=sides))
    before = _prepared(live, live=live, ignore=ignore, salt=salt)
    after = _prepared(predicted, live=live, ignore=ignore, salt=salt)
    if values_equal(before, after):
        return ObjectDiff(ref, api_version, Action.UNCHANGED, "")
    return ObjectDiff(
        ref,
        api_version,
        Action.CONFIGURED,
        unified_yaml_diff(before, after, label=label, sides=sides) if text else "",
        removed=tuple(removed),
        changed=changed_paths(before, after),
    )
