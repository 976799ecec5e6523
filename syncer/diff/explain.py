"""Why each field of an object differs: the source, another manager, a removal, the server.

A diff says *what* changes; this module says *why*, per field, from the three legs syncer
already has: the live object with its `managedFields` (who set each field, and when), the
server's prediction of the object after the apply (its `managedFields` name exactly the
fields the applied manifest sets, so no schema is needed to match list items by key), and,
on servers where syncer updates instead of applying (`syncer.apply.updateapply`), the
`syncer.dev/last-applied` annotation that records what syncer applied before.

Causes of a change (`CHANGE_CAUSES`):
    git      the source sets the field to a new value (Git changed it since syncer applied it);
    drift    the source sets it and another manager owns it live: someone changed a field
             syncer set; the apply takes it back (a forced conflict);
    removed  syncer owned it and the source no longer sets it: the apply removes it.
Not changes (listed so that every difference between Git and the cluster has its reason):
    default  the server fills it (or changes it as a consequence of the apply);
    foreign  another manager owns it and the source does not set it: left alone.

One limit, from what the server records: a field another manager *deleted* has no owner left,
so the apply that puts it back explains it as `git`, not `drift`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from syncer.diff.fieldsets import FieldSet, resolved
from syncer.diff.normalize import Path
from syncer.model import Object

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_IDENTITY: frozenset[Path] = frozenset({("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")})
"""Set by every manifest, and recorded in no manager's fields."""

UPDATE_LAST_APPLIED = "syncer.dev/last-applied"
"""Where syncer records what it applied on servers it cannot server-side apply (the constant
of `syncer.apply.updateapply`, which the diff layer must not import)."""


class Cause(StrEnum):
    GIT = "git"
    DRIFT = "drift"
    REMOVED = "removed"
    DEFAULT = "default"
    FOREIGN = "foreign"


CHANGE_CAUSES = frozenset({Cause.GIT, Cause.DRIFT, Cause.REMOVED})
"""The causes that make a field a change: the only ones counted, and the only ones that make
`syncer diff` exit 1."""


@dataclass(frozen=True)
class FieldChange:
    """One field that differs between Git and the cluster, and why."""

    path: str
    """As `changed_paths` renders it: `.spec.replicas`, `.spec.containers[0].image`."""
    cause: Cause
    manager: str | None = None
    """drift, foreign: the field manager that owns it live; git: the one the apply takes it
    over from, if any."""
    time: str | None = None
    """The time of `manager`'s managedFields entry (when it last changed its fields)."""
    takes_over: bool = False
    """The apply takes the field over from `manager` (a conflict, forced)."""

    @property
    def is_change(self) -> bool:
        return self.cause in CHANGE_CAUSES

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "cause": str(self.cause)}
        if self.manager is not None:
            data["manager"] = self.manager
        if self.time is not None:
            data["time"] = self.time
        if self.takes_over:
            data["takesOver"] = True
        return data

    def describe(self) -> str:
        """`drift: kubectl-scale at 2026-12-02T13:10:00Z, takes over .spec.replicas from kubectl-scale`."""
        text = str(self.cause)
        if self.manager is not None and self.cause is not Cause.GIT:
            text += f": {self.manager}" + (f" at {self.time}" if self.time else "")
        if self.takes_over and self.manager is not None:
            text += f", takes over {self.path} from {self.manager}"
        if not self.is_change:
            text += " (not a change)"
        return text


@dataclass(frozen=True)
class Owner:
    """A managedFields entry, as far as explanations need it."""

    manager: str
    operation: str
    time: str | None
    subresource: str = ""


@dataclass(frozen=True)
class Ownership:
    """Who owns which concrete paths of one object.

    `whole`: fields owned outright (fieldsV1 leaves: a scalar, or an atomic map or list,
    everything below included); `items`: list items a manager created (`.`), whose own
    fields are listed separately, so they do not own what is below them; `below`: for each
    path above an owned one, everyone owning something under it."""

    whole: Mapping[Path, frozenset[Owner]]
    items: Mapping[Path, frozenset[Owner]]
    below: Mapping[Path, frozenset[Owner]]

    def owners(self, path: Path) -> frozenset[Owner]:
        """The owners of `path`: of the path itself, else of the nearest ancestor owned
        outright, else everyone owning something below it (a map added or removed whole)."""
        exact = self.whole.get(path, frozenset()) | self.items.get(path, frozenset())
        if exact:
            return exact
        for depth in range(len(path) - 1, 0, -1):
            above = self.whole.get(path[:depth])
            if above:
                return above
        return self.below.get(path, frozenset())


def parse_entries(obj: Object) -> list[tuple[Owner, FieldSet]]:
    """The FieldsV1 entries of `obj`'s managedFields, each with its owner."""
    metadata = obj.get("metadata")
    entries = metadata.get("managedFields") if isinstance(metadata, dict) else None
    parsed: list[tuple[Owner, FieldSet]] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("fieldsType", "FieldsV1") != "FieldsV1":
            continue
        fields = entry.get("fieldsV1")
        if not isinstance(fields, dict):
            continue
        owner = Owner(manager=str(entry.get("manager", "")), operation=str(entry.get("operation", "")),
                      time=entry.get("time") if isinstance(entry.get("time"), str) else None,
                      subresource=str(entry.get("subresource") or ""))
        parsed.append((owner, fields))
    return parsed


def owned_paths(obj: Any, fields: FieldSet) -> tuple[list[Path], list[Path]]:
    """The concrete paths in `obj` that `fields` owns: (outright, list items created).

    `k:{"name":"web"}` and `v:"x"` find the item by its key or value wherever it sits in the
    list, `i:3` by index; fields `obj` does not have are left out."""
    whole: list[Path] = []
    items: list[Path] = []
    for path, is_item in _walk_owned(fields, obj, ()):
        (items if is_item else whole).append(path)
    return whole, items


def _walk_owned(node: FieldSet, value: Any, path: Path) -> Iterator[tuple[Path, bool]]:
    for element, child, here, sub in resolved(node, value, path):
        if not isinstance(child, dict) or not child:
            yield here, False
            continue
        if "." in child and not element.startswith("f:"):
            yield here, True
        yield from _walk_owned(child, sub, here)


def ownership(obj: Object) -> Ownership:
    """Every manager's fields in `obj`, resolved to concrete paths."""
    whole: dict[Path, set[Owner]] = {}
    items: dict[Path, set[Owner]] = {}
    below: dict[Path, set[Owner]] = {}
    for owner, fields in parse_entries(obj):
        owned, created = owned_paths(obj, fields)
        for table, paths in ((whole, owned), (items, created)):
            for path in paths:
                table.setdefault(path, set()).add(owner)
                for depth in range(1, len(path)):
                    below.setdefault(path[:depth], set()).add(owner)
    return Ownership(*({p: frozenset(o) for p, o in table.items()} for table in (whole, items, below)))


def _is_syncer(owner: Owner, manager: str) -> bool:
    """syncer's own entries: its applies, and its updates where it cannot apply."""
    return owner.manager == manager


def _latest(owners: Iterable[Owner]) -> Owner | None:
    return max(owners, key=lambda o: (o.time or "", o.manager), default=None)


def _sets(obj: Any, path: Path) -> bool:
    """Whether the manifest `obj` sets `path`, something above it or something below it, for
    objects whose ownership the server does not record. A list is the manifest's as a whole:
    without the schema its items cannot be matched by key."""
    value = obj
    for step in path:
        if isinstance(value, list):
            return True
        if not isinstance(value, dict):
            return True
        if not isinstance(step, str) or value.get(step) is None:
            return False
        value = value[step]
    return True


def _last_applied(obj: Object | None) -> Object | None:
    annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    try:
        recorded = json.loads(annotations.get(UPDATE_LAST_APPLIED, ""))
    except ValueError:
        return None
    return recorded if isinstance(recorded, dict) else None


@dataclass(frozen=True)
class Legs:
    """What an explanation is decided from, parsed once per object."""

    manager: str
    live: Ownership
    after: Ownership
    applied_before: bool
    """syncer has applied this object before (it owns fields of it live)."""
    tracked: bool
    """The server records ownership of the predicted object: the apply was a server-side apply."""
    last_applied: Object | None
    desired: Object | None

    @classmethod
    def of(cls, *, live: Object, predicted: Object, desired: Object | None, manager: str) -> Legs:
        live_ownership, after = ownership(live), ownership(predicted)
        syncer_after = any(_is_syncer(o, manager) for owners in after.whole.values() for o in owners)
        return cls(
            manager=manager, live=live_ownership, after=after,
            applied_before=any(_is_syncer(o, manager) and o.operation == "Apply"
                               for o, _ in parse_entries(live)) or _last_applied(live) is not None,
            tracked=syncer_after, last_applied=_last_applied(live),
            desired=desired if desired is not None else _last_applied(predicted),
        )

    def sets_now(self, path: Path) -> bool:
        """Whether the source sets `path`; with neither the server's record nor the manifest,
        every difference is taken for the source's (a change, never hidden as a default)."""
        if self.tracked:
            return any(_is_syncer(o, self.manager) for o in self.after.owners(path))
        return self.desired is None or _sets(self.desired, path)

    def set_before(self, path: Path) -> bool:
        if any(_is_syncer(o, self.manager) for o in self.live.owners(path)):
            return True
        return self.last_applied is not None and _sets(self.last_applied, path)


def explain_change(path: Path, legs: Legs) -> FieldChange:
    """The cause of one path whose value differs between the live and the predicted object."""
    readable = render_path(path)
    if legs.sets_now(path):
        others = [o for o in legs.live.owners(path) if not _is_syncer(o, legs.manager)]
        taker = _latest(others)
        if taker is None:
            return FieldChange(readable, Cause.GIT)
        cause = Cause.DRIFT if legs.applied_before else Cause.GIT
        return FieldChange(readable, cause, manager=taker.manager, time=taker.time, takes_over=True)
    if legs.set_before(path):
        return FieldChange(readable, Cause.REMOVED)
    return FieldChange(readable, Cause.DEFAULT)


def explain_unchanged(after: Any, legs: Legs, *, changed: Iterable[Path]) -> list[FieldChange]:
    """The fields of the object after the sync that the source does not set and the sync does
    not change: server defaults and other managers' fields, each subtree of one cause (and
    one manager) named once at its root."""
    found: list[FieldChange] = []
    _label(after, (), legs, skip=set(changed) | _IDENTITY, found=found)
    return found


_Label = tuple[Cause, Owner | None]


def _field(path: Path, label: _Label) -> FieldChange:
    cause, owner = label
    return FieldChange(render_path(path), cause, manager=owner.manager if owner else None,
                       time=owner.time if owner else None)


def _label(value: Any, path: Path, legs: Legs, *, skip: set[Path], found: list[FieldChange]) -> _Label | None:
    """The one (cause, owner) of everything under `path`, or None when it is Git's or mixed
    (its parts then added to `found`)."""
    if path in skip:
        return None
    children: list[tuple[Path, Any]] = []
    if isinstance(value, dict):
        children = [((*path, k), v) for k, v in value.items()]
    elif isinstance(value, list):
        children = [((*path, i), v) for i, v in enumerate(value)]
    if path and (not children or path in legs.after.whole):
        return _leaf_label(path, legs)
    labels = [(child, _label(sub, child, legs, skip=skip, found=found)) for child, sub in children]
    first = labels[0][1]
    if path and first is not None and all(lab == first for _, lab in labels):
        return first
    found.extend(_field(child, lab) for child, lab in labels if lab is not None)
    return None


def _leaf_label(path: Path, legs: Legs) -> _Label | None:
    if legs.sets_now(path):
        return None
    others = [o for o in legs.after.owners(path) if not _is_syncer(o, legs.manager)]
    taker = _latest(others)
    return (Cause.FOREIGN, taker) if taker is not None else (Cause.DEFAULT, None)


def explain(*, live: Object, predicted: Object, after: Object, changed: Iterable[Path],
            manager: str, desired: Object | None = None) -> tuple[FieldChange, ...]:
    """Every field that differs between Git and the cluster, with its cause: the `changed`
    paths (live vs predicted) first, then what the sync leaves as it is (`after`, the
    predicted object as compared, without what is ignored).

    `live` and `predicted` are the server's objects, managedFields included; `desired` is
    the manifest, needed only where the server does not track ownership."""
    legs = Legs.of(live=live, predicted=predicted, desired=desired, manager=manager)
    changed = sorted(set(changed), key=render_path)
    changes = [explain_change(path, legs) for path in changed]
    rest = explain_unchanged(after, legs, changed=changed)
    return tuple(changes) + tuple(sorted(rest, key=lambda f: f.path))


def render_path(path: Path) -> str:
    """`.spec.replicas`, `.spec.containers[0].image`, `.metadata.labels["app.kubernetes.io/name"]`:
    list items by index, keys that are not plain names quoted."""
    readable = ""
    for step in path:
        if isinstance(step, int):
            readable += f"[{step}]"
        elif _PLAIN_KEY.fullmatch(step):
            readable += f".{step}"
        else:
            readable += f'["{step}"]'
    return readable
