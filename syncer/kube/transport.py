"""HTTP to one API server: the client's pooled connections and credentials, a rate limiter,
request counts, and bodies encoded once.

Requests go straight to the urllib3 connection pool the official client built for the API
server, with its TLS settings, rather than through its generic `call_api` layers, which cost
about a third of the CPU of each request measured in isolation (bench/RESULTS.md, "Client CPU
per request").
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import urllib3
from kubernetes import client as k8s_client


class RateLimiter:
    """A token bucket shared by every thread using one client: `qps` sustained, `burst` peak."""

    def __init__(self, *, qps: float, burst: int) -> None:
        self._qps = qps
        self._capacity = float(max(burst, 1))
        self._tokens = self._capacity
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if self._qps <= 0:
            return
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._qps)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self._qps
            time.sleep(wait)


@dataclass
class RequestStats:
    """Requests sent, by verb (`list`, `get`, `apply`, `dry-run`, `delete`, ...)."""

    by_verb: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, verb: str) -> None:
        with self._lock:
            self.by_verb[verb] += 1


def backoff_delay(attempt: int, *, base: float, cap: float, retry_after: float | None) -> float:
    """Full-jitter exponential backoff; a server's Retry-After wins when it is longer."""
    delay = random.uniform(0, min(cap, base * (2**attempt)))
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay

def encode(obj: Any) -> bytes:
    """A request body as compact JSON (also what an apply patch is sent as: JSON is YAML)."""
    return json.dumps(obj, separators=(",", ":")).encode()


CREDENTIALS_TTL = 1.0
"""Seconds a request's credentials are reused before the client is asked again (see
`Transport._credentials`)."""


class Transport:
    """HTTP to one API server through the connection pool the official client set up for it
    (its TLS settings: CA, client certificate, verification, server name; its proxy, if any),
    with the client's default headers and credentials.

    Why not the client's `ApiClient.call_api`: per request it re-reads the computed
    `Configuration.host`, re-matches the content type, wraps the response, and the pool
    manager parses the whole URL again to find the same pool; together about a third of the
    client's CPU per request. What stays is urllib3's pool: keep-alive connections, bounded
    by `ClientOptions.pool_size`.
    """

    def __init__(self, api_client: k8s_client.ApiClient) -> None:
        configuration = api_client.configuration
        self.host = str(configuration.host).rstrip("/")
        self._configuration = configuration
        self._prefix = urlsplit(self.host).path
        """A server URL may have a path (a cluster behind a gateway): every request path goes under it."""
        self._headers = {**api_client.default_headers, "Accept": "application/json"}
        self._auth: tuple[dict[str, str], float] | None = None
        self._auth_lock = threading.Lock()
        manager = api_client.rest_client.pool_manager
        self._manager = manager
        self._pool: urllib3.HTTPConnectionPool | None = None
        if not (isinstance(manager, urllib3.ProxyManager)
                and manager._proxy_requires_url_absolute_form(urllib3.util.parse_url(self.host))):
            self._pool = manager.connection_from_url(self.host)
        # else: a plain-HTTP server behind an HTTP proxy takes the whole URL in each request,
        # which the proxy manager writes.

    def _credentials(self) -> dict[str, str]:
        """The Authorization header, from the client's auth_settings() at most once every
        CREDENTIALS_TTL seconds. auth_settings() runs the kubeconfig loader's refresh hook,
        which renews a token minutes before it expires (exec plugins, OIDC, in-cluster
        service account tokens), and which, for every token, also sets the configuration's
        host again, whose setter reads the whole environment for proxies: 0.5 ms of CPU, as
        much as the rest of a request, when done per request."""
        now = time.monotonic()
        cached = self._auth
        if cached is not None and now < cached[1]:
            return cached[0]
        with self._auth_lock:
            auth = self._configuration.auth_settings().get("BearerToken")
            header = {str(auth["key"]): str(auth["value"])} if auth and auth.get("value") else {}
            self._auth = (header, now + CREDENTIALS_TTL)
        return header

    def send(
        self, method: str, target: str, *, body: bytes | Iterator[bytes] | None, headers: dict[str, str],
        timeout: urllib3.Timeout, stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """One attempt, no redirects and no retries (Kube.request does those). `target` is
        the path and query; with `stream` the body is left to read (a watch). A `body` given
        in parts is sent part by part (with the Content-Length header the caller set)."""
        all_headers = {**self._headers, **headers, **self._credentials()}
        options: dict[str, Any] = {
            "body": body, "headers": all_headers, "timeout": timeout, "retries": False, "redirect": False,
            "preload_content": not stream,
        }
        if self._pool is None:
            return self._manager.urlopen(method, self.host + target, **options)
        return self._pool.urlopen(method, self._prefix + target, assert_same_host=False, **options)


