"""Who is looking at the dashboard, and what they may see and do.

Tenants are attackers: a user reaches the dashboard with a bearer token of their own, the
API server says who that is (a TokenReview) and what they may do (SubjectAccessReviews),
and the dashboard shows only what they could read with kubectl: the Apps of namespaces
where they may `get` Apps. An action needs `patch` on that App, and is then sent with the
user's own token, so the API server checks it once more; the daemon's rights are never
lent. Answers are kept a few seconds, so a page and its live updates do not ask the API
server on every render while a revoked right stops working within that time.

`--ui-auth none` has no users: everyone who reaches the port sees every App and acts with
the daemon's rights, which is why it listens on loopback only (`kubectl port-forward`).

Every POST carries a per-session CSRF token (an HMAC of the session under a secret made at
start, compared in constant time) and an Origin that is the dashboard's own.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from syncer.errors import ClusterError
from syncer.kube import Kube

CACHE_SECONDS = 10.0
"""How long a TokenReview or SubjectAccessReview answer is kept."""
CACHE_ENTRIES = 4096
"""Answers kept at most; past this the cache starts afresh (a flood of tokens cannot grow it)."""
APP_GROUP, APP_RESOURCE = "syncer.dev", "apps"


@dataclass(frozen=True)
class User:
    """A user as the API server's TokenReview described them."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    token: str = field(default="", repr=False)
    """The user's own bearer token: actions are sent with it."""


ANONYMOUS = User(name="")
"""`--ui-auth none`: nobody in particular, allowed everything the daemon may do."""


def user_of_review(review: dict[str, Any], *, token: str) -> User | None:
    """The user a TokenReview's answer names; None when the token is not authenticated."""
    status = review.get("status") or {}
    if not status.get("authenticated"):
        return None
    info = status.get("user") or {}
    name = str(info.get("username") or "")
    if not name:
        return None
    extra = tuple(sorted((str(k), tuple(str(v) for v in values or ())) for k, values in (info.get("extra") or {}).items()))
    return User(name=name, uid=str(info.get("uid") or ""), groups=tuple(str(g) for g in info.get("groups") or ()),
                extra=extra, token=token)


def access_review(user: User, *, verb: str, namespace: str, name: str | None = None) -> dict[str, Any]:
    """The SubjectAccessReview asking whether `user` may `verb` Apps in `namespace` (one App
    when `name` is given)."""
    attributes = {"group": APP_GROUP, "resource": APP_RESOURCE, "verb": verb, "namespace": namespace}
    if name is not None:
        attributes["name"] = name
    spec: dict[str, Any] = {"user": user.name, "groups": list(user.groups), "resourceAttributes": attributes}
    if user.uid:
        spec["uid"] = user.uid
    if user.extra:
        spec["extra"] = {key: list(values) for key, values in user.extra}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


def allowed_of_review(review: dict[str, Any]) -> bool:
    status = review.get("status") or {}
    return bool(status.get("allowed")) and not status.get("denied")


def bearer_token(headers: dict[str, str], cookies: dict[str, str], *, cookie: str) -> str | None:
    """The token of a request: the Authorization header (`Bearer ...`), else the login
    cookie. `headers` has lower-case names."""
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    value = cookies.get(cookie, "").strip()
    return value or None


def csrf_token(secret: bytes, session: str) -> str:
    """The CSRF token of a session (the user's token, or the anonymous session cookie)."""
    return hmac.new(secret, b"csrf\0" + session.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: bytes, session: str, presented: str) -> bool:
    return bool(session) and hmac.compare_digest(csrf_token(secret, session).encode(), presented.encode())


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether a POST's Origin header names the dashboard itself (the Host it was sent to,
    over http or https). A request without an Origin is refused: browsers send one with
    every POST, and a script that is no browser can send it too."""
    if not origin or not host:
        return False
    return origin in (f"http://{host}", f"https://{host}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Answers:
    """Answers kept for `CACHE_SECONDS` on the monotonic clock, bounded in number."""

    def __init__(self, *, seconds: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> tuple[bool, Any]:
        with self._lock:
            found = self._kept.get(key)
        if found is None or self._clock() - found[0] >= self._seconds:
            return False, None
        return True, found[1]

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            if len(self._kept) >= CACHE_ENTRIES:
                self._kept.clear()
            self._kept[key] = (self._clock(), value)


class Authorizer(Protocol):
    """What the dashboard asks about each request."""

    @property
    def required(self) -> bool:
        """Whether a request must present a token."""
        ...

    def authenticate(self, token: str | None) -> User | None:
        """The user a token belongs to; None: not authenticated."""
        ...

    def may(self, user: User, *, verb: str, namespace: str, name: str | None = None) -> bool: ...


class NoAuth:
    """`--ui-auth none`: every request is the anonymous user, allowed everything."""

    required = False

    def authenticate(self, token: str | None) -> User | None:
        return ANONYMOUS

    def may(self, user: User, *, verb: str, namespace: str, name: str | None = None) -> bool:
        return True


class KubernetesAuth:
    """`--ui-auth kubernetes`: TokenReview and SubjectAccessReview, asked with the daemon's
    client (it needs `create` on both), answers kept `CACHE_SECONDS`."""

    required = True

    def __init__(self, kube: Kube, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._kube = kube
        self._users = _Answers(clock=clock)
        self._access = _Answers(clock=clock)

    def authenticate(self, token: str | None) -> User | None:
        if not token:
            return None
        key = hashlib.sha256(token.encode()).digest()
        known, user = self._users.get(key)
        if known:
            return user  # type: ignore[no-any-return]
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        answer = self._kube.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", subject="TokenReview",
                                    verb="create", body=review, retry=False)
        user = user_of_review(answer if isinstance(answer, dict) else {}, token=token)
        self._users.put(key, user)
        return user

    def may(self, user: User, *, verb: str, namespace: str, name: str | None = None) -> bool:
        key = (user.name, user.uid, user.groups, user.extra, verb, namespace, name)
        known, allowed = self._access.get(key)
        if known:
            return bool(allowed)
        try:
            answer = self._kube.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                                        subject=f"SubjectAccessReview for {user.name}", verb="create",
                                        body=access_review(user, verb=verb, namespace=namespace, name=name),
                                        retry=False)
        except ClusterError:
            return False  # not cached: asked again on the next request
        allowed = allowed_of_review(answer if isinstance(answer, dict) else {})
        self._access.put(key, allowed)
        return bool(allowed)


def new_secret() -> bytes:
    """The key of this process's CSRF tokens: a restart invalidates the forms served before."""
    return secrets.token_bytes(32)
