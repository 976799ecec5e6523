"""What the model test sees of the cluster: a snapshot of every object of one test, and the
differences between two snapshots, told apart from what Kubernetes' own controllers do.

A snapshot lists every listable namespaced kind cluster-wide (one LIST per kind; the local
control plane belongs to this test session alone) and keeps the objects in the test's
namespaces, plus the test's cluster-scoped objects (its Namespaces, CRDs and ClusterRoles all
carry the test's prefix). It is read through a Kube instance of its own, so the engine's
request counters only count the engine's requests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from syncer.errors import NotFound
from syncer.kube import Kube, Resource
from syncer.model import Object, split_api_version

PART_OF = "applyset.kubernetes.io/part-of"
APPLYSET_ID = "applyset.kubernetes.io/id"
SYSTEM_MANAGERS = frozenset({"kube-controller-manager"})
"""Field managers of Kubernetes' own controllers: their writes (Deployment status, Endpoints,
ReplicaSets, service account tokens, `kube-root-ca.crt`, Events) are not the engine's."""

Key = tuple[str, str, str | None, str]
"""(group, kind, namespace, name): one object as served under one API group. An Ingress served
by both `extensions` and `networking.k8s.io` shows up under two keys with one UID."""


@dataclass(frozen=True)
class Seen:
    """One object as a snapshot saw it."""

    key: Key
    uid: str
    resource_version: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    terminating: bool
    finalizers: tuple[str, ...]
    owners: tuple[str, ...]
    """UIDs of its ownerReferences."""
    writers: frozenset[tuple[str, str, str, str]]
    """managedFields entries as (manager, operation, time, hash of the fields)."""

    @property
    def group(self) -> str:
        return self.key[0]

    @property
    def kind(self) -> str:
        return self.key[1]

    @property
    def namespace(self) -> str | None:
        return self.key[2]

    @property
    def name(self) -> str:
        return self.key[3]

    def __str__(self) -> str:
        group, kind, namespace, name = self.key
        kind = f"{kind}.{group}" if group else kind
        return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"

    @property
    def system_made(self) -> bool:
        """Written only by Kubernetes itself (the default ServiceAccount has no managedFields)."""
        return all(writer[0] in SYSTEM_MANAGERS for writer in self.writers)


def seen(obj: Object) -> Seen:
    metadata = obj.get("metadata") or {}
    group, _ = split_api_version(str(obj.get("apiVersion", "")))
    writers = frozenset(
        (
            str(entry.get("manager", "")),
            str(entry.get("operation", "")),
            str(entry.get("time", "")),
            hashlib.sha256(json.dumps(entry.get("fieldsV1"), sort_keys=True).encode()).hexdigest()[:16],
        )
        for entry in metadata.get("managedFields") or []
    )
    return Seen(
        key=(group, str(obj.get("kind")), metadata.get("namespace") or None, str(metadata.get("name"))),
        uid=str(metadata.get("uid")),
        resource_version=str(metadata.get("resourceVersion")),
        labels=dict(metadata.get("labels") or {}),
        annotations=dict(metadata.get("annotations") or {}),
        terminating=bool(metadata.get("deletionTimestamp")),
        finalizers=tuple(metadata.get("finalizers") or ()),
        owners=tuple(str(ref.get("uid")) for ref in metadata.get("ownerReferences") or ()),
        writers=writers,
    )


@dataclass
class Snapshot:
    objects: dict[Key, Seen] = field(default_factory=dict)

    def by_uid(self) -> dict[str, list[Seen]]:
        found: dict[str, list[Seen]] = {}
        for item in self.objects.values():
            found.setdefault(item.uid, []).append(item)
        return found

    def namespace(self, name: str) -> Seen | None:
        return self.objects.get(("", "Namespace", None, name))

    def crd_of(self, item: Seen) -> Seen | None:
        """The CustomResourceDefinition that serves a custom resource, if the test made it."""
        return self.objects.get(("apiextensions.k8s.io", "CustomResourceDefinition", None, f"widgets.{item.group}"))

    def gone_with_container(self, item: Seen) -> bool:
        """The object's Namespace or CRD is being deleted or gone: its disappearance is that
        container's deletion, judged when the container was deleted."""
        if item.namespace is not None:
            namespace = self.namespace(item.namespace)
            if namespace is None or namespace.terminating:
                return True
        if item.kind == "Widget":
            crd = self.crd_of(item)
            if crd is None or crd.terminating:
                return True
        return False


class Observer:
    """Snapshots of one test's objects (names start with `prefix`)."""

    def __init__(self, kube: Kube, *, prefix: str) -> None:
        self.kube = kube
        self.prefix = prefix
        self._crds: frozenset[str] | None = None

    def _ours(self, obj: Object) -> bool:
        metadata = obj.get("metadata") or {}
        namespace = metadata.get("namespace")
        if namespace:
            return str(namespace).startswith(self.prefix)
        name = str(metadata.get("name", ""))
        return name.startswith(self.prefix) or name.endswith(f".{self.prefix}.model.example")

    def snapshot(self) -> Snapshot:
        crds = self.kube.list(self.kube.resource_for("apiextensions.k8s.io/v1", "CustomResourceDefinition"))
        served = frozenset(
            f"{c['metadata']['name']}:{c['metadata'].get('resourceVersion')}" for c in crds
        )
        if served != self._crds:  # a CRD came or went: its kinds did too
            self.kube.forget_discovery()
            self._crds = served
        cluster_scoped = [
            self.kube.resource_for("v1", "Namespace"),
            self.kube.resource_for("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ]
        listable, _ = self.kube.listable_resources()
        resources = [r for r in listable if r.namespaced and r.group != "events.k8s.io"]
        # events.k8s.io serves the same Events as the core group.
        with ThreadPoolExecutor(max_workers=8) as pool:
            listings = list(pool.map(self._list, [*cluster_scoped, *resources]))
        snapshot = Snapshot()
        for obj in [*crds, *(o for listing in listings for o in listing)]:
            if self._ours(obj):
                item = seen(obj)
                snapshot.objects[item.key] = item
        return snapshot

    def _list(self, resource: Resource) -> list[Object]:
        try:
            return self.kube.list(resource)
        except NotFound:  # a CRD deleted since discovery: its kind holds nothing any more
            return []


@dataclass(frozen=True)
class Write:
    """A difference between two snapshots that some client made."""

    what: str
    """`created`, `changed`, `deleted` or `marked for deletion`."""
    before: Seen | None
    after: Seen | None

    @property
    def item(self) -> Seen:
        found = self.after or self.before
        assert found is not None
        return found

    def __str__(self) -> str:
        writers = ""
        if self.after is not None:
            new = self.after.writers - (self.before.writers if self.before else frozenset())
            writers = " by " + ", ".join(sorted({f"{w[0]} ({w[1]})" for w in new})) if new else ""
        return f"{self.item} {self.what}{writers}"


def writes(before: Snapshot, after: Snapshot) -> list[Write]:
    """Every difference between two snapshots that is not Kubernetes' own housekeeping.

    Housekeeping: objects only controllers wrote (Events, Endpoints, ReplicaSets, tokens),
    writes whose new managedFields entries all belong to controllers, and the tail of a
    deletion decided earlier (an object already terminating, the contents of a namespace or
    CRD being deleted, dependents collected with their owner).
    """
    found = []
    for key in sorted(set(before.objects) | set(after.objects), key=str):
        old, new = before.objects.get(key), after.objects.get(key)
        if old is None and new is not None:
            if not new.system_made:
                found.append(Write("created", None, new))
        elif old is not None and new is None:
            if not (old.terminating or old.owners or after.gone_with_container(old) or old.system_made):
                found.append(Write("deleted", old, None))
        elif old is not None and new is not None and old.resource_version != new.resource_version:
            if old.uid != new.uid:
                found.append(Write("deleted and created again", old, new))
            elif new.terminating and not old.terminating:
                if not (new.owners or after.gone_with_container(new)):
                    found.append(Write("marked for deletion", old, new))
            elif any(w[0] not in SYSTEM_MANAGERS for w in new.writers - old.writers):
                found.append(Write("changed", old, new))
            elif not (new.writers - old.writers) and not new.terminating and not new.system_made \
                    and not _has_system_writer(new):
                # managedFields times have a resolution of one second: a manager writing twice
                # within a second leaves its entry as it was. Only a controller's write can be
                # mistaken for that, on an object controllers write to.
                found.append(Write("changed (no managedFields entry moved)", old, new))
    return found


def _has_system_writer(item: Seen) -> bool:
    return any(writer[0] in SYSTEM_MANAGERS for writer in item.writers)


def describe(items: Iterable[object]) -> str:
    return "; ".join(str(item) for item in items)
