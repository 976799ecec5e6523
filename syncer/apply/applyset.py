"""The ApplySet inventory (KEP-3659, what `kubectl apply --prune --applyset` uses). Pure.

Each app has a parent object, a ConfigMap named `syncer-<app>` in the app's namespace, that
carries the ApplySet id label and records which group-kinds and namespaces the app's objects
live in. Every object syncer applies gets the `part-of` label with that id. Pruning looks for
objects with the label in exactly the recorded group-kinds and namespaces, so it never needs
to scan the cluster and never touches an object without the label.

Crash safety: before applying, the parent records the union of the old and new group-kinds and
namespaces; only after a complete, successful prune is it narrowed to the new set. A sync cut
off half-way therefore still knows every place its objects may be.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from syncer import __version__
from syncer.model import Object, ObjectRef

ID_LABEL = "applyset.kubernetes.io/id"
PART_OF_LABEL = "applyset.kubernetes.io/part-of"
TOOLING_ANNOTATION = "applyset.kubernetes.io/tooling"
GROUP_KINDS_ANNOTATION = "applyset.kubernetes.io/contains-group-kinds"
NAMESPACES_ANNOTATION = "applyset.kubernetes.io/additional-namespaces"
TOOLING = f"syncer/v{__version__}"
PARENT_PREFIX = "syncer-"


def applyset_id(*, name: str, namespace: str, kind: str = "ConfigMap", group: str = "") -> str:
    """The id of an ApplySet whose parent is the given object (KEP-3659's formula:
    base64url(sha256("<name>.<namespace>.<kind>.<group>")), unpadded, in `applyset-<..>-v1`)."""
    digest = hashlib.sha256(f"{name}.{namespace}.{kind}.{group}".encode()).digest()
    encoded = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return f"applyset-{encoded}-v1"


@dataclass(frozen=True)
class Inventory:
    """What the parent object says the app owns."""

    parent: ObjectRef
    id: str
    group_kinds: frozenset[str] = frozenset()
    namespaces: frozenset[str] = frozenset()
    exists: bool = False
    tooling: str | None = None

    @classmethod
    def for_app(cls, *, app: str, namespace: str) -> Inventory:
        parent_name = PARENT_PREFIX + app
        return cls(
            parent=ObjectRef(group="", kind="ConfigMap", namespace=namespace, name=parent_name),
            id=applyset_id(name=parent_name, namespace=namespace),
        )

    def read(self, live_parent: Object | None) -> Inventory:
        """This inventory as recorded on the live parent (empty when there is none)."""
        if live_parent is None:
            return Inventory(parent=self.parent, id=self.id)
        annotations = (live_parent.get("metadata") or {}).get("annotations") or {}
        return Inventory(
            parent=self.parent,
            id=self.id,
            group_kinds=_split(annotations.get(GROUP_KINDS_ANNOTATION)),
            namespaces=_split(annotations.get(NAMESPACES_ANNOTATION)),
            exists=True,
            tooling=annotations.get(TOOLING_ANNOTATION),
        )

    def including(self, refs: list[ObjectRef]) -> Inventory:
        """This inventory widened by the given objects' group-kinds and namespaces."""
        return Inventory(
            parent=self.parent,
            id=self.id,
            group_kinds=self.group_kinds | {ref.group_kind for ref in refs},
            namespaces=self.namespaces | {ref.namespace for ref in refs if ref.namespace},
            exists=self.exists,
            tooling=self.tooling,
        )

    def exactly(self, refs: list[ObjectRef]) -> Inventory:
        return Inventory(parent=self.parent, id=self.id, exists=self.exists, tooling=self.tooling).including(refs)

    def records_same(self, other: Inventory) -> bool:
        """Both record the same group-kinds and namespaces (the parent's own namespace is
        implied, so it does not count)."""
        home = {self.parent.namespace}
        return (self.group_kinds, self.namespaces - home) == (other.group_kinds, other.namespaces - home)

    def search_namespaces(self) -> list[str]:
        """Every namespace the app's namespaced objects may live in."""
        assert self.parent.namespace is not None
        return sorted(self.namespaces | {self.parent.namespace})

    def parent_body(self, *, extra_annotations: dict[str, str] | None = None) -> Object:
        """The parent ConfigMap as syncer applies it."""
        assert self.parent.namespace is not None
        additional = sorted(self.namespaces - {self.parent.namespace})
        annotations = {
            TOOLING_ANNOTATION: TOOLING,
            GROUP_KINDS_ANNOTATION: ",".join(sorted(self.group_kinds)),
            NAMESPACES_ANNOTATION: ",".join(additional),
            **(extra_annotations or {}),
        }
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.parent.name,
                "namespace": self.parent.namespace,
                "labels": {ID_LABEL: self.id},
                "annotations": annotations,
            },
        }


def tooling_name(tooling: str) -> str:
    """The tool an ApplySet's `applyset.kubernetes.io/tooling` names, without its version
    (`kubectl/v1.32.4` -> `kubectl`), as kubectl compares it: tools refuse each other's sets."""
    name, _, _ = tooling.rpartition("/")
    return name or tooling


def foreign_tooling(inventory: Inventory) -> str | None:
    """The tooling of an existing parent that another tool manages (kubectl's `apply
    --applyset`, ...), or None when it is syncer's or says nothing."""
    if inventory.tooling and tooling_name(inventory.tooling) != tooling_name(TOOLING):
        return inventory.tooling
    return None


def _split(value: str | None) -> frozenset[str]:
    return frozenset(item.strip() for item in (value or "").split(",") if item.strip())


def split_group_kind(group_kind: str) -> tuple[str, str]:
    """`Deployment.apps` -> ("apps", "Deployment"); `ConfigMap` -> ("", "ConfigMap")."""
    kind, _, group = group_kind.partition(".")
    return group, kind


def with_part_of(obj: Object, applyset: str) -> Object:
    """A copy of obj labelled as a member of the ApplySet."""
    metadata = dict(obj.get("metadata") or {})
    labels = dict(metadata.get("labels") or {})
    labels[PART_OF_LABEL] = applyset
    metadata["labels"] = labels
    return {**obj, "metadata": metadata}


def is_member(obj: Object, applyset: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(PART_OF_LABEL) == applyset
