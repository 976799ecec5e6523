"""What a failed response says (its Kubernetes Status), whether to try again, and which of
syncer's error types it becomes. Decisions are made on the status code and the Status'
`reason`, never on message text."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from syncer.errors import ClusterError, Conflict, Forbidden, Invalid, NotFound, Unavailable

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
"""Overload and gateway answers. A 500 is retried only when the server asks for it (see
`is_transient`)."""


@dataclass(frozen=True)
class ServerAnswer:
    """What a failed response says: the Status `message`, `reason` and `details` (with its
    `causes`), and when to retry."""

    message: str
    reason: str = ""
    retry_after: float | None = None
    """Seconds, from the Retry-After header or the Status' details.retryAfterSeconds."""
    details: dict[str, Any] = field(default_factory=dict)


def server_answer(body: bytes, *, fallback: str, retry_after_header: str | None) -> ServerAnswer:
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

