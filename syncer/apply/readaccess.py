"""Reads from the daemon's shared watch cache, authorized like the reads they replace.

The member cache (`syncer.apply.membercache`) is filled with the daemon's own rights. An App
that runs as its own service account must not learn from it what that account could not
read: each answer the cache gives such an App is first checked with a SubjectAccessReview,
asked by the daemon for (the App's user, verb, resource, namespace). Answers are kept for at
most `ACCESS_TTL` seconds and asked only while a plan needs them, so an App at rest causes
no reviews. A denied read is not an error here: the cache says it cannot tell, and the plan
reads the API server with the App's own credentials, which the server then refuses with the
App's user named in the message.

    reads = AuthorizedReads(cache, AccessReview(kube, user="system:serviceaccount:team-a:deployer"))
    plan = build_plan(app_kube, manifests, options=..., revision=..., cache=reads)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from syncer.apply.membercache import MemberReads
from syncer.errors import ClusterError
from syncer.kube import Kube, Resource
from syncer.model import Object, ObjectRef

ACCESS_TTL = 60.0
"""Seconds a review's answer is used: a revoked right stops reads from the cache within it."""


def service_account_groups(user: str) -> list[str]:
    """The groups the API server gives a service account's token (and impersonation of
    `system:serviceaccount:<ns>:<name>` without `--as-group`)."""
    parts = user.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        return ["system:serviceaccounts", f"system:serviceaccounts:{parts[2]}", "system:authenticated"]
    return ["system:authenticated"]


class AccessReview:
    """Whether `user` may do `verb` on a resource in a namespace, by SubjectAccessReview."""

    def __init__(self, kube: Kube, *, user: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._kube = kube
        self.user = user
        self._groups = service_account_groups(user)
        self._clock = clock
        self._answers: dict[tuple[str, str, str, str], tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def allowed(self, *, verb: str, resource: Resource, namespace: str | None) -> bool:
        key = (verb, resource.group, resource.plural, namespace or "")
        now = self._clock()
        with self._lock:
            known = self._answers.get(key)
        if known is not None and now - known[1] < ACCESS_TTL:
            return known[0]
        allowed = self._ask(verb=verb, resource=resource, namespace=namespace)
        with self._lock:
            self._answers[key] = (allowed, now)
        return allowed

    def _ask(self, *, verb: str, resource: Resource, namespace: str | None) -> bool:
        attributes = {"verb": verb, "group": resource.group, "version": resource.version,
                      "resource": resource.plural, **({"namespace": namespace} if namespace else {})}
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": self.user, "groups": self._groups, "resourceAttributes": attributes}}
        try:
            answer = self._kube.create(self._kube.resource_for("authorization.k8s.io/v1", "SubjectAccessReview"),
                                       review, subject=f"SubjectAccessReview for {self.user}")
        except ClusterError:
            return False  # unknown is no: the plan then reads with the App's own credentials
        return bool((answer.get("status") or {}).get("allowed"))


class AuthorizedReads:
    """The cache, answering only what `access.user` may read (see the module docstring)."""

    def __init__(self, cache: MemberReads, access: AccessReview, *, configmaps: Resource) -> None:
        self._cache = cache
        self._access = access
        self._configmaps = configmaps

    def members(self, resource: Resource, namespace: str | None, *, applyset: str | None = None,
                ) -> list[Object] | None:
        if not self._access.allowed(verb="list", resource=resource, namespace=namespace):
            return None
        return self._cache.members(resource, namespace, applyset=applyset)

    def parent(self, namespace: str, name: str) -> tuple[bool, Object | None]:
        if not self._access.allowed(verb="get", resource=self._configmaps, namespace=namespace):
            return False, None
        return self._cache.parent(namespace, name)

    def wrote_parent(self, namespace: str, name: str) -> None:
        self._cache.wrote_parent(namespace, name)

    def watching(self, resources: Iterable[Resource]) -> bool:
        return self._cache.watching(resources)

    def labelled(self, resource: Resource, applyset: str) -> list[ObjectRef] | None:
        if not self._access.allowed(verb="list", resource=resource, namespace=None):
            return None
        return self._cache.labelled(resource, applyset)
