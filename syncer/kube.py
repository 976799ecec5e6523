"""The cluster adapter: the only module that talks to the Kubernetes API server.

A thin layer over the official client's `ApiClient`: it sends raw JSON requests (no model
classes, so thousands of objects stay cheap), discovers only the API groups a sync uses,
limits its own request rate (the official client has no rate limiter), retries transient
failures with bounded exponential backoff, and turns HTTP errors into syncer's own error types.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

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

log = logging.getLogger(__name__)

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


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
    timeout: float = 60.0
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


def _status_message(body: bytes, fallback: str) -> tuple[str, str]:
    """The `message` and `reason` of a Kubernetes Status body, or the HTTP reason."""
    try:
        status = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return (text or fallback), ""
    if isinstance(status, dict):
        return str(status.get("message") or fallback), str(status.get("reason") or "")
    return fallback, ""


def error_for_status(status: int, *, subject: str, message: str, reason: str = "") -> ClusterError:
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
    return kind(subject, message, status=status, reason=reason)


def load_api_client(options: ClientOptions) -> k8s_client.ApiClient:
    """An ApiClient from a kubeconfig (explicit, $KUBECONFIG or ~/.kube/config) or, inside a
    pod with no kubeconfig, from the pod's service account."""
    configuration = k8s_client.Configuration()
    kubeconfig = options.kubeconfig or os.environ.get("KUBECONFIG")
    default_path = Path.home() / ".kube" / "config"
    where = "in-cluster service account"
    try:
        if kubeconfig or default_path.exists() or options.context:
            path = kubeconfig.split(os.pathsep)[0] if kubeconfig else str(default_path)
            where = f"kubeconfig {path}" + (f", context {options.context}" if options.context else "")
            if not Path(path).is_file():
                raise ConfigError(f"{where}: no such file; pass --kubeconfig or set KUBECONFIG")
            k8s_config.load_kube_config(
                config_file=path, context=options.context, client_configuration=configuration
            )
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            raise ConfigError(
                "no cluster configured: pass --kubeconfig, set KUBECONFIG, or run inside a pod"
            )
    except (ConfigException, OSError) as error:
        raise ConfigError(f"{where}: cannot load the cluster configuration: {error}") from error
    configuration.connection_pool_maxsize = options.pool_size
    configuration.retries = False
    api = k8s_client.ApiClient(configuration)
    if options.impersonate:
        api.set_default_header("Impersonate-User", options.impersonate)
    return api


class Kube:
    """Raw-JSON access to one cluster, with discovery, rate limiting and retries.

    Safe to share between threads.
    """

    def __init__(self, api_client: k8s_client.ApiClient, options: ClientOptions = ClientOptions()) -> None:
        self._api = api_client
        self._options = options
        self._limiter = RateLimiter(qps=options.qps, burst=options.burst)
        self._discovery_lock = threading.Lock()
        self._group_versions: dict[str, dict[str, Resource]] = {}
        self._preferred: dict[str, str] | None = None
        self.stats = RequestStats()

    @classmethod
    def connect(cls, options: ClientOptions = ClientOptions()) -> Kube:
        return cls(load_api_client(options), options)

    @property
    def server(self) -> str:
        return str(self._api.configuration.host)

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
    ) -> Any:
        """Send one request, retrying transient failures; return the decoded JSON body."""
        headers = {"Accept": "application/json"}
        payload: Any = None
        if body is not None:
            headers["Content-Type"] = content_type
            # The client JSON-encodes bodies of JSON content types itself; an apply patch
            # (YAML content type) goes as text, and JSON is valid YAML.
            payload = body
            if content_type == APPLY_PATCH and not isinstance(body, str):
                payload = json.dumps(body, separators=(",", ":"))
        url = self._api.configuration.host + path + (f"?{urlencode(query)}" if query else "")
        attempt = 0
        while True:
            self._limiter.acquire()
            self.stats.count(verb)
            header_params = self._headers(headers)
            retry_after: float | None = None
            try:
                response = self._api.call_api(
                    method, url, header_params=header_params, body=payload,
                    _request_timeout=self._options.timeout,
                )
                response.read()
                status = int(response.status)
                data = response.data or b""
                if 200 <= status < 300:
                    return json.loads(data) if data else None
                message, reason = _status_message(data, str(response.reason))
                if status == 403 and message.rstrip().endswith("forbidden:"):
                    # Kubernetes 1.20 gives no reason when an apply would create the object.
                    message = message.rstrip() + (
                        " the credentials lack the RBAC verb for this request (a server-side apply "
                        "needs 'patch', and 'create' too when the object does not exist yet)"
                        if method == "PATCH" else f" the credentials may not {method} this resource")
                if status == 500 and "failed to create typed patch object" in message:
                    # Kubernetes < 1.22 answers a manifest it cannot convert (a number where
                    # the schema wants a string, ...) with a 500; it is invalid input, not a fault.
                    status = 422
                retry_after_header = response.getheader("Retry-After")
                if retry_after_header and retry_after_header.isdigit():
                    retry_after = float(retry_after_header)
            except (urllib3.exceptions.HTTPError, OSError, k8s_client.ApiException) as error:
                status, message, reason = 0, f"cannot reach the API server at {self.server}: {error}", ""
            if status not in RETRYABLE_STATUS and status != 0:
                raise error_for_status(status, subject=subject, message=message, reason=reason)
            if attempt >= self._options.max_retries:
                raise error_for_status(
                    status, subject=subject,
                    message=f"{message} (gave up after {attempt + 1} attempts)", reason=reason,
                )
            delay = backoff_delay(
                attempt, base=self._options.backoff_base, cap=self._options.backoff_cap,
                retry_after=retry_after,
            )
            log.info("%s: %s %s failed (%s), retrying in %.1fs", subject, method, path, status or message, delay)
            time.sleep(delay)
            attempt += 1

    def _headers(self, headers: dict[str, str]) -> dict[str, str]:
        """Request headers with the client's defaults (User-Agent) and credentials. What the
        client's generic param_serialize does, without its per-request serialisation cost;
        auth_settings() still refreshes expiring tokens (exec plugins, OIDC)."""
        result = {**self._api.default_headers, **headers}
        auth = self._api.configuration.auth_settings().get("BearerToken")
        if auth:
            result[auth["key"]] = auth["value"]
        return result

    # -- discovery ---------------------------------------------------------------------------

    def _discover(self, api_version: str) -> dict[str, Resource]:
        with self._discovery_lock:
            cached = self._group_versions.get(api_version)
        if cached is not None:
            return cached
        group, version = split_api_version(api_version)
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            listing = self.request("GET", path, subject=f"API discovery of {api_version}", verb="discovery")
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

    def namespaced_resources(self) -> list[Resource]:
        """Every listable namespaced kind the server serves, at each group's preferred version
        (for checking what a namespace holds before deleting it)."""
        group_versions = ["v1"]
        groups = self.request("GET", "/apis", subject="discovery", verb="discovery")
        group_versions += [g["preferredVersion"]["groupVersion"] for g in groups.get("groups", [])]
        found = []
        for group_version in group_versions:
            for resource in self._discover(group_version).values():
                if resource.namespaced and "list" in resource.verbs:
                    found.append(resource)
        return found

    def forget_discovery(self, api_version: str | None = None) -> None:
        """Drop cached discovery (after a CRD was applied, its group becomes served)."""
        with self._discovery_lock:
            if api_version is None:
                self._group_versions.clear()
            else:
                self._group_versions.pop(api_version, None)
            self._preferred = None

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
        self, resource: Resource, *, namespace: str | None = None, resource_version: str, timeout_seconds: int = 300
    ) -> Iterator[Object]:
        """Watch events (`{"type": ADDED|MODIFIED|DELETED|ERROR, "object": ...}`) after
        `resource_version`, until the server closes the watch (after `timeout_seconds`). An
        ERROR event (410 Gone: the version is too old) is yielded, not raised: the caller lists
        again. Raises ClusterError when the watch cannot start or breaks off."""
        subject = f"{resource.kind} in {namespace}" if namespace else resource.kind
        query = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(timeout_seconds)}
        url = self._api.configuration.host + resource.path(namespace=namespace) + f"?{urlencode(query)}"
        self._limiter.acquire()
        self.stats.count("watch")
        try:
            response = self._api.call_api("GET", url, header_params=self._headers({"Accept": "application/json"}),
                                          _request_timeout=(10.0, timeout_seconds + 30.0))
        except (urllib3.exceptions.HTTPError, OSError, k8s_client.ApiException) as error:
            raise Unavailable(subject, f"cannot watch at {self.server}: {error}") from error
        raw = response.response
        try:
            if not 200 <= int(response.status) < 300:
                message, reason = _status_message(raw.data or b"", str(response.reason))
                raise error_for_status(int(response.status), subject=subject, message=message, reason=reason)
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
    ) -> Object:
        """Server-side apply `obj`; with dry_run the server validates and predicts, writing nothing."""
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
            body=json.dumps(obj, separators=(",", ":")),
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
        dry_run: bool = False,
        propagation: str = "Background",
    ) -> bool:
        """Delete an object; False when it was already gone. With `uid`, only that exact
        object is deleted (a precondition), never a namesake created since we looked."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if uid:
            body["preconditions"] = {"uid": uid}
        query = {"dryRun": "All"} if dry_run else None
        try:
            self.request(
                "DELETE", resource.path(namespace=namespace, name=name),
                subject=subject, verb="delete", query=query, body=body,
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
