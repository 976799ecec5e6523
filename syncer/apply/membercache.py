"""What the daemon's apps own, kept current by watches: plans read it instead of the API server.

    cache = MemberCache(kube, owned=lambda applyset: applyset in my_ids, on_change=heal)
    cache.start()
    plan = build_plan(kube, manifests, options=..., revision=..., cache=cache)

For every resource a plan has asked about, one watch, cluster-wide, selected by the ApplySet
`part-of` label, plus one watch of the ApplySet parents (ConfigMaps with the `id` label). Only
objects of the apps this daemon serves (`owned`) are kept, as much of them as plans read
(`syncer.apply.slim`). Each is followed by the one
reflector (`syncer.kube.watch`): list, watch with bookmarks, list again after a 410 Gone, a
watch the server ended early, and every `relist_interval` whatever happened.

The cache answers only what it knows: `members()` gives None for a resource whose watch is not
established (never asked for before, forbidden, broken), and the plan then lists as before. It
decides only whether a plan must look closer: a sync that writes compares what it read with
fresh LISTs under the app's lock and plans again from those when anything differs
(`syncer.apply.sync`), so a stale cache can cost a second plan, never a wrong write.

A change to a member by anyone (our own syncs included) calls `on_change(applyset, ref)`; a
change to nothing but an object's status does not.

Besides the objects it keeps, each member watch indexes the names of every labelled object
it sees, whichever ApplySet the label names (`labelled`): the label scan of an app whose
ApplySet parent is missing (`syncer.apply.live.recover_inventory`) reads it instead of
listing every kind cluster-wide: one LIST per kind (63 on Kubernetes 1.37) for every new App,
each making the API server read every object of its kind. Not only the served apps' names: an app this
replica serves from now on (a new App, a shard handover) was not served when its objects were
listed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from syncer.apply.applyset import ID_LABEL, PART_OF_LABEL
from syncer.apply.slim import slim
from syncer.apply.status import APPLIED_REVISION_ANNOTATION
from syncer.apply.status import PREFIX as STATUS_PREFIX
from syncer.errors import ClusterError, Forbidden, NotFound
from syncer.kube import Kube, Resource
from syncer.kube.watch import WATCH_SECONDS, Reflector
from syncer.model import Object, ObjectRef

log = logging.getLogger(__name__)

RELIST_INTERVAL = 600.0

class MemberReads(Protocol):
    """What a plan asks of the watch cache (`MemberCache`, or it seen through `AuthorizedReads`)."""

    def members(self, resource: Resource, namespace: str | None, *, applyset: str | None = None,
                ) -> list[Object] | None: ...

    def parent(self, namespace: str, name: str) -> tuple[bool, Object | None]: ...

    def wrote_parent(self, namespace: str, name: str) -> None: ...

    def watching(self, resources: Iterable[Resource]) -> bool: ...

    def labelled(self, resource: Resource, applyset: str) -> list[ObjectRef] | None: ...


ChangeHandler = Callable[[str, ObjectRef], None]
"""(the ApplySet id the object belongs to, the object) after someone changed it."""


def _labels(obj: Object) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _version(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _key(obj: Object) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return metadata.get("namespace") or "", metadata.get("name") or ""


def status_only(before: Object | None, after: Object) -> bool:
    """A change no sync can be about: the same generation (the spec did not change), labels
    and annotations, so only status or the server's bookkeeping moved. Objects without a
    generation (ConfigMaps, Secrets, Services) never count as status-only."""
    if before is None:
        return False
    old, new = before.get("metadata") or {}, after.get("metadata") or {}
    if "generation" not in new or old.get("generation") != new.get("generation"):
        return False
    return bool(old.get("labels") == new.get("labels") and old.get("annotations") == new.get("annotations"))


def records_only(before: Object | None, after: Object) -> bool:
    """A change to an ApplySet parent that only records a sync's outcome (the `status.syncer.dev/`
    annotations that `syncer.apply.status` writes after every sync, failed ones included):
    nothing a sync could heal. Counted as drift, a failed sync's own record started a heal
    from the previous render, which then reported the app Ready on the revision that failed.
    A record that moves the applied revision is news, though: a heal restores that revision
    (`syncer.daemon.recorded`), so the app's daemon must learn that someone applied another."""
    if before is None:
        return False
    def content(obj: Object) -> tuple[Any, Any, Any]:
        metadata = obj.get("metadata") or {}
        annotations = {k: v for k, v in (metadata.get("annotations") or {}).items()
                       if not k.startswith(STATUS_PREFIX) or k == APPLIED_REVISION_ANNOTATION}
        return metadata.get("labels"), annotations, obj.get("data")
    return content(before) == content(after)


@dataclass
class _Watched:
    """One resource's objects, by (namespace, name), kept by its reflector."""

    resource: Resource
    selector: str
    label: str
    """Whose value says which ApplySet an object belongs to (part-of for members, id for parents)."""
    objects: dict[tuple[str, str], Object] = field(default_factory=dict)
    listed: bool = False
    reflector: Reflector | None = None
    unavailable: str = ""
    """Why this resource cannot be watched (forbidden): plans list it themselves."""
    applyset_of: dict[tuple[str, str], str] = field(default_factory=dict)
    """Every object seen, owned or not, to the ApplySet its label names."""
    by_applyset: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    """The same, the other way round."""

    def index(self, key: tuple[str, str], applyset: str | None) -> None:
        """Record which ApplySet the object at `key` belongs to now (None: it is gone)."""
        old = self.applyset_of.pop(key, None)
        if old is not None:
            keys = self.by_applyset[old]
            keys.discard(key)
            if not keys:
                del self.by_applyset[old]
        if applyset:
            self.applyset_of[key] = applyset
            self.by_applyset.setdefault(applyset, set()).add(key)

    @property
    def established(self) -> bool:
        """The objects are current: listed, and the watch is open or being resumed."""
        return self.reflector is not None and self.reflector.established and not self.unavailable


@dataclass(frozen=True)
class CacheStats:
    """For metrics and the benchmark: what the cache holds and how often it listed."""

    resources: int
    objects: int
    lists: int
    watches: int


@dataclass(frozen=True)
class _Handler:
    """What one resource's reflector tells the cache."""

    cache: MemberCache
    watched: _Watched

    def listed(self, objects: list[Object]) -> None:
        self.cache._listed(self.watched, objects)

    def event(self, kind: str, obj: Object) -> None:
        self.cache._event(self.watched, kind, obj)

    def failed(self, error: ClusterError) -> bool:
        return self.cache._failed(self.watched, error)


class MemberCache:
    """See the module docstring. Thread-safe; one thread per watched resource."""

    def __init__(
        self,
        kube: Kube,
        *,
        owned: Callable[[str], bool],
        on_change: ChangeHandler = lambda applyset, ref: None,
        relist_interval: float = RELIST_INTERVAL,
        watch_seconds: int = WATCH_SECONDS,
    ) -> None:
        self._kube = kube
        self._owned = owned
        self._on_change = on_change
        self._relist_interval = relist_interval
        self._watch_seconds = watch_seconds
        self._lock = threading.Lock()
        self._watched: dict[Resource, _Watched] = {}
        self._parents: _Watched | None = None
        self._written_parents: set[tuple[str, str]] = set()
        """Parents this daemon's syncs wrote that the watch has not shown yet (`wrote_parent`)."""
        self._stop = threading.Event()
        self._started = False

    def start(self) -> None:
        """Watch the ApplySet parents now; member resources as plans ask for them."""
        with self._lock:
            self._started = True
            pending = list(self._watched.values())
        configmaps = self._kube.resource_for("v1", "ConfigMap")
        parents = _Watched(configmaps, selector=ID_LABEL, label=ID_LABEL)
        with self._lock:
            self._parents = parents
        for watched in [parents, *pending]:
            self._spawn(watched)

    def stop(self) -> None:
        self._stop.set()

    @property
    def stats(self) -> CacheStats:
        with self._lock:
            every = [*self._watched.values(), *([self._parents] if self._parents else [])]
            reflectors = [w.reflector for w in every if w.reflector is not None]
            return CacheStats(resources=len(every), objects=sum(len(w.objects) for w in every),
                              lists=sum(r.lists for r in reflectors), watches=sum(r.watches for r in reflectors))

    def members(self, resource: Resource, namespace: str | None, *, applyset: str | None = None,
                ) -> list[Object] | None:
        """The cached members (of every app served) of a resource in a namespace (None:
        cluster-scoped), or None when the cache cannot tell: then the caller reads the API
        server. The first question about a resource starts its watch.

        With `applyset`, None also when the cache lacks objects of that ApplySet there: the
        objects of an app the daemon did not serve when the watch listed them were not kept
        (a new App whose objects exist already, a shard handover), and a plan trusting their
        absence would not prune them."""
        with self._lock:
            watched = self._established(resource)
            if watched is None:
                return None
            wanted = namespace or ""
            if applyset is not None and any(key[0] == wanted and key not in watched.objects
                                            for key in watched.by_applyset.get(applyset, ())):
                return None
            return [obj for (ns, _), obj in watched.objects.items() if ns == wanted]

    def labelled(self, resource: Resource, applyset: str) -> list[ObjectRef] | None:
        """Every object of a resource, in all namespaces, whose `part-of` label names
        `applyset`, served or not: what a LIST by that label would find, or None when the
        cache cannot tell. The first question about a resource starts its watch."""
        with self._lock:
            watched = self._established(resource)
            if watched is None:
                return None
            return [ObjectRef(resource.group, resource.kind, namespace or None, name)
                    for namespace, name in sorted(watched.by_applyset.get(applyset, ()))]

    def _established(self, resource: Resource) -> _Watched | None:
        """The resource's watch if it is established; else None, after starting it if it is
        not there yet. Called with the lock held."""
        watched = self._watched.get(resource)
        if watched is None:
            if "watch" not in resource.verbs and resource.verbs:
                return None
            watched = self._watched[resource] = _Watched(resource, selector=PART_OF_LABEL, label=PART_OF_LABEL)
            if self._started:
                self._spawn(watched)
            return None
        return watched if watched.established else None

    def watching(self, resources: Iterable[Resource]) -> bool:
        """Whether the watches of these resources, and of the parents, are established: then a
        change to any of their objects will be reported."""
        with self._lock:
            parents = self._parents
            return parents is not None and parents.established and all(
                (watched := self._watched.get(resource)) is not None and watched.established
                for resource in resources)

    def parent(self, namespace: str, name: str) -> tuple[bool, Object | None]:
        """(whether the cache knows, the ApplySet parent ConfigMap or None when it does not exist).

        The watch sees every parent (ConfigMaps with the `id` label) and keeps those of the
        apps served; it indexes the names of all of them. A parent it never saw does not
        exist: a new App's plan and its record need not GET it (three GETs per new App
        before). Not known: a parent seen but not kept (an app served only since: a new
        App whose parent exists, a shard handover), and one this daemon wrote that the watch
        has not shown yet (`wrote_parent`). A parent someone else created a moment ago may
        still be missing here: the sync's reads under the lock list ConfigMaps afresh, so
        that costs a second plan, never a wrong write."""
        with self._lock:
            parents = self._parents
            if parents is None or not parents.established:
                return False, None
            key = (namespace, name)
            live = parents.objects.get(key)
            if live is not None:
                return True, live
            if key in parents.applyset_of or key in self._written_parents:
                return False, None
            return True, None

    def wrote_parent(self, namespace: str, name: str) -> None:
        """This daemon wrote the parent: until the watch shows it, the cache does not know it."""
        with self._lock:
            if self._parents is None or (namespace, name) not in self._parents.objects:
                self._written_parents.add((namespace, name))

    # -- what the reflectors see ----------------------------------------------------------------

    def _spawn(self, watched: _Watched) -> None:
        watched.reflector = Reflector(
            self._kube, watched.resource, handler=_Handler(self, watched), stop=self._stop,
            label_selector=watched.selector, relist_interval=self._relist_interval,
            watch_seconds=self._watch_seconds)
        watched.reflector.start()

    def _listed(self, watched: _Watched, objects: list[Object]) -> None:
        kept = {_key(obj): slim(obj) for obj in objects if self._owned(_labels(obj).get(watched.label, ""))}
        with self._lock:
            before = watched.objects if watched.listed else None
            watched.objects, watched.listed = kept, True
            watched.applyset_of, watched.by_applyset = {}, {}
            for obj in objects:
                watched.index(_key(obj), _labels(obj).get(watched.label))
            if watched is self._parents:
                self._written_parents -= watched.applyset_of.keys()
        if before is None:
            return
        for key in before.keys() | kept.keys():
            old, new = before.get(key), kept.get(key)
            now = new or old
            assert now is not None
            if old is None or new is None or (_version(old) != _version(new) and self._news(watched, old, new)):
                self._changed(watched, old, now)

    def _event(self, watched: _Watched, kind: str, obj: Object) -> None:
        if kind == "BOOKMARK":
            return
        key = _key(obj)
        owned = kind != "DELETED" and self._owned(_labels(obj).get(watched.label, ""))
        with self._lock:
            before = watched.objects.get(key)
            if owned:
                watched.objects[key] = slim(obj)
            else:
                watched.objects.pop(key, None)
            watched.index(key, None if kind == "DELETED" else _labels(obj).get(watched.label))
            if watched is self._parents:
                self._written_parents.discard(key)
        if (owned or before is not None) and not (kind == "MODIFIED" and owned and not self._news(watched, before, obj)):
            self._changed(watched, before, obj)

    @staticmethod
    def _news(watched: _Watched, before: Object | None, after: Object) -> bool:
        """Whether a change of a kept object can be drift (see `status_only`, `records_only`)."""
        if watched.label == ID_LABEL:
            return not records_only(before, after)
        return not status_only(before, after)

    def _failed(self, watched: _Watched, error: ClusterError) -> bool:
        if isinstance(error, NotFound):  # its CRD is gone: a later question about it starts afresh
            with self._lock:
                if self._watched.get(watched.resource) is watched:
                    del self._watched[watched.resource]
            return False
        if isinstance(error, Forbidden):
            with self._lock:
                watched.unavailable = error.message
            log.warning("cannot watch %s (%s); syncs list it themselves", watched.resource.group_kind, error.message)
            return False
        return True

    def _changed(self, watched: _Watched, before: Object | None, after: Object) -> None:
        """Tell the apps the object belongs to, before and after the change, that it changed."""
        applysets = {_labels(obj).get(watched.label, "") for obj in (before, after) if obj}
        for applyset in sorted(a for a in applysets if a and self._owned(a)):
            try:
                self._on_change(applyset, ObjectRef.of(after))
            except Exception:  # a handler's bug must not end the watch
                log.exception("handling a change of %s", ObjectRef.of(after))

