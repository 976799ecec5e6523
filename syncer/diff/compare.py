"""Decide per object whether a sync creates, updates, deletes or leaves it, and show how.

The caller does the talking to the server: for an update it passes what a server-side-apply
dry-run predicts, so defaults, admission webhooks and the merge itself are the server's, and
this module only has to compare two objects of the same shape. Secret values are masked
before any text is produced, so they cannot reach a diff, a log line or an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from syncer.diff.explain import FieldChange, explain, render_path
from syncer.diff.fieldsets import values_equal
from syncer.diff.ignore import IgnoreRule, apply_ignores
from syncer.diff.normalize import normalize
from syncer.diff.secrets import PROCESS_SALT, mask_secret
from syncer.diff.structural import differing
from syncer.diff.text import unified_yaml_diff
from syncer.model import Action, Object, ObjectRef

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
    fields: tuple[FieldChange, ...] = ()
    """Every field that differs between Git and the cluster, with its cause (`explain`): the
    changes first, then what is not a change (defaults, other managers' fields). Only set for
    updates and re-creations; paths as `changed_paths` renders them, values masked."""

    @property
    def changed(self) -> tuple[str, ...]:
        """The paths of the fields that change (`.spec.replicas`), for one-line summaries in
        change sets, logs and Events."""
        return tuple(f.path for f in self.fields if f.is_change)


def changed_paths(before: Object, after: Object) -> tuple[str, ...]:
    """The differing leaves of two objects (`.spec.replicas`, `.spec.containers[0].image`,
    `.metadata.labels["app.kubernetes.io/name"]`), as deepdiff finds them (`structural`)."""
    return tuple(sorted({render_path(path) for path in differing(before, after)}))


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
    manager: str = "syncer",
    desired: Object | None = None,
) -> ObjectDiff:
    """Compare `live` with `predicted` (what the object will be after the sync).

    - no live object: created; pass the desired manifest as `predicted`, so server defaults
      do not pollute the diff; ignore rules do not apply, the whole object is new;
    - no predicted object: deleted, the whole live object shown as removed;
    - both: unchanged when equal after normalising, masking and ignoring, else configured,
      each differing field explained (`explain`; `manager` is syncer's field manager and
      `desired` the manifest). An object whose only differences the server made (defaults)
      is unchanged: the apply would not change a field the source sets.

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
    fields = explain(live=live, predicted=predicted, after=after, changed=differing(before, after),
                     manager=manager, desired=desired)
    if not any(f.is_change for f in fields):
        return ObjectDiff(ref, api_version, Action.UNCHANGED, "")
    return ObjectDiff(
        ref,
        api_version,
        Action.CONFIGURED,
        unified_yaml_diff(before, after, label=label, sides=sides) if text else "",
        removed=tuple(removed),
        fields=fields,
    )
