"""Notifications: a webhook is told when an App fails, recovers, or changes health.

The message is JSON, POSTed with `X-Syncer-Signature-256: sha256=<hex>`, the HMAC-SHA256 of
the exact body under a shared secret (GitHub's scheme, so existing receivers verify it the
same way), and `X-Syncer-Event: failed|recovered|health`. Receivers are configured per
daemon (`--notify-url`) and per App (`spec.notification`); both get every message of the
App. Sending never delays a sync: messages go out from a small pool of their own threads, a
receiver that fails is logged and not retried (the next transition sends a new message).

An App's receiver is a tenant's choice of where the daemon sends requests from: its address
is vetted (`syncer.daemon.notifytarget`), the connection goes to the address that was vetted,
and no redirect is followed, for any receiver: a 3xx answer is a failure.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from syncer.apply.status import now_rfc3339
from syncer.daemon.notifytarget import AddressAllowList, Target, TargetRefused, check_target, resolve_target

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Syncer-Signature-256"
EVENT_HEADER = "X-Syncer-Event"
TIMEOUT = 10.0


@dataclass(frozen=True)
class Receiver:
    url: str
    secret: bytes | None = None
    allow: AddressAllowList | None = AddressAllowList()
    """The addresses refused by default that this receiver may still reach (`--notify-allow`);
    None for the operator's own `--notify-url`, which may be anywhere."""


class NotificationFailed(Exception):
    """A receiver did not take a message: refused address, network error, or a non-2xx answer."""


def transitions(previous: dict[str, Any], status: dict[str, Any]) -> list[str]:
    """What is worth telling between two statuses of an App: a distinct failure (another
    revision, cause or set of failed objects; never another message text), a sync that
    succeeds after failures, a new health, a new plan waiting for approval, a rollback
    applied and held, and its hold ended. The same failure again is not news."""
    events = []
    before = (previous.get("lastSync") or {}).get("result")
    after = (status.get("lastSync") or {}).get("result")
    if after == "Failed" and (before != "Failed" or _failure(previous) != _failure(status)):
        events.append("failed")
    if after == "Succeeded" and before == "Failed":
        events.append("recovered")
    if previous.get("health") and status.get("health") and previous["health"] != status["health"]:
        events.append("health")
    pending = (status.get("pendingPlan") or {}).get("digest")
    if pending and pending != (previous.get("pendingPlan") or {}).get("digest"):
        events.append("awaiting-approval")
    if _rolled_back(status) and _rolled_back(status) != _rolled_back(previous):
        events.append("rolled-back")
    if (previous.get("hold") or {}).get("holding") and (status.get("hold") or {}).get("holding") is False:
        events.append("hold-released")
    return events


def _rolled_back(status: dict[str, Any]) -> tuple[Any, ...] | None:
    """The hold a status shows applied (its revision is the applied one), or None."""
    hold = status.get("hold") or {}
    if not hold.get("holding") or status.get("lastAppliedRevision") != hold.get("revision"):
        return None
    return hold.get("revision"), hold.get("from"), hold.get("requestedAt")


def _failure(status: dict[str, Any]) -> tuple[Any, Any, Any]:
    last_sync = status.get("lastSync") or {}
    failure = last_sync.get("failure") or {}
    return last_sync.get("revision"), failure.get("cause"), failure.get("objects")


def message(event: str, *, namespace: str, name: str, previous: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    last_sync = status.get("lastSync") or {}
    return {
        "event": event,
        "app": {"apiVersion": "syncer.dev/v1alpha1", "kind": "App", "namespace": namespace, "name": name},
        "revision": last_sync.get("revision") or status.get("lastAttemptedRevision"),
        "result": last_sync.get("result"),
        "error": last_sync.get("error"),
        "health": status.get("health"),
        "previousHealth": previous.get("health"),
        "ready": ready.get("status"),
        "reason": ready.get("reason"),
        "message": ready.get("message"),
        "time": now_rfc3339(),
    }


def signature(body: bytes, secret: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def send(receiver: Receiver, payload: dict[str, Any]) -> None:
    """POST one message to an address vetted once; raises NotificationFailed when the receiver
    does not take it (a redirect included: it is not followed)."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {"Content-Type": "application/json", EVENT_HEADER: str(payload["event"]),
               "User-Agent": "syncer-notifier"}
    if receiver.secret is not None:
        headers[SIGNATURE_HEADER] = signature(body, receiver.secret)
    try:
        target = check_target(receiver.url, receiver.allow)
        address = resolve_target(target, receiver.allow)
        connection = _pinned_connection(target, address)
        try:
            connection.request("POST", target.path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
    except TargetRefused as refused:
        raise NotificationFailed(str(refused)) from None
    except (OSError, http.client.HTTPException) as error:
        raise NotificationFailed(f"cannot send: {error}") from error
    if 300 <= response.status < 400:
        raise NotificationFailed(f"the receiver answered {response.status} {response.reason} (to "
                                 f"{response.getheader('Location')}); redirects are not followed")
    if not 200 <= response.status < 300:
        raise NotificationFailed(f"the receiver answered {response.status} {response.reason}")


def _pinned_connection(target: Target, address: str) -> http.client.HTTPConnection:
    """A connection to `address` that speaks to `target.host`: the Host header and (https)
    the TLS server name and certificate check are the URL's, the socket goes where the
    vetted address is, whatever the resolver would answer now."""

    def connect(_: tuple[str, int], timeout: float | None = TIMEOUT, source: tuple[str, int] | None = None,
                ) -> socket.socket:
        return socket.create_connection((address, target.port), timeout, source)

    connection: http.client.HTTPConnection
    if target.scheme == "https":
        connection = http.client.HTTPSConnection(target.host, target.port, timeout=TIMEOUT,
                                                 context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(target.host, target.port, timeout=TIMEOUT)
    connection._create_connection = connect  # type: ignore[attr-defined]  # http.client's own hook
    return connection


class Notifier:
    """Sends messages in the background, in the order they were queued per receiver pool."""

    def __init__(self, *, workers: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="notify")

    def submit(self, receivers: list[Receiver], payload: dict[str, Any]) -> None:
        for receiver in receivers:
            self._pool.submit(self._send, receiver, payload)

    @staticmethod
    def _send(receiver: Receiver, payload: dict[str, Any]) -> None:
        app = payload["app"]
        try:
            send(receiver, payload)
        except NotificationFailed as error:
            log.warning("App/%s/%s: notification %s to %s failed: %s", app["namespace"], app["name"],
                        payload["event"], receiver.url, error)
            return
        log.info("App/%s/%s: notified %s of %s", app["namespace"], app["name"], receiver.url, payload["event"])

    def close(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
