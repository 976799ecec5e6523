"""Plain data shared by every stage of the pipeline: object identities and manifests."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

Object = dict[str, Any]
"""A Kubernetes object as decoded from YAML or JSON."""


class Action(StrEnum):
    """What a sync does, or would do, to one object: one vocabulary for the plan, the change
    set, `diff` and `sync` output (text and JSON), logs, metrics and the recorded status."""

    CREATED = "created"
    CONFIGURED = "configured"
    RECREATED = "recreated"
    """Deleted and created again: an immutable field changed and the object opted in."""
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    """Pruned: no longer in the source."""
    KEPT = "kept"
    """No longer in the source, but a named prune filter keeps it (a settled state)."""
    SKIPPED = "skipped"
    """Not attempted: pruning is off, or the sync stopped before the object's step."""
    FAILED = "failed"


CHANGING_ACTIONS = frozenset({Action.CREATED, Action.CONFIGURED, Action.RECREATED, Action.DELETED})
"""The actions that write an object; anything else leaves it as it is."""


def split_api_version(api_version: str) -> tuple[str, str]:
    """`apps/v1` -> ("apps", "v1"); `v1` -> ("", "v1") (the core group has no name)."""
    group, _, version = api_version.rpartition("/")
    return group, version


@dataclass(frozen=True, order=True)
class AppId:
    """An app's identity: the namespace that holds its inventory and lock, and its name.

    Two apps of one name in different namespaces are different apps: everything keyed by app
    (the daemon's schedule, heal routing, metrics, logs) is keyed by this, never by the name.
    """

    namespace: str
    name: str

    @property
    def key(self) -> str:
        """`namespace/name`: the daemon's schedule and shard assignment key."""
        return f"{self.namespace}/{self.name}"

    @classmethod
    def of_key(cls, key: str) -> AppId:
        namespace, _, name = key.partition("/")
        return cls(namespace=namespace, name=name)

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True, order=True)
class ObjectRef:
    """The identity of an object: group, kind, namespace (None when cluster-scoped), name.

    The version is deliberately not part of it: `apps/v1` and `apps/v1beta2` Deployments of
    the same name are the same object.
    """

    group: str
    kind: str
    namespace: str | None
    name: str

    @classmethod
    def of(cls, obj: Object) -> ObjectRef:
        metadata = obj.get("metadata") or {}
        group, _ = split_api_version(str(obj.get("apiVersion", "")))
        return cls(
            group=group,
            kind=str(obj.get("kind", "")),
            namespace=metadata.get("namespace") or None,
            name=str(metadata.get("name", "")),
        )

    @property
    def group_kind(self) -> str:
        """`Deployment.apps`, or `ConfigMap` for the core group (the ApplySet notation)."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def __str__(self) -> str:
        """`Kind/namespace/name`, or `Kind/name` for cluster-scoped objects."""
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"

    def qualified(self) -> str:
        """Like str(), with the group: `Deployment.apps/shop/web`."""
        if self.namespace:
            return f"{self.group_kind}/{self.namespace}/{self.name}"
        return f"{self.group_kind}/{self.name}"


@dataclass(frozen=True)
class Origin:
    """Where a manifest came from, for messages: a file, the document's index and line."""

    file: str
    document: int = 0
    line: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Manifest:
    """One desired object, rendered from the source, and where it came from."""

    obj: Object
    origin: Origin
    namespace_defaulted: bool = field(default=False)
    """True when the namespace was filled in from the app's default namespace, so it may be
    dropped if the cluster says the kind is cluster-scoped."""
    decrypted: bool = field(default=False, compare=False)
    """The document was SOPS-encrypted in the source (`syncer.sources.sops`): its values are
    as secret as a Secret's, whatever its kind, and are shown as a Secret's are."""

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef.of(self.obj)

    @property
    def api_version(self) -> str:
        return str(self.obj["apiVersion"])

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def annotations(self) -> dict[str, str]:
        return dict((self.obj.get("metadata") or {}).get("annotations") or {})


PROTECTED_KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("", False),
    "CustomResourceDefinition": ("apiextensions.k8s.io", False),
    "PersistentVolumeClaim": ("", True),
    "PersistentVolume": ("", False),
}
"""Kinds prune deletes only with a confirmation naming the object: kind -> (group, namespaced).
Deleting one takes more with it than the object: a Namespace everything in it, a CRD every
object of its kind, a PersistentVolumeClaim or PersistentVolume the data on the volume."""


def is_protected(ref: ObjectRef) -> bool:
    expected = PROTECTED_KINDS.get(ref.kind)
    return expected is not None and expected[0] == ref.group


def parse_confirmation(text: str) -> ObjectRef:
    """`KIND/NAME` (cluster-scoped) or `KIND/NAMESPACE/NAME` (a PersistentVolumeClaim): the
    protected object a `--confirm-prune` or an app's `pruneConfirmations` entry lets prune
    delete. The kind is matched without regard to case; ValueError says what is wrong."""
    parts = text.strip().split("/")
    kinds = {kind.lower(): kind for kind in PROTECTED_KINDS}
    kind = kinds.get(parts[0].lower()) if parts else None
    if kind is None:
        raise ValueError(f"{text!r}: {parts[0] or '(empty)'} is not a protected kind; only "
                         f"{', '.join(PROTECTED_KINDS)} need a confirmation to be pruned")
    group, namespaced = PROTECTED_KINDS[kind]
    shape = f"{kind}/NAMESPACE/NAME" if namespaced else f"{kind}/NAME"
    if len(parts) != (3 if namespaced else 2) or not all(parts[1:]):
        raise ValueError(f"{text!r}: write it as {shape}")
    return ObjectRef(group=group, kind=kind, namespace=parts[1] if namespaced else None, name=parts[-1])


@dataclass(frozen=True)
class PruneBudget:
    """How many of an app's members one sync may prune: `count` objects, or `percent` of the
    members. A percentage never stops a prune of fewer than `PERCENT_FLOOR` objects (one
    removal from a small app is already half of it); a count is exact (`0`: no prune at all
    without a confirmation)."""

    count: int | None = None
    percent: float | None = None

    PERCENT_FLOOR = 5

    def allowed(self, members: int) -> int:
        """The most objects a sync of an app of `members` members may prune."""
        if self.count is not None:
            return self.count
        return int(members * (self.percent or 0.0) / 100)

    def exceeded(self, *, deletions: int, members: int) -> bool:
        if self.count is not None:
            return deletions > self.count
        return deletions > self.allowed(members) and deletions >= self.PERCENT_FLOOR

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"


DEFAULT_PRUNE_BUDGET = PruneBudget(percent=50.0)
"""More than half of the app's members, and at least 5 objects: a sync stops and asks."""


def parse_prune_budget(value: object) -> PruneBudget:
    """`N` (objects) or `P%` (of the app's members, 0 to 100); ValueError says what is wrong."""
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 <= percent <= 100:
                raise ValueError
            return PruneBudget(percent=percent)
        count = int(text)
        if count < 0:
            raise ValueError
        return PruneBudget(count=count)
    except ValueError:
        raise ValueError(f"{value!r} is not a prune budget: a number of objects (10) or a percentage of "
                         "the app's members (50%, 0 to 100)") from None
