"""`Kube`: requests to one API server, with retries, and the verbs syncer uses.

It sends raw JSON requests (no model classes, so thousands of objects stay cheap), limits its
own request rate (the official client has no rate limiter), retries transient failures with
bounded exponential backoff within one deadline per request, and turns HTTP errors into
syncer's own error types (`errors.py`). Apply is server-side apply only; what to do for a kind
a server cannot server-side apply is the plan's decision (`syncer.apply.updateapply`).

The client knows the body it sent, so an error about a Secret is scrubbed of the Secret's
values here, where the error is made: the API server may quote a rejected value, and nothing
downstream (CLI output, logs, Events, status annotations) can leak what never reaches it.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal, overload
from urllib.parse import urlencode

import urllib3

from syncer.diff.secrets import scrub, secret_values
from syncer.errors import ClusterError, NotFound, Unavailable
from syncer.kube.config import ClientOptions, Connection, load_connection
from syncer.kube.discovery import Discovery, api_version_of_path, strict_fields_supported
from syncer.kube.errors import error_for_status, is_transient, server_answer
from syncer.kube.resource import Resource
from syncer.kube.transport import RateLimiter, RequestStats, Transport, backoff_delay, encode
from syncer.model import Object

log = logging.getLogger(__name__)

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
DROPS_BEFORE_GIVING_UP = 2
"""A request whose connection is closed without an answer this many times, while the server
answers a probe in between each time, is one the server fails on, not a network fault."""


def _server_timeout(seconds: float) -> int:
    """The server-side `timeout` of a write with `seconds` left: whole seconds, rounded up."""
    return max(1, math.ceil(seconds))


def _checked_before_last_byte(payload: bytes, check: Callable[[], None]) -> Iterator[bytes]:
    """`payload` as the body of a request, with `check` run before its last byte is handed to
    the socket. When `check` raises, the request is abandoned with its body incomplete: the
    connection is closed and the server, still waiting for the last byte, never acts on it."""
    yield payload[:-1]
    check()
    yield payload[-1:]


def _is_dry_run(query: dict[str, str] | None, body: Any) -> bool:
    return bool(query and query.get("dryRun")) or (isinstance(body, dict) and bool(body.get("dryRun")))


class Kube:
    """Raw-JSON access to one cluster, with discovery, rate limiting and retries.

    Safe to share between threads.
    """

    def __init__(self, connection: Connection, options: ClientOptions = ClientOptions()) -> None:
        self._options = options
        self._http = Transport(connection, pool_size=options.pool_size)
        self._limiter = RateLimiter(qps=options.qps, burst=options.burst)
        self._discovery = Discovery(self._discovery_get)
        self.stats = RequestStats()
        self._write_guard: Callable[[], None] | None = None

    def guarded(self, write_guard: Callable[[], None]) -> Kube:
        """This client (same connection pool, discovery and stats) with a check that runs for
        every write request, retries included, after the rate limiter and before the last
        byte of the request goes out: the sync's lock uses it to stop all writes the moment it
        can no longer prove it holds the lock (fencing: `syncer.kube.lease`)."""
        view = copy.copy(self)
        view._write_guard = write_guard
        return view

    @property
    def write_bound(self) -> int:
        """Seconds a write this client sent may still run on the server after the server
        received it: every write carries at most this as its server-side `timeout`. A lock
        taken over from us waits this out (`syncer.kube.lease`, fencing)."""
        return _server_timeout(self._options.request_timeout)

    @classmethod
    def connect(cls, options: ClientOptions = ClientOptions()) -> Kube:
        return cls(load_connection(options), options)

    @property
    def server(self) -> str:
        return self._http.host

    def close(self) -> None:
        self._http.close()

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
        decode: bool = True,
    ) -> Any:
        """Send one request, retrying transient failures until `request_timeout` has passed
        (`retry=False`: once); return the decoded JSON body, or None with `decode=False` (a
        write whose answer nobody reads: decoding it was a tenth of a fresh sync's Python
        CPU). `encoded` is `body` already encoded (see `encode`), sent as it is. Errors about
        a Secret body are scrubbed of its values."""
        headers = {"Content-Type": content_type} if body is not None else {}
        payload = encoded if encoded is not None else None if body is None else encode(body)
        dry_run = _is_dry_run(query, body)
        budget = self._options.request_timeout
        deadline = time.monotonic() + budget
        attempt = dropped_while_reachable = 0
        renewed_credentials = False
        guard = self._write_guard if method != "GET" and not dry_run else None
        while True:
            self._limiter.acquire()
            sent_body: bytes | Iterator[bytes] | None = payload
            if guard is not None and payload:
                # The check runs after the rate limiter (which may wait) and after the request
                # line, the headers and all but the last byte of the body went out: the server
                # cannot act on a request before its last byte, and its timeout for the request
                # (below) started when it read the headers, before the check.
                headers = {**headers, "Content-Length": str(len(payload))}
                sent_body = _checked_before_last_byte(payload, guard)
            elif guard is not None:
                guard()
            self.stats.count(verb)
            retry_after: float | None = None
            details: dict[str, Any] = {}
            remaining = max(deadline - time.monotonic(), 0.1)
            sent_query = dict(query or {})
            if method != "GET":
                # The server's own deadline for a write: once it passes, the server stops
                # working on the request, so a write cannot land long after we gave up on it
                # (a lock taken over from us waits this bound: `write_bound`).
                sent_query["timeout"] = f"{_server_timeout(remaining)}s"
            target = path + (f"?{urlencode(sent_query)}" if sent_query else "")
            try:
                response = self._http.send(
                    method, target, body=sent_body, headers=headers,
                    timeout=urllib3.Timeout(connect=min(self._options.connect_timeout, remaining), read=remaining),
                )
                status = response.status
                data = response.data or b""
                if 200 <= status < 300:
                    return json.loads(data) if data and decode else None
                answer = server_answer(
                    data, fallback=str(response.reason), retry_after_header=response.headers.get("Retry-After")
                )
                message, reason, retry_after, details = answer.message, answer.reason, answer.retry_after, answer.details
                if status == 401 and not renewed_credentials:
                    # The credentials were refused before they expired (a revoked token): ask
                    # for new ones once, as kubectl does for an exec plugin's token.
                    renewed_credentials = True
                    self._http.expire_credentials()
                    continue
                if status == 404 and not reason and (served := api_version_of_path(path)) is not None:
                    # A bare `404 page not found`, not a Status: the kind is not served (its
                    # CRD was deleted). Discover it again next time.
                    self._discovery.forget(served)
                if status == 403:
                    # Kubernetes 1.20 gives no reason at all when an apply would create the
                    # object; say which RBAC verbs the request needs.
                    message = message.rstrip() + (
                        " (the credentials lack the RBAC verb for this request: a server-side apply "
                        "needs 'patch', and 'create' too when the object does not exist yet)"
                        if method == "PATCH" else f" (the credentials may not {method} this resource)")
                if status == 500 and "failed to create typed patch object" in message:
                    # A server-side apply the server cannot convert to its schema (a number
                    # where the schema wants a string on Kubernetes < 1.22; a field the schema
                    # lacks on every release, 1.37 included) is answered with a 500 whose
                    # Status has no reason and no causes; it is invalid input, not a fault.
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

    # -- discovery (syncer.kube.discovery, shared by every view of this client) ---------------

    def _discovery_get(self, path: str, *, subject: str, retry: bool) -> Any:
        return self.request("GET", path, subject=subject, verb="discovery", retry=retry)

    def resource_for(self, api_version: str, kind: str) -> Resource:
        return self._discovery.resource_for(api_version, kind)

    def preferred_resource(self, group: str, kind: str) -> Resource:
        return self._discovery.preferred_resource(group, kind)

    def listable_resources(self) -> tuple[list[Resource], dict[str, str]]:
        return self._discovery.listable_resources()

    def forget_discovery(self, api_version: str | None = None) -> None:
        """Drop cached discovery (after a CRD was applied, its group becomes served)."""
        self._discovery.forget(api_version)

    def server_version(self) -> tuple[int, int, int] | None:
        return self._discovery.server_version()

    def served_group_versions(self) -> tuple[str, ...]:
        return self._discovery.served_group_versions()

    def field_validation(self) -> dict[str, str]:
        """The query of every object write: `fieldValidation=Strict` where the server supports
        it, so that a body repeating a field (and, in a create or update, a field the schema
        lacks) is refused instead of accepted with a warning header nobody reads. Server-side
        apply refuses unknown fields on every release by itself. Nothing on older servers,
        which keep their own behaviour."""
        return {"fieldValidation": "Strict"} if strict_fields_supported(self.server_version()) else {}

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
                answer = server_answer(raw.data or b"", fallback=str(raw.reason), retry_after_header=None)
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

    @overload
    def apply(self, resource: Resource, obj: Object, *, subject: str, field_manager: str, force: bool,
              dry_run: bool, encoded: bytes | None = None, decode: Literal[True] = True) -> Object: ...

    @overload
    def apply(self, resource: Resource, obj: Object, *, subject: str, field_manager: str, force: bool,
              dry_run: bool, encoded: bytes | None = None, decode: bool) -> Object | None: ...

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
        decode: bool = True,
    ) -> Object | None:
        """Server-side apply `obj`; with dry_run the server validates and predicts, writing nothing.
        `encoded`: `encode(obj)`, when the caller keeps it for more than one request (the
        dry-run and the apply of one object send the same bytes). `decode=False`: the server's
        answer is not decoded, and None returned."""
        metadata = obj.get("metadata") or {}
        query = {"fieldManager": field_manager, **self.field_validation()}
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
            decode=decode,
        )
        if not decode:
            return None
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
                subject=subject, verb="dry-run" if dry_run else "delete", body=body, decode=False,
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
