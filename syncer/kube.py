"""The cluster adapter: the only module that talks to the Kubernetes API server.

The official client loads the kubeconfig (contexts, client certificates, tokens that exec
plugins and OIDC refresh, proxies) into its `ApiClient`; requests then go straight to the
urllib3 connection pool that client built for the API server, with the client's TLS settings,
rather than through its generic `call_api` layers, which cost about a third of the CPU of each
request measured in isolation (bench/RESULTS.md, "Client CPU per request"). It sends raw
JSON requests (no model classes, so thousands of objects stay cheap), each body encoded once,
discovers only the API groups a sync uses, limits its own request rate (the official client
has no rate limiter), retries transient failures with bounded exponential backoff within one
deadline per request, and turns HTTP errors into syncer's own error types.

The adapter knows the body it sent, so an error about a Secret is scrubbed of the Secret's
values here, where the error is made: the API server may quote a rejected value, and nothing
downstream (CLI output, logs, Events, status annotations) can leak what never reaches it.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import random
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import urllib3
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config import kube_config
from kubernetes.config.config_exception import ConfigException

from syncer.diff.secrets import scrub, secret_values
from syncer.errors import (
    ClusterError,
    ConfigError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Unavailable,
)
from syncer.model import Object, split_api_version
from syncer.updateapply import fallback_reason, parse_server_version, update_apply

log = logging.getLogger(__name__)

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
DROPS_BEFORE_GIVING_UP = 2
"""A request whose connection is closed without an answer this many times, while the server
answers a probe in between each time, is one the server fails on, not a network fault."""
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
"""Overload and gateway answers. A 500 is retried only when the server asks for it (see
`is_transient`)."""


@dataclass(frozen=True)
class Resource:
    """One kind as the API server serves it (from discovery)."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str] = frozenset()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def path(self, *, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        return base


@dataclass(frozen=True)
class ClientOptions:
    """How to reach the cluster and how hard to push it."""

    kubeconfig: str | None = None
    context: str | None = None
    qps: float = 1000.0
    """Requests per second this client sends at most (0: no limit). The default only guards
    against runaway loops: on one API server a sync is bounded by its CPU long before this,
    and API Priority and Fairness protects the server's other clients."""
    burst: int = 1000
    request_timeout: float = 30.0
    """Seconds one API request may take in all, retries included (`--request-timeout`). A hung
    or unreachable API server is reported within this, not after minutes of silent retries;
    every API call syncer makes is small (one object, or a page of 500), so 30 s is generous."""
    connect_timeout: float = 5.0
    """Seconds to establish a connection (at most the time left of `request_timeout`)."""
    max_retries: int = 6
    backoff_base: float = 0.2
    backoff_cap: float = 10.0
    pool_size: int = 32
    impersonate: str | None = None
    """A user (e.g. `system:serviceaccount:team-a:deployer`) every request is made as, by
    Kubernetes impersonation: the daemon syncs an App with the rights of its service account."""


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


@dataclass(frozen=True)
class ServerAnswer:
    """What a failed response says: the Status `message`, `reason` and `details` (with its
    `causes`), and when to retry."""

    message: str
    reason: str = ""
    retry_after: float | None = None
    """Seconds, from the Retry-After header or the Status' details.retryAfterSeconds."""
    details: dict[str, Any] = field(default_factory=dict)


def _server_answer(body: bytes, *, fallback: str, retry_after_header: str | None) -> ServerAnswer:
    """The `message`, `reason` and `details` of a Kubernetes Status body (or the body's text,
    or the HTTP reason), and the server's retry hint."""
    retry_after = float(retry_after_header) if retry_after_header and retry_after_header.isdigit() else None
    try:
        status = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return ServerAnswer(text or fallback, retry_after=retry_after)
    if not isinstance(status, dict):
        return ServerAnswer(fallback, retry_after=retry_after)
    details = status.get("details")
    details = details if isinstance(details, dict) else {}
    hint = details.get("retryAfterSeconds")
    if retry_after is None and isinstance(hint, int) and not isinstance(hint, bool) and hint > 0:
        retry_after = float(hint)
    return ServerAnswer(str(status.get("message") or fallback), str(status.get("reason") or ""), retry_after,
                        details)


def is_transient(status: int, *, retry_after: float | None) -> bool:
    """Whether repeating the same request may succeed.

    No answer at all (0), overload (429) and gateway or availability answers (502, 503, 504)
    are transient. A 500 is the server's own failure to handle this request (an error in its
    handler, a panic such as Kubernetes 1.20's on a server-side apply of an APIService), which
    the same request meets again: it is retried only when the server says when to retry, as
    client-go does.
    """
    if status == 500:
        return retry_after is not None
    return status == 0 or status in RETRYABLE_STATUS


def error_for_status(
    status: int, *, subject: str, message: str, reason: str = "", details: dict[str, Any] | None = None
) -> ClusterError:
    """Map an HTTP status onto syncer's error tree."""
    kind: type[ClusterError] = ClusterError
    if status == 404:
        kind = NotFound
    elif status == 409:
        kind = Conflict
    elif status == 403:
        kind = Forbidden
    elif status in (400, 422):
        kind = Invalid
    elif status == 0 or status in RETRYABLE_STATUS:
        kind = Unavailable
    return kind(subject, message, status=status, reason=reason, details=details)


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_insecure_servers_warned: set[str] = set()


@dataclass(frozen=True)
class KubeconfigContext:
    """The context a kubeconfig selects: its name, namespace and where it was read."""

    name: str
    namespace: str | None
    where: str
    """`kubeconfig a.yaml:b.yaml, context dev`, for messages."""


def kubeconfig_paths(kubeconfig: str | None) -> list[str]:
    """The kubeconfig files in the order kubectl reads them: the option (or $KUBECONFIG) as a
    list separated by `os.pathsep`, else ~/.kube/config. Files that do not exist are skipped,
    as kubectl skips them; an empty list means there is no kubeconfig at all."""
    listed = kubeconfig or os.environ.get("KUBECONFIG") or ""
    candidates = [p for p in listed.split(os.pathsep) if p] or [str(Path.home() / ".kube" / "config")]
    return [p for p in (os.path.expanduser(c) for c in candidates) if Path(p).is_file()]


def _kubeconfig_loader(options: ClientOptions) -> tuple[Any, str]:
    """The client's KubeConfigLoader over the merged files, with options.context active.

    Merged by the client's KubeConfigMerger, which already keeps the first definition of
    each cluster, user and context, as kubectl does; only `current-context` is fixed up:
    kubectl takes it from the first file that sets one, the merger from the last.
    """
    listed = options.kubeconfig or os.environ.get("KUBECONFIG") or ""
    paths = kubeconfig_paths(options.kubeconfig)
    where = f"kubeconfig {listed or (paths[0] if paths else '~/.kube/config')}"
    if not paths:
        raise ConfigError(f"{where}: no such file; pass --kubeconfig or set KUBECONFIG")
    try:
        merger = kube_config.KubeConfigMerger(os.pathsep.join(paths))
        if merger.config is None:
            raise ConfigError(f"{where}: no configuration found")
        current = next((merger.config_files[p]["current-context"] for p in merger.paths
                        if (merger.config_files[p] or {}).get("current-context")), None)
        merged = merger.config
        if current is not None:
            merged.value["current-context"] = current
        names = [str(c["name"]) for c in merged.value.get("contexts") or []]
        wanted = options.context or current
        if not wanted:
            raise ConfigError(f"{where}: no current context; pass --context (one of {', '.join(names) or 'none'})")
        where += f", context {wanted}"
        if wanted not in names:
            raise ConfigError(f"{where}: no such context; the contexts are: {', '.join(sorted(names)) or 'none'}")
        return kube_config.KubeConfigLoader(config_dict=merged, active_context=wanted, config_base_path=None), where
    except (ConfigException, OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise ConfigError(f"{where}: cannot load the cluster configuration: {error}") from error


def current_context(options: ClientOptions) -> KubeconfigContext | None:
    """The kubeconfig context syncer would use, or None when it would use the pod's service
    account. Reads files only; the commands take the default of --namespace from it."""
    if not kubeconfig_paths(options.kubeconfig) and not options.context and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    loader, where = _kubeconfig_loader(options)
    context = loader.current_context
    namespace = (context.get("context") or {}).get("namespace")
    return KubeconfigContext(name=str(context["name"]), namespace=str(namespace) if namespace else None, where=where)


def default_namespace(options: ClientOptions) -> tuple[str, str]:
    """The namespace kubectl would use without `-n`, and where it comes from (for output):
    the context's namespace, the pod's own namespace in-cluster, else `default`."""
    context = current_context(options)
    if context is None:
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default", "the pod's namespace"
        except OSError:
            return "default", "default"
    if context.namespace:
        return context.namespace, f"context {context.name}"
    return "default", "default"


def load_api_client(options: ClientOptions) -> k8s_client.ApiClient:
    """An ApiClient from the kubeconfig files (explicit, $KUBECONFIG — several files merged as
    kubectl merges them — or ~/.kube/config) or, inside a pod with none, from the pod's
    service account."""
    configuration = k8s_client.Configuration()
    if kubeconfig_paths(options.kubeconfig) or options.kubeconfig or os.environ.get("KUBECONFIG") or options.context:
        loader, where = _kubeconfig_loader(options)
        try:
            loader.load_and_set(configuration)
        except (ConfigException, OSError) as error:
            raise ConfigError(f"{where}: cannot load the cluster configuration: {error}") from error
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except ConfigException as error:
            raise ConfigError(f"in-cluster service account: cannot load the cluster configuration: {error}") from error
    else:
        raise ConfigError("no cluster configured: pass --kubeconfig, set KUBECONFIG, or run inside a pod")
    if not configuration.verify_ssl:
        _quiet_insecure_warnings(str(configuration.host))
    configuration.connection_pool_maxsize = options.pool_size
    configuration.retries = False
    api = k8s_client.ApiClient(configuration)
    if options.impersonate:
        api.set_default_header("Impersonate-User", options.impersonate)
    return api


def _is_dry_run(query: dict[str, str] | None, body: Any) -> bool:
    return bool(query and query.get("dryRun")) or (isinstance(body, dict) and bool(body.get("dryRun")))

def _quiet_insecure_warnings(server: str) -> None:
    """With `insecure-skip-tls-verify` urllib3 warns on every request (kubectl says nothing);
    syncer says it once per server and silences urllib3's InsecureRequestWarning."""
    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    if server not in _insecure_servers_warned:
        _insecure_servers_warned.add(server)
        log.warning("TLS certificates of %s are not verified (insecure-skip-tls-verify in the kubeconfig)", server)


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
        self, method: str, target: str, *, body: bytes | None, headers: dict[str, str], timeout: urllib3.Timeout,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """One attempt, no redirects and no retries (Kube.request does those). `target` is
        the path and query; with `stream` the body is left to read (a watch)."""
        all_headers = {**self._headers, **headers, **self._credentials()}
        options: dict[str, Any] = {
            "body": body, "headers": all_headers, "timeout": timeout, "retries": False, "redirect": False,
            "preload_content": not stream,
        }
        if self._pool is None:
            return self._manager.urlopen(method, self.host + target, **options)
        return self._pool.urlopen(method, self._prefix + target, assert_same_host=False, **options)


class Kube:
    """Raw-JSON access to one cluster, with discovery, rate limiting and retries.

    Safe to share between threads.
    """

    def __init__(self, api_client: k8s_client.ApiClient, options: ClientOptions = ClientOptions()) -> None:
        self._api = api_client
        self._options = options
        self._http = Transport(api_client)
        self._limiter = RateLimiter(qps=options.qps, burst=options.burst)
        self._discovery_lock = threading.Lock()
        self._group_versions: dict[str, dict[str, Resource]] = {}
        self._preferred: dict[str, str] | None = None
        self._server_version: tuple[int, int, int] | None = None
        self._server_version_known = False
        self.stats = RequestStats()
        self._write_guard: Callable[[], None] | None = None

    def guarded(self, write_guard: Callable[[], None]) -> Kube:
        """This client (same connection pool, discovery and stats) with a check that runs
        before every write request, retries included: the sync's lock uses it to stop all
        writes the moment it can no longer prove it holds the lock."""
        view = copy.copy(self)
        view._write_guard = write_guard
        return view

    @classmethod
    def connect(cls, options: ClientOptions = ClientOptions()) -> Kube:
        return cls(load_api_client(options), options)

    @property
    def server(self) -> str:
        return self._http.host

    def close(self) -> None:
        self._api.close()

    # -- transport ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        subject: str,
        verb: str,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        retry: bool = True,
        encoded: bytes | None = None,
    ) -> Any:
        """Send one request, retrying transient failures until `request_timeout` has passed
        (`retry=False`: once); return the decoded JSON body. `encoded` is `body` already
        encoded (see `encode`), sent as it is. Errors about a Secret body are scrubbed of its
        values."""
        headers = {"Content-Type": content_type} if body is not None else {}
        payload = encoded if encoded is not None else None if body is None else encode(body)
        target = path + (f"?{urlencode(query)}" if query else "")
        dry_run = _is_dry_run(query, body)
        budget = self._options.request_timeout
        deadline = time.monotonic() + budget
        attempt = dropped_while_reachable = 0
        while True:
            if self._write_guard is not None and method != "GET" and not dry_run:
                self._write_guard()
            self._limiter.acquire()
            self.stats.count(verb)
            retry_after: float | None = None
            details: dict[str, Any] = {}
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                response = self._http.send(
                    method, target, body=payload, headers=headers,
                    timeout=urllib3.Timeout(connect=min(self._options.connect_timeout, remaining), read=remaining),
                )
                status = response.status
                data = response.data or b""
                if 200 <= status < 300:
                    return json.loads(data) if data else None
                answer = _server_answer(
                    data, fallback=str(response.reason), retry_after_header=response.headers.get("Retry-After")
                )
                message, reason, retry_after, details = answer.message, answer.reason, answer.retry_after, answer.details
                if status == 403:
                    # Kubernetes 1.20 gives no reason at all when an apply would create the
                    # object; say which RBAC verbs the request needs.
                    message = message.rstrip() + (
                        " (the credentials lack the RBAC verb for this request: a server-side apply "
                        "needs 'patch', and 'create' too when the object does not exist yet)"
                        if method == "PATCH" else f" (the credentials may not {method} this resource)")
                if status == 500 and "failed to create typed patch object" in message:
                    # Kubernetes < 1.22 answers a manifest it cannot convert (a number where
                    # the schema wants a string, ...) with a 500; it is invalid input, not a fault.
                    status = 422
            except urllib3.exceptions.ReadTimeoutError:
                status, reason = 0, ""
                message = (f"the API server at {self.server} did not answer within {remaining:.0f}s "
                           f"(--request-timeout {budget:g}s)")
            except (urllib3.exceptions.HTTPError, OSError) as error:
                status, message, reason = 0, f"cannot reach the API server at {self.server}: {error}", ""
                if self._answers_probe():
                    dropped_while_reachable += 1
                if dropped_while_reachable >= DROPS_BEFORE_GIVING_UP:
                    raise ClusterError(
                        subject,
                        f"the API server at {self.server} answers other requests but closed the connection "
                        f"without a response to this {method} {dropped_while_reachable} times: it fails on this "
                        "very request (a panic in its handler?), so retrying cannot help; see its log",
                        reason="ConnectionDropped",
                    ) from error
            # The body's Secret values are looked up only now: the success path never needs them.
            secret_forms = secret_values(body)
            message = scrub(message, secret_forms)
            if secret_forms and details:
                details = json.loads(scrub(json.dumps(details), secret_forms))
            if not is_transient(status, retry_after=retry_after):
                raise error_for_status(status, subject=subject, message=message, reason=reason, details=details)
            delay = backoff_delay(
                attempt, base=self._options.backoff_base, cap=self._options.backoff_cap,
                retry_after=retry_after,
            )
            if attempt >= (self._options.max_retries if retry else 0) or time.monotonic() + delay >= deadline:
                raise error_for_status(
                    status, subject=subject, reason=reason, details=details,
                    message=f"{message} (gave up after {attempt + 1} attempts in "
                            f"{budget - (deadline - time.monotonic()):.0f}s)",
                )
            log.warning("%s: %s %s failed (attempt %d: %s); retrying in %.1fs",
                        subject, method, path, attempt + 1, status or message, delay)
            time.sleep(delay)
            attempt += 1

    def _answers_probe(self) -> bool:
        """Whether the server answers a trivial request (GET /version) right now: it tells a
        request the server drops (it panics on it) from a server that cannot be reached."""
        self.stats.count("probe")
        try:
            response = self._http.send(
                "GET", "/version", body=None, headers={},
                timeout=urllib3.Timeout(connect=self._options.connect_timeout,
                                        read=min(self._options.request_timeout, 10.0)),
            )
        except (urllib3.exceptions.HTTPError, OSError):
            return False
        return 200 <= response.status < 300

    # -- discovery ---------------------------------------------------------------------------

    def _discover(self, api_version: str, *, retry: bool = True) -> dict[str, Resource]:
        with self._discovery_lock:
            cached = self._group_versions.get(api_version)
        if cached is not None:
            return cached
        group, version = split_api_version(api_version)
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            listing = self.request("GET", path, subject=f"API discovery of {api_version}", verb="discovery",
                                   retry=retry)
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
        with self._discovery_lock:
            self._group_versions[api_version] = resources
        return resources

    def resource_for(self, api_version: str, kind: str) -> Resource:
        """The served resource for a kind, or NotFound when the server does not know it."""
        resource = self._discover(api_version).get(kind)
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
        with self._discovery_lock:
            preferred = self._preferred
        if preferred is None or group not in preferred:
            groups = self.request("GET", "/apis", subject="discovery", verb="discovery")
            preferred = {
                item["name"]: item["preferredVersion"]["groupVersion"]
                for item in groups.get("groups", [])
            }
            with self._discovery_lock:
                self._preferred = preferred
        if group not in preferred:
            raise NotFound(f"{kind}.{group}", f"the API server does not serve the group {group}", status=404)
        return self.resource_for(preferred[group], kind)

    def listable_resources(self) -> tuple[list[Resource], dict[str, str]]:
        """Every listable kind the server serves, at each group's preferred version, and the
        group-versions that could not be discovered (an aggregated API whose backend is down
        answers 503) with why: callers decide what not knowing them means."""
        group_versions = ["v1"]
        groups = self.request("GET", "/apis", subject="discovery", verb="discovery")
        group_versions += [g["preferredVersion"]["groupVersion"] for g in groups.get("groups", [])]
        found: list[Resource] = []
        undiscovered: dict[str, str] = {}
        for group_version in group_versions:
            try:
                # Not retried: an aggregated API whose backend is down answers 503 for as long
                # as it is down, and a scan of every kind must not wait that out per group.
                served = self._discover(group_version, retry=False).values()
            except ClusterError as error:
                undiscovered[group_version] = error.message
                continue
            found.extend(resource for resource in served if "list" in resource.verbs)
        return found, undiscovered

    def forget_discovery(self, api_version: str | None = None) -> None:
        """Drop cached discovery (after a CRD was applied, its group becomes served)."""
        with self._discovery_lock:
            if api_version is None:
                self._group_versions.clear()
            else:
                self._group_versions.pop(api_version, None)
            self._preferred = None

    def server_version(self) -> tuple[int, int, int] | None:
        """The API server's version (`/version`), read once; None when it does not say."""
        with self._discovery_lock:
            if self._server_version_known:
                return self._server_version
        try:
            info = self.request("GET", "/version", subject="the API server's version", verb="discovery")
        except ClusterError as error:
            log.info("cannot read the API server's version: %s", error)
            info = None
        git_version = info.get("gitVersion") if isinstance(info, dict) else None
        version = parse_server_version(git_version) if isinstance(git_version, str) else None
        with self._discovery_lock:
            self._server_version, self._server_version_known = version, True
        return version

    def apply_fallback(self, resource: Resource) -> str | None:
        """Why this server cannot server-side apply `resource`, so that `apply` updates it with
        get + put instead (syncer.updateapply); None when server-side apply works."""
        return fallback_reason(resource.group_kind, self.server_version())

    # -- reads ----------------------------------------------------------------------------------

    def list_versioned(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        page_size: int = 500,
    ) -> tuple[list[Object], str]:
        """`list`, and the list's resourceVersion: where a `watch` continues from."""
        query = {"limit": str(page_size)}
        if label_selector:
            query["labelSelector"] = label_selector
        subject = f"{resource.kind} in {namespace}" if namespace else resource.kind
        objects: list[Object] = []
        while True:
            page = self.request(
                "GET", resource.path(namespace=namespace), subject=subject, verb="list", query=query
            )
            for item in page.get("items", []):
                item.setdefault("apiVersion", resource.api_version)
                item.setdefault("kind", resource.kind)
                objects.append(item)
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            if not token:
                return objects, str(metadata.get("resourceVersion") or "")
            query["continue"] = token

    def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        resource_version: str,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> Iterator[Object]:
        """Watch events (`{"type": ADDED|MODIFIED|DELETED|ERROR, "object": ...}`) after
        `resource_version`, until the server closes the watch (after `timeout_seconds`). An
        ERROR event (410 Gone: the version is too old) is yielded, not raised: the caller lists
        again. Raises ClusterError when the watch cannot start or breaks off."""
        subject = f"{resource.kind} in {namespace}" if namespace else resource.kind
        query = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(timeout_seconds)}
        if label_selector:
            query["labelSelector"] = label_selector
        target = resource.path(namespace=namespace) + f"?{urlencode(query)}"
        self._limiter.acquire()
        self.stats.count("watch")
        try:
            raw = self._http.send("GET", target, body=None, headers={}, stream=True,
                                  timeout=urllib3.Timeout(connect=10.0, read=timeout_seconds + 30.0))
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise Unavailable(subject, f"cannot watch at {self.server}: {error}") from error
        try:
            if not 200 <= raw.status < 300:
                answer = _server_answer(raw.data or b"", fallback=str(raw.reason), retry_after_header=None)
                raise error_for_status(raw.status, subject=subject, message=answer.message,
                                       reason=answer.reason, details=answer.details)
            pending = b""
            for chunk in raw.stream(4096, decode_content=True):
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise Unavailable(subject, f"the watch broke off: {error}") from error
        finally:
            # Closed, not drained: the rest of a watch may never come.
            raw.close()
            raw.release_conn()

    def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        page_size: int = 500,
    ) -> list[Object]:
        """Every object of a kind in a namespace (or cluster-wide), following pagination."""
        return self.list_versioned(resource, namespace=namespace, label_selector=label_selector,
                                   page_size=page_size)[0]

    def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Object | None:
        subject = f"{resource.kind}/{namespace}/{name}" if namespace else f"{resource.kind}/{name}"
        try:
            obj = self.request("GET", resource.path(namespace=namespace, name=name), subject=subject, verb="get")
        except NotFound:
            return None
        assert isinstance(obj, dict)
        return obj

    # -- writes ---------------------------------------------------------------------------------

    def apply(
        self,
        resource: Resource,
        obj: Object,
        *,
        subject: str,
        field_manager: str,
        force: bool,
        dry_run: bool,
        encoded: bytes | None = None,
    ) -> Object:
        """Server-side apply `obj`; with dry_run the server validates and predicts, writing nothing.
        `encoded`: `encode(obj)`, when the caller keeps it for more than one request (the
        dry-run and the apply of one object send the same bytes).

        Where the server cannot server-side apply the kind (`apply_fallback`), the object is
        created or updated with the same three-way result instead."""
        if self.apply_fallback(resource) is not None:
            return update_apply(self, resource, obj, subject=subject, field_manager=field_manager, dry_run=dry_run)
        metadata = obj.get("metadata") or {}
        query = {"fieldManager": field_manager}
        if force:
            query["force"] = "true"
        if dry_run:
            query["dryRun"] = "All"
        result = self.request(
            "PATCH",
            resource.path(namespace=metadata.get("namespace"), name=metadata["name"]),
            subject=subject,
            verb="dry-run" if dry_run else "apply",
            query=query,
            body=obj,
            encoded=encoded,
            content_type=APPLY_PATCH,
        )
        assert isinstance(result, dict)
        return result

    def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None,
        subject: str,
        uid: str | None = None,
        resource_version: str | None = None,
        dry_run: bool = False,
        propagation: str = "Background",
    ) -> bool:
        """Delete an object; False when it was already gone. With `uid`, only that exact
        object is deleted (a precondition), never a namesake created since we looked; with
        `resource_version`, only if nobody changed it since."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if uid or resource_version:
            body["preconditions"] = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        if dry_run:
            # In the body, not the query: the server ignores a `dryRun` query parameter when
            # DeleteOptions come in the body, and deletes for real.
            body["dryRun"] = ["All"]
        try:
            self.request(
                "DELETE", resource.path(namespace=namespace, name=name),
                subject=subject, verb="dry-run" if dry_run else "delete", body=body,
            )
        except NotFound:
            return False
        return True

    def create(self, resource: Resource, obj: Object, *, subject: str) -> Object:
        namespace = (obj.get("metadata") or {}).get("namespace")
        result = self.request("POST", resource.path(namespace=namespace), subject=subject, verb="create", body=obj)
        assert isinstance(result, dict)
        return result

    def replace(self, resource: Resource, obj: Object, *, subject: str) -> Object:
        """PUT: optimistic concurrency through metadata.resourceVersion (Conflict when stale)."""
        metadata = obj["metadata"]
        result = self.request(
            "PUT", resource.path(namespace=metadata.get("namespace"), name=metadata["name"]),
            subject=subject, verb="update", body=obj,
        )
        assert isinstance(result, dict)
        return result

    def merge_patch(
        self, resource: Resource, name: str, patch: Object, *, namespace: str | None, subject: str
    ) -> Object:
        result = self.request(
            "PATCH", resource.path(namespace=namespace, name=name),
            subject=subject, verb="patch", body=patch, content_type=MERGE_PATCH,
        )
        assert isinstance(result, dict)
        return result
