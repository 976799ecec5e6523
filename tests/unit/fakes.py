"""An in-memory API server behind the real `Kube` verbs, and plain builders of plans, for the
table tests of the solver, the prune filters and the executor (no server).

`FakeKube` replaces only `Kube.request` and discovery: `apply`, `delete`, `get`, `list` and
the update fallback build their requests as they do against a real server (the dry-run flag
in the query, or in the DeleteOptions body for a DELETE), so the tests see what would go on
the wire. Every request is recorded as a `Request`, and `fail(...)` makes a chosen one fail
with a given error. It keeps objects by path and answers like a server: a dry-run changes
nothing, a DELETE honours its UID precondition, a missing object is a 404.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from syncer.apply.applyset import Inventory
from syncer.apply.options import SyncOptions
from syncer.apply.planned import Check, Desired, Plan, PlannedObject, PruneDecision
from syncer.apply.solver import solve
from syncer.diff import Cause, FieldChange, ObjectDiff
from syncer.errors import ClusterError, Conflict, NotFound
from syncer.kube import Kube, Resource
from syncer.model import Action, Object, ObjectRef, Origin

_CLUSTER_WIDE = re.compile(r"^(/apis?/(?:[^/]+/)?v[^/]+)/namespaces/[^/]+/(.+)$")
"""A namespaced object's path without its namespace: where a cluster-wide list finds it."""

RESOURCES = {
    ("", "Namespace"): Resource("", "v1", "Namespace", "namespaces", namespaced=False),
    ("", "ConfigMap"): Resource("", "v1", "ConfigMap", "configmaps", namespaced=True),
    ("", "Secret"): Resource("", "v1", "Secret", "secrets", namespaced=True),
    ("", "Service"): Resource("", "v1", "Service", "services", namespaced=True),
    ("", "PersistentVolumeClaim"): Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims",
                                            namespaced=True),
    ("", "PersistentVolume"): Resource("", "v1", "PersistentVolume", "persistentvolumes", namespaced=False),
    ("apps", "Deployment"): Resource("apps", "v1", "Deployment", "deployments", namespaced=True),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): Resource(
        "apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", namespaced=False),
    ("apiregistration.k8s.io", "APIService"): Resource(
        "apiregistration.k8s.io", "v1", "APIService", "apiservices", namespaced=False),
    ("example.com", "Widget"): Resource("example.com", "v1", "Widget", "widgets", namespaced=True),
}


def resource(kind: str, group: str = "") -> Resource:
    return RESOURCES[(group, kind)]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    verb: str
    dry_run: bool
    body: Any
    decoded: bool = True
    """Whether the caller asked for the answer (`Kube.request(decode=...)`)."""

    @property
    def writes(self) -> bool:
        return self.method != "GET"


@dataclass
class FakeKube(Kube):
    """See the module docstring. `served`: the (group, kind)s discovery knows."""

    served: dict[tuple[str, str], Resource] = field(default_factory=lambda: dict(RESOURCES))
    store: dict[str, Object] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    """Requests (`PATCH <path>`) and anything a test adds (`confirm`), in order."""
    failures: list[tuple[Callable[[Request], bool], ClusterError]] = field(default_factory=list)
    version: tuple[int, int, int] = (1, 20, 2)
    _uids: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self._write_guard = None

    # -- setting up ----------------------------------------------------------------------------

    def put(self, obj: Object) -> Object:
        """Store an object as if it existed; returns it with its uid."""
        group = str(obj["apiVersion"]).rpartition("/")[0]
        res = self.served.get((group, obj["kind"])) or RESOURCES[(group, obj["kind"])]
        stored = copy.deepcopy(obj)
        metadata = stored.setdefault("metadata", {})
        metadata.setdefault("uid", f"uid-{next(self._uids)}")
        metadata.setdefault("resourceVersion", "1")
        self.store[res.path(namespace=metadata.get("namespace"), name=metadata["name"])] = stored
        return stored

    def fail(self, method: str, path: str, error: ClusterError, *, dry_run: bool | None = None) -> None:
        """Make requests with this method and path fail (with dry_run given: only those)."""
        self.failures.append((lambda r: r.method == method and r.path == path
                              and (dry_run is None or r.dry_run == dry_run), error))

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.writes]

    # -- Kube ----------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, subject: str, verb: str, query: dict[str, str] | None = None,
                body: Any = None, content_type: str = "application/json", retry: bool = True,
                encoded: bytes | None = None, decode: bool = True) -> Any:
        if encoded is not None:
            body = json.loads(encoded)
        dry_run = bool(query and query.get("dryRun")) or (isinstance(body, dict) and bool(body.get("dryRun")))
        request = Request(method, path, verb, dry_run, copy.deepcopy(body), decode)
        if self._write_guard is not None and method != "GET" and not dry_run:
            self._write_guard()
        self.requests.append(request)
        self.events.append(f"{method} {path}" + (" (dry run)" if dry_run else ""))
        for matches, error in self.failures:
            if matches(request):
                raise error
        answer = self._answer(method, path, body, subject=subject, verb=verb, dry_run=dry_run)
        return answer if decode else None

    def _answer(self, method: str, path: str, body: Any, *, subject: str, verb: str, dry_run: bool) -> Any:
        if method == "GET":
            return self._get(path, subject=subject, listing=verb == "list")
        if method == "DELETE":
            return self._delete(path, body, subject=subject, dry_run=dry_run)
        if method == "POST":
            path = f"{path}/{body['metadata']['name']}"
            if path in self.store:
                raise Conflict(subject, "already exists", status=409, reason="AlreadyExists")
        elif method == "PUT" and path not in self.store:
            raise NotFound(subject, "not found", status=404)
        written = copy.deepcopy(body)
        live = self.store.get(path)
        metadata = written.setdefault("metadata", {})
        metadata["uid"] = live["metadata"]["uid"] if live else f"uid-{next(self._uids)}"
        metadata["resourceVersion"] = str(int(live["metadata"]["resourceVersion"]) + 1) if live else "1"
        if not dry_run:
            self.store[path] = written
        return copy.deepcopy(written)

    def _get(self, path: str, *, subject: str, listing: bool) -> Any:
        if listing:  # in one namespace, or across all of them
            items = [copy.deepcopy(o) for p, o in sorted(self.store.items())
                     if path in (p.rpartition("/")[0], _CLUSTER_WIDE.sub(r"\1/\2", p).rpartition("/")[0])]
            return {"items": items, "metadata": {"resourceVersion": "1"}}
        if path in self.store:
            return copy.deepcopy(self.store[path])
        raise NotFound(subject, "not found", status=404)

    def _delete(self, path: str, body: Any, *, subject: str, dry_run: bool) -> Any:
        live = self.store.get(path)
        if live is None:
            raise NotFound(subject, "not found", status=404)
        uid = ((body or {}).get("preconditions") or {}).get("uid")
        if uid and uid != live["metadata"]["uid"]:
            raise Conflict(subject, "Precondition failed: UID in precondition", status=409)
        if not dry_run:
            del self.store[path]
        return {"kind": "Status", "status": "Success"}

    def resource_for(self, api_version: str, kind: str) -> Resource:
        group = api_version.rpartition("/")[0]
        if (group, kind) not in self.served:
            raise NotFound(f"{kind}", f"{api_version} {kind} is not served", status=404)
        return self.served[(group, kind)]

    def preferred_resource(self, group: str, kind: str) -> Resource:
        return self.resource_for(f"{group}/v1" if group else "v1", kind)

    def listable_resources(self) -> tuple[list[Resource], dict[str, str]]:
        return list(self.served.values()), {}

    def forget_discovery(self, api_version: str | None = None) -> None:
        self.events.append("forget discovery")

    def server_version(self) -> tuple[int, int, int] | None:
        return self.version


# -- plans, built by hand ---------------------------------------------------------------------------

APP, HOME = "shop", "shop"
INVENTORY = Inventory.for_app(app=APP, namespace=HOME)


def ref(text: str) -> ObjectRef:
    """`Kind/ns/name`, `Kind/name` or `Kind.group/ns/name`."""
    parts = text.split("/")
    kind, _, group = parts[0].partition(".")
    if kind == "CustomResourceDefinition":
        group = "apiextensions.k8s.io"
    return ObjectRef(group=group, kind=kind, namespace=parts[1] if len(parts) == 3 else None, name=parts[-1])


def body_of(r: ObjectRef, **extra: Any) -> Object:
    res = resource(r.kind, r.group)
    metadata: dict[str, Any] = {"name": r.name, **({"namespace": r.namespace} if r.namespace else {})}
    return {"apiVersion": res.api_version, "kind": r.kind, "metadata": metadata, **extra}


def planned(text: str, action: Action = Action.CREATED, *, live: bool | None = None, blocked_by: Sequence[str] = (),
            update_instead: str | None = None, body: Object | None = None) -> PlannedObject:
    """A planned object: `live` defaults to "exists unless created"."""
    r = ref(text)
    res = resource(r.kind, r.group)
    exists = action is not Action.CREATED if live is None else live
    desired = Desired(ref=r, api_version=res.api_version, body=body or body_of(r, data={"v": "2"}), resource=res,
                      origin=Origin("app.yaml"), live=body_of(r, metadata={"name": r.name, "namespace": r.namespace,
                                                                           "uid": f"live-{r.name}"}) if exists else None,
                      blocked_by=frozenset(ref(b) for b in blocked_by), update_instead=update_instead)
    return PlannedObject(desired, Check(action, ObjectDiff(r, res.api_version, action, "", fields=(FieldChange(".data.v", Cause.GIT),))))


def pruned(text: str, action: Action = Action.DELETED, reason: str = "", *, live: Object | None = None) -> PruneDecision:
    r = ref(text)
    res = resource(r.kind, r.group)
    obj = live or body_of(r)
    obj["metadata"].setdefault("uid", f"live-{r.name}")
    return PruneDecision(ref=r, api_version=res.api_version, resource=res, live=obj, action=action, reason=reason,
                         message="pruned: no longer in the source" if action is Action.DELETED else f"kept: {reason}")


def make_plan(
    steps: Iterable[Iterable[PlannedObject]] = (), *, prune: Iterable[PruneDecision] = (),
    inventory: Inventory | None = None, wait: bool = False, concurrency: int = 1, **options: Any,
) -> Plan:
    """A plan with the given steps and prune decisions, its tasks solved as build_plan does."""
    step_list = [list(step) for step in steps]
    plan = Plan(options=SyncOptions(app=APP, namespace=HOME, wait=wait, concurrency=concurrency,
                                    **{"timeout": 5, **options}),
                revision="r1", inventory=inventory if inventory is not None else INVENTORY,
                objects={p.ref: p for step in step_list for p in step},
                steps=tuple(tuple(p.ref for p in step) for step in step_list),
                prune=tuple(sorted(prune, key=lambda d: d.ref)))
    return replace(plan, tasks=solve(plan))


def recorded(inventory: Inventory, *refs: str) -> Inventory:
    """The inventory as a parent that records these objects' group-kinds and namespaces."""
    return Inventory(parent=inventory.parent, id=inventory.id, exists=True).including([ref(r) for r in refs])
