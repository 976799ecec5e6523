"""Ownership between apps: which desired objects an app may not apply.

An object labelled as a member of another app's ApplySet is that app's: applying it would
silently move its fields and, later, let this app prune it. Taking it over is explicit (the
manifest annotation `syncer.dev/adopt: "true"`). An ApplySet parent is never a member of any
set. Found at plan time, so a refused object fails validation and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from syncer.apply.applyset import ID_LABEL, PART_OF_LABEL, PARENT_PREFIX, Inventory
from syncer.errors import ClusterError, Forbidden, NotFound
from syncer.kube import Kube
from syncer.model import Object, ObjectRef, Origin

ADOPT_ANNOTATION = "syncer.dev/adopt"


def opted_in(body: Object, annotation: str) -> bool:
    """The manifest sets this syncer.dev annotation to "true"."""
    return ((body.get("metadata") or {}).get("annotations") or {}).get(annotation) == "true"


def _owning_app(kube: Kube, applyset: str, *, near: Iterable[str | None]) -> str:
    """A readable name for the app that owns an ApplySet id: its parent ConfigMap, found by
    the id label (cluster-wide, else in the namespaces we can read)."""
    configmaps = kube.resource_for("v1", "ConfigMap")
    selector = f"{ID_LABEL}={applyset}"
    parents: list[Object] = []
    for namespace in [None, *sorted({n for n in near if n})]:
        try:
            parents = kube.list(configmaps, namespace=namespace, label_selector=selector)
        except (Forbidden, NotFound):
            continue
        if parents:
            break
    for parent in parents:
        name, namespace = parent["metadata"]["name"], parent["metadata"].get("namespace")
        if name.startswith(PARENT_PREFIX):
            return f"app {name[len(PARENT_PREFIX):]} (namespace {namespace})"
        return f"the ApplySet of ConfigMap/{namespace}/{name}"
    return f"another ApplySet ({applyset})"


class Desired(Protocol):
    """What ownership needs of a planned object."""

    @property
    def ref(self) -> ObjectRef: ...
    @property
    def body(self) -> Object: ...
    @property
    def live(self) -> Object | None: ...
    @property
    def origin(self) -> Origin: ...


def ownership_failures(
    kube: Kube, desired: Iterable[Desired], *, inventory: Inventory, app: str, namespace: str,
    legacy: Inventory | None = None,
) -> list[ClusterError]:
    """Objects this app may not apply: another app's members (unless the manifest opts in to
    taking them over) and ApplySet parents, which are never members of any set. `legacy`: the
    app's inventory before the upgrade (`syncer.apply.upgrade`), whose members are its own."""
    failures: list[ClusterError] = []
    for planned in desired:
        labels = (planned.live or {}).get("metadata", {}).get("labels") or {}
        body_labels = planned.body["metadata"].get("labels") or {}
        if planned.ref == inventory.parent or ID_LABEL in labels or ID_LABEL in body_labels:
            failures.append(ClusterError(
                str(planned.ref),
                f"is an ApplySet parent ({planned.origin}); a parent is never a member of a set, so "
                "syncer will not apply it as part of an app", status=409, reason="ApplySetParent"))
            continue
        owner = labels.get(PART_OF_LABEL)
        if owner and owner not in (inventory.id, legacy and legacy.id) and not opted_in(planned.body, ADOPT_ANNOTATION):
            owning_app = _owning_app(kube, owner, near=[planned.ref.namespace, namespace])
            failures.append(ClusterError(
                str(planned.ref),
                f"belongs to {owning_app}, not to app {app} (namespace {namespace}) ({planned.origin}); remove it from "
                f"one of the two sources, or take it over explicitly by annotating it with "
                f'{ADOPT_ANNOTATION}: "true"', status=409, reason="OwnedByAnotherApp"))
    return failures
