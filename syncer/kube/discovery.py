"""Which kinds the API server serves, at which versions: read lazily, one group-version at a
time, and forgotten as soon as the server shows that it changed.

A kind stops being served when its CustomResourceDefinition is deleted: requests for it then
get a bare `404 page not found` (not a Kubernetes Status), and the client forgets that
group-version (`forget`), so the next request discovers again instead of failing until a
restart. A kind starts being served when a CRD is created by anyone: a question about a kind
the cached listing lacks is asked of the server again, at most once per `REFRESH_SECONDS`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from syncer.errors import ClusterError, NotFound
from syncer.kube.resource import Resource
from syncer.model import split_api_version

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0
"""A listing that lacks a kind is read again when it is older than this."""

Get = Callable[..., Any]
"""`get(path, *, subject, retry)`: a GET through the client, its decoded JSON body."""

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")
_PATH = re.compile(r"^/(?:api/(?P<core>[^/]+)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))(?:/|$)")


def parse_server_version(git_version: str) -> tuple[int, int, int] | None:
    """`v1.20.2` (or `v1.20.2-eks-1234`) -> (1, 20, 2); None when it is not a version."""
    match = _VERSION.match(git_version)
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3] or 0)


STRICT_FIELDS_SINCE = (1, 27, 0)
"""The first Kubernetes release whose every write takes `fieldValidation=Strict` (server-side
field validation went GA in 1.27; 1.20 has no such parameter and ignores it)."""


def strict_fields_supported(server_version: tuple[int, int, int] | None) -> bool:
    """Whether a server of this version refuses unknown and duplicate fields when asked to
    (`fieldValidation=Strict`). An unknown version is not asked: the parameter does nothing
    on the servers that predate it, so what they do with such fields is what they did."""
    return server_version is not None and server_version >= STRICT_FIELDS_SINCE


def api_version_of_path(path: str) -> str | None:
    """The group-version a request path is under (`/apis/apps/v1/...` -> `apps/v1`), if any."""
    match = _PATH.match(path)
    if match is None:
        return None
    if match["core"]:
        return match["core"]
    return f"{match['group']}/{match['version']}"


@dataclass(frozen=True)
class _Listing:
    resources: dict[str, Resource]
    read_at: float


class Discovery:
    """Thread-safe; shared by every view of one client (`Kube.guarded`)."""

    def __init__(self, get: Get) -> None:
        self._get = get
        self._lock = threading.Lock()
        self._group_versions: dict[str, _Listing] = {}
        self._preferred: dict[str, str] | None = None
        self._preferred_at = 0.0
        self._served: tuple[str, ...] | None = None
        self._server_version: tuple[int, int, int] | None = None
        self._server_version_known = False

    def _listing(self, api_version: str, *, retry: bool = True, refresh: bool = False) -> _Listing:
        with self._lock:
            cached = self._group_versions.get(api_version)
        if cached is not None and not (refresh and time.monotonic() - cached.read_at >= REFRESH_SECONDS):
            return cached
        group, version = split_api_version(api_version)
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        read_at = time.monotonic()
        try:
            listing = self._get(path, subject=f"API discovery of {api_version}", retry=retry)
        except NotFound:
            listing = {"resources": []}
        resources: dict[str, Resource] = {}
        for item in listing.get("resources", []):
            if "/" in item["name"]:
                continue
            resources[item["kind"]] = Resource(
                group=group, version=version, kind=item["kind"], plural=item["name"],
                namespaced=bool(item.get("namespaced")), verbs=frozenset(item.get("verbs", [])),
            )
        found = _Listing(resources, read_at)
        with self._lock:
            self._group_versions[api_version] = found
        return found

    def resources(self, api_version: str, *, retry: bool = True) -> dict[str, Resource]:
        return self._listing(api_version, retry=retry).resources

    def resource_for(self, api_version: str, kind: str) -> Resource:
        """The served resource for a kind, or NotFound when the server does not know it."""
        resource = self._listing(api_version).resources.get(kind)
        if resource is None:
            # Maybe served since we looked (a CRD created by someone else).
            resource = self._listing(api_version, refresh=True).resources.get(kind)
        if resource is None:
            raise NotFound(
                f"{kind} ({api_version})",
                f"the API server does not serve kind {kind} in {api_version}; "
                "is its CustomResourceDefinition installed?",
                status=404,
            )
        return resource

    def preferred_resource(self, group: str, kind: str) -> Resource:
        """The resource for a group and kind at the server's preferred version (for objects
        known only by group-kind, e.g. from an ApplySet's contains-group-kinds)."""
        if not group:
            return self.resource_for("v1", kind)
        with self._lock:
            preferred = self._preferred
        if preferred is None or group not in preferred:
            preferred = self._read_preferred()
        if group not in preferred:
            raise NotFound(f"{kind}.{group}", f"the API server does not serve the group {group}", status=404)
        return self.resource_for(preferred[group], kind)

    def _read_preferred(self) -> dict[str, str]:
        read_at = time.monotonic()
        groups = self._get("/apis", subject="discovery", retry=True)
        preferred = {item["name"]: item["preferredVersion"]["groupVersion"] for item in groups.get("groups", [])}
        served = ("v1", *(version["groupVersion"] for item in groups.get("groups", [])
                          for version in item.get("versions", [])))
        with self._lock:
            self._preferred, self._served, self._preferred_at = preferred, served, read_at
        return preferred

    def served_group_versions(self) -> tuple[str, ...]:
        """Every group-version the server serves (`v1`, `apps/v1`, ...), as Helm's
        `.Capabilities.APIVersions` lists them; read with the groups, forgotten with them."""
        with self._lock:
            served = self._served
        if served is None:
            self._read_preferred()
            with self._lock:
                served = self._served
        return served or ("v1",)

    def listable_resources(self) -> tuple[list[Resource], dict[str, str]]:
        """Every listable kind the server serves, at each group's preferred version, and the
        group-versions that could not be discovered (an aggregated API whose backend is down
        answers 503) with why: callers decide what not knowing them means."""
        # The groups are read again unless read within REFRESH_SECONDS: a scan of every kind
        # must see a group created since, and a burst of new Apps scans once each.
        with self._lock:
            preferred = self._preferred if time.monotonic() - self._preferred_at < REFRESH_SECONDS else None
        group_versions = ["v1", *(preferred if preferred is not None else self._read_preferred()).values()]
        found: list[Resource] = []
        undiscovered: dict[str, str] = {}
        for group_version in group_versions:
            try:
                # Not retried: an aggregated API whose backend is down answers 503 for as long
                # as it is down, and a scan of every kind must not wait that out per group.
                served = self.resources(group_version, retry=False).values()
            except ClusterError as error:
                undiscovered[group_version] = error.message
                continue
            found.extend(resource for resource in served if "list" in resource.verbs)
        return found, undiscovered

    def forget(self, api_version: str | None = None) -> None:
        """Drop cached discovery: all of it, or one group-version (its kinds changed)."""
        with self._lock:
            if api_version is None:
                self._group_versions.clear()
            elif self._group_versions.pop(api_version, None) is not None:
                log.info("discovery of %s forgotten: the server no longer serves what it listed", api_version)
            self._preferred = self._served = None

    def server_version(self) -> tuple[int, int, int] | None:
        """The API server's version (`/version`), read once; None when it does not say."""
        with self._lock:
            if self._server_version_known:
                return self._server_version
        try:
            info = self._get("/version", subject="the API server's version", retry=True)
        except ClusterError as error:
            log.info("cannot read the API server's version: %s", error)
            info = None
        git_version = info.get("gitVersion") if isinstance(info, dict) else None
        version = parse_server_version(git_version) if isinstance(git_version, str) else None
        with self._lock:
            self._server_version, self._server_version_known = version, True
        return version
