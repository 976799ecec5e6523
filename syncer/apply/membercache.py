"""What the daemon's apps own, kept current by watches: plans read it instead of the API server.

    cache = MemberCache(kube, owned=lambda applyset: applyset in my_ids, on_change=heal)
    cache.start()
    plan = build_plan(kube, manifests, options=..., revision=..., cache=cache)

For every resource a plan has asked about, one watch, cluster-wide, selected by the ApplySet
`part-of` label, plus one watch of the ApplySet parents (ConfigMaps with the `id` label). Only
objects of the apps this daemon serves (`owned`) are kept. A watch is opened after a LIST,
resumes from the last resourceVersion it saw (bookmarks keep that fresh), lists again after a
410 Gone or when it cannot resume, and every `relist_interval` lists again whatever happened:
the safety net for an event that was somehow lost.

The cache answers only what it knows: `members()` gives None for a resource whose watch is not
established (never asked for before, forbidden, broken), and the plan then lists as before. It
decides only whether a plan must look closer: a sync that writes compares what it read with
fresh LISTs under the app's lock and plans again from those when anything differs
(`syncer.apply.sync`), so a stale cache can cost a second plan, never a wrong write.

A change to a member by anyone (our own syncs included) calls `on_change(applyset, ref)`; a
change to nothing but an object's status does not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from syncer.apply.applyset import ID_LABEL, PART_OF_LABEL
from syncer.errors import ClusterError, Forbidden, NotFound
from syncer.kube import Kube, Resource
from syncer.model import Object, ObjectRef

log = logging.getLogger(__name__)

WATCH_SECONDS = 300
"""A watch is re-opened (from the last version seen) this often, as client-go's reflector does."""
RELIST_INTERVAL = 600.0
RETRY_SECONDS = 2.0
GONE = 410
MAX_RETRY_SECONDS = 30.0

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


@dataclass
class _Watched:
    """One resource's objects, by (namespace, name), as of `version`."""

    resource: Resource
    selector: str
    label: str
    """Whose value says which ApplySet an object belongs to (part-of for members, id for parents)."""
    objects: dict[tuple[str, str], Object] = field(default_factory=dict)
    version: str = ""
    """Where the watch resumes; empty: list first."""
    listed: bool = False
    established: bool = False
    """The objects are current: listed, and the watch is open or being resumed."""
    unavailable: str = ""
    """Why this resource cannot be watched (forbidden): plans list it themselves."""


@dataclass(frozen=True)
class CacheStats:
    """For metrics and the benchmark: what the cache holds and how often it listed."""

    resources: int
    objects: int
    lists: int
    watches: int


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
        self._stop = threading.Event()
        self._started = False
        self._lists = 0
        self._watches = 0

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
            return CacheStats(resources=len(every), objects=sum(len(w.objects) for w in every),
                              lists=self._lists, watches=self._watches)

    def members(self, resource: Resource, namespace: str | None) -> list[Object] | None:
        """The cached members (of every app served) of a resource in a namespace (None:
        cluster-scoped), or None when the cache cannot tell: then the caller reads the API
        server. The first question about a resource starts its watch."""
        with self._lock:
            watched = self._watched.get(resource)
            if watched is None:
                if "watch" not in resource.verbs and resource.verbs:
                    return None
                watched = self._watched[resource] = _Watched(resource, selector=PART_OF_LABEL, label=PART_OF_LABEL)
                if self._started:
                    self._spawn(watched)
                return None
            if not watched.established:
                return None
            wanted = namespace or ""
            return [obj for (ns, _), obj in watched.objects.items() if ns == wanted]

    def watching(self, resources: Iterable[Resource]) -> bool:
        """Whether the watches of these resources, and of the parents, are established: then a
        change to any of their objects will be reported."""
        with self._lock:
            parents = self._parents
            return parents is not None and parents.established and all(
                (watched := self._watched.get(resource)) is not None and watched.established
                for resource in resources)

    def parent(self, namespace: str, name: str) -> tuple[bool, Object | None]:
        """(whether the cache knows, the ApplySet parent ConfigMap or None when it does not exist)."""
        with self._lock:
            parents = self._parents
            if parents is None or not parents.established:
                return False, None
            return True, parents.objects.get((namespace, name))

    # -- the watch loop -------------------------------------------------------------------------

    def _spawn(self, watched: _Watched) -> None:
        threading.Thread(target=self._run, args=(watched,), daemon=True,
                         name=f"watch-{watched.resource.group_kind}").start()

    def _run(self, watched: _Watched) -> None:
        """List, then watch from the list's version, until stopped: see the module docstring."""
        delay = RETRY_SECONDS
        relist_due = 0.0
        while not self._stop.is_set():
            try:
                if not watched.version or time.monotonic() >= relist_due:
                    self._list(watched)
                    relist_due = time.monotonic() + self._relist_interval
                self._watch(watched, until=relist_due)
                delay = RETRY_SECONDS
            except NotFound:  # its CRD is gone: a later question about it starts afresh
                with self._lock:
                    if self._watched.get(watched.resource) is watched:
                        del self._watched[watched.resource]
                return
            except Forbidden as error:
                with self._lock:
                    watched.established, watched.unavailable = False, error.message
                log.warning("cannot watch %s (%s); syncs list it themselves", watched.resource.group_kind,
                            error.message)
                return
            except ClusterError as error:
                with self._lock:
                    watched.established = False
                    if error.status == GONE:  # the version is too old to resume from
                        watched.version = ""
                log.info("watch of %s: %s; again in %.0fs", watched.resource.group_kind, error.message, delay)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, MAX_RETRY_SECONDS)

    def _list(self, watched: _Watched) -> None:
        objects, version = self._kube.list_versioned(watched.resource, label_selector=watched.selector)
        kept = {_key(obj): obj for obj in objects if self._owned(_labels(obj).get(watched.label, ""))}
        with self._lock:
            self._lists += 1
            before = watched.objects if watched.listed else None
            watched.objects, watched.version, watched.listed, watched.established = kept, version, True, True
        if before is None:
            return
        for key in before.keys() | kept.keys():
            old, new = before.get(key), kept.get(key)
            now = new or old
            assert now is not None
            if old is None or new is None or _version(old) != _version(new):
                self._changed(watched, old, now)

    def _watch(self, watched: _Watched, *, until: float) -> None:
        """Follow one watch request until the server ends it, a 410 (then list again), or the
        safety re-list is due."""
        with self._lock:
            self._watches += 1
            # Resuming replays whatever happened since `version`: what the cache holds is at
            # most that far behind, which a plan may use (see the module docstring).
            watched.established = True
        timeout = max(1, min(self._watch_seconds, int(until - time.monotonic()) + 1))
        ends_at = time.monotonic() + timeout
        for event in self._kube.watch(watched.resource, resource_version=watched.version,
                                      label_selector=watched.selector, timeout_seconds=timeout):
            if self._stop.is_set() or not self._follow(watched, event):
                return
        if time.monotonic() < ends_at - 1 and not self._stop.is_set():
            # The server ended the watch early: its CustomResourceDefinition was deleted (and
            # maybe created again, with a new history that does not replay the deletions of
            # the old one's objects), or the server is going away. List, do not resume.
            log.info("watch of %s ended early; listing again", watched.resource.group_kind)
            with self._lock:
                watched.version = ""

    def _follow(self, watched: _Watched, event: Object) -> bool:
        """One watch event into the cache; False after an ERROR (410 Gone: list again)."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            log.info("watch of %s: %s; listing again", watched.resource.group_kind, obj.get("message"))
            with self._lock:
                watched.version = ""
            return False
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            with self._lock:
                watched.version = version or watched.version
            return True
        obj.setdefault("apiVersion", watched.resource.api_version)
        obj.setdefault("kind", watched.resource.kind)
        key = _key(obj)
        owned = kind != "DELETED" and self._owned(_labels(obj).get(watched.label, ""))
        with self._lock:
            before = watched.objects.get(key)
            if owned:
                watched.objects[key] = obj
            else:
                watched.objects.pop(key, None)
            watched.version = version or watched.version
        if (owned or before is not None) and not (kind == "MODIFIED" and owned and status_only(before, obj)):
            self._changed(watched, before, obj)
        return True

    def _changed(self, watched: _Watched, before: Object | None, after: Object) -> None:
        """Tell the apps the object belongs to, before and after the change, that it changed."""
        applysets = {_labels(obj).get(watched.label, "") for obj in (before, after) if obj}
        for applyset in sorted(a for a in applysets if a and self._owned(a)):
            try:
                self._on_change(applyset, ObjectRef.of(after))
            except Exception:  # a handler's bug must not end the watch
                log.exception("handling a change of %s", ObjectRef.of(after))

