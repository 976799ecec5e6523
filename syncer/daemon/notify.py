"""Notifications: a webhook is told when an App fails, recovers, or changes health.

The message is JSON, POSTed with `X-Syncer-Signature-256: sha256=<hex>`, the HMAC-SHA256 of
the exact body under a shared secret (GitHub's scheme, so existing receivers verify it the
same way), and `X-Syncer-Event: failed|recovered|health`. Receivers are configured per
daemon (`--notify-url`) and per App (`spec.notification`); both get every message of the
App. Sending never delays a sync: messages go out from a small pool of their own threads, a
receiver that fails is logged and not retried (the next transition sends a new message).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from syncer.apply.status import now_rfc3339

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Syncer-Signature-256"
EVENT_HEADER = "X-Syncer-Event"
TIMEOUT = 10.0


@dataclass(frozen=True)
class Receiver:
    url: str
    secret: bytes | None = None


def transitions(previous: dict[str, Any], status: dict[str, Any]) -> list[str]:
    """What is worth telling between two statuses of an App: a sync that starts failing, one
    that succeeds after failures, and a new health. A sync failing again is not news."""
    events = []
    before = (previous.get("lastSync") or {}).get("result")
    after = (status.get("lastSync") or {}).get("result")
    if after == "Failed" and before != "Failed":
        events.append("failed")
    if after == "Succeeded" and before == "Failed":
        events.append("recovered")
    if previous.get("health") and status.get("health") and previous["health"] != status["health"]:
        events.append("health")
    return events


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
    """POST one message; raises OSError (urllib's errors) when the receiver does not take it."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {"Content-Type": "application/json", EVENT_HEADER: str(payload["event"]),
               "User-Agent": "syncer-notifier"}
    if receiver.secret is not None:
        headers[SIGNATURE_HEADER] = signature(body, receiver.secret)
    request = urllib.request.Request(receiver.url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - a configured URL
        response.read()


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
        except (OSError, urllib.error.URLError) as error:
            log.warning("App/%s/%s: notification %s to %s failed: %s", app["namespace"], app["name"],
                        payload["event"], receiver.url, error)
            return
        log.info("App/%s/%s: notified %s of %s", app["namespace"], app["name"], receiver.url, payload["event"])

    def close(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
