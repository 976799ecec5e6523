"""HTTP to one API server: pooled connections with the kubeconfig's TLS settings and
credentials, a rate limiter, request counts, and bodies encoded once."""

from __future__ import annotations

import json
import random
import ssl
import urllib.request
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import urllib3

from syncer.kube.config import Connection


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


class Transport:
    """HTTP to one API server: urllib3's keep-alive connection pool (bounded by
    `ClientOptions.pool_size`) with the connection's TLS settings (CA, client certificate,
    verification, server name) and proxy, its headers and credentials.

    Why not the official client's `ApiClient.call_api`: per request it re-reads the computed
    `Configuration.host`, re-matches the content type, wraps the response, and the pool
    manager parses the whole URL again to find the same pool; together about a third of the
    client's CPU per request (bench/RESULTS.md, "Client CPU per request").
    """

    def __init__(self, connection: Connection, *, pool_size: int = 32) -> None:
        self.host = connection.server.rstrip("/")
        self._prefix = urlsplit(self.host).path
        """A server URL may have a path (a cluster behind a gateway): every request path goes under it."""
        self._headers = {**connection.headers, "Accept": "application/json"}
        self._credentials = connection.credentials
        self._manager = _pool_manager(connection, pool_size=pool_size)
        self._pool: urllib3.HTTPConnectionPool | None = None
        if not (isinstance(self._manager, urllib3.ProxyManager)
                and self._manager._proxy_requires_url_absolute_form(urllib3.util.parse_url(self.host))):
            self._pool = self._manager.connection_from_url(self.host)
        # else: a plain-HTTP server behind an HTTP proxy takes the whole URL in each request,
        # which the proxy manager writes.

    def expire_credentials(self) -> None:
        """The server refused the credentials (401): ask for new ones (an exec plugin runs again)."""
        self._credentials.expire()

    def close(self) -> None:
        self._manager.clear()

    def send(
        self, method: str, target: str, *, body: bytes | Iterator[bytes] | None, headers: dict[str, str],
        timeout: urllib3.Timeout, stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """One attempt, no redirects and no retries (Kube.request does those). `target` is
        the path and query; with `stream` the body is left to read (a watch). A `body` given
        in parts is sent part by part (with the Content-Length header the caller set)."""
        all_headers = {**self._headers, **headers, **self._credentials.headers()}
        options: dict[str, Any] = {
            "body": body, "headers": all_headers, "timeout": timeout, "retries": False, "redirect": False,
            "preload_content": not stream,
        }
        if self._pool is None:
            return self._manager.urlopen(method, self.host + target, **options)
        return self._pool.urlopen(method, self._prefix + target, assert_same_host=False, **options)




def _pool_manager(connection: Connection, *, pool_size: int) -> urllib3.PoolManager:
    """The connection pool: verification against the connection's CA (else the system's), a
    client certificate read from its files for each new connection (so one an exec plugin
    renewed is used), and the kubeconfig's proxy-url, else the environment's proxy unless
    NO_PROXY exempts the server (as kubectl, through Go's ProxyFromEnvironment)."""
    options: dict[str, Any] = {
        "maxsize": pool_size, "retries": False,
        "cert_reqs": ssl.CERT_NONE if connection.insecure else ssl.CERT_REQUIRED,
        "ca_certs": connection.ca_file, "ca_cert_data": connection.ca_data,
    }
    if connection.client_certificate is not None:
        options["cert_file"], options["key_file"] = connection.client_certificate
    if connection.tls_server_name:
        options["server_hostname"] = connection.tls_server_name
    proxy = connection.proxy_url
    if proxy is None:
        scheme = urlsplit(connection.server).scheme
        proxies = urllib.request.getproxies()
        if not urllib.request.proxy_bypass(urlsplit(connection.server).netloc):
            proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy:
        return urllib3.PoolManager(**options)
    if urlsplit(proxy).scheme.startswith("socks"):
        from urllib3.contrib.socks import SOCKSProxyManager
        return SOCKSProxyManager(proxy, **options)
    return urllib3.ProxyManager(proxy, **options)
