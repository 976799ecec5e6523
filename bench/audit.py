"""Counting one command's API requests from the API server's audit log. Pure, but for
`AuditLog`, which reads the file.

The control plane logs every request once (stage ResponseComplete, Metadata level; see
`syncer.devcluster.config.audit_policy`). A command's requests are those received between its
start and its end whose user agent starts with the tool's (`syncer/` for syncer's
Python client, `kubectl` for kubectl and its version dispatcher); kube-controller-manager and
the API server's own loopback requests have agents of their own and drop out.

Categories, as the benchmark reports them:
- `discovery`: GETs of non-resource paths (`/api`, `/apis/apps/v1`, `/openapi/v2`, `/version`);
- `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`: resource
  requests by the server's verb (a server-side apply is a `patch`);
- `dry-run <verb>`: a write sent with `dryRun=All`, which validates and predicts but stores
  nothing, so it is not a write.
Writes are split into object writes and bookkeeping writes (the tool's own inventory and lock
objects, named by the caller), because "one object changed" should cost one object write.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
COUNTED_STAGES = frozenset({"ResponseComplete", "Panic"})
SYNCER_AGENT = "syncer/"
KUBECTL_AGENT = "kubectl"
KPT_AGENT = "kpt"


@dataclass(frozen=True)
class AuditEvent:
    """The part of one audit event the benchmark needs."""

    verb: str
    user_agent: str
    received: float
    """requestReceivedTimestamp, as seconds since the epoch."""
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    dry_run: bool = False
    status: int = 0
    label_selector: str = ""
    """The request's `labelSelector` (decoded), empty without one."""

    @property
    def category(self) -> str:
        if self.resource is None:
            return "discovery"
        if self.dry_run:
            return f"dry-run {self.verb}"
        return self.verb

    @property
    def is_write(self) -> bool:
        return self.resource is not None and not self.dry_run and self.verb in WRITE_VERBS


@dataclass(frozen=True)
class ObjectKey:
    """An object as the audit log names it: plural resource, namespace, name."""

    resource: str
    namespace: str | None
    name: str | None
    """None: any object of the resource in the namespace (Events get generated names)."""

    def matches(self, event: AuditEvent) -> bool:
        return (
            (event.resource, event.namespace) == (self.resource, self.namespace)
            and (self.name is None or event.name == self.name)
        )

    def __str__(self) -> str:
        name = self.name or "*"
        return f"{self.resource}/{self.namespace}/{name}" if self.namespace else f"{self.resource}/{name}"


def parse_timestamp(text: str) -> float:
    """RFC 3339 with microseconds and `Z`, as the API server writes it."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse_event(line: str) -> AuditEvent | None:
    """One audit log line; None for other stages (a watch's ResponseStarted) and for lines
    that are not complete JSON events (the server may be mid-write at the end of the file)."""
    try:
        raw: Any = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict) or raw.get("stage") not in COUNTED_STAGES:
        return None
    ref = raw.get("objectRef") or {}
    uri = str(raw.get("requestURI", ""))
    query = uri.partition("?")[2]
    return AuditEvent(
        verb=str(raw.get("verb", "")),
        user_agent=str(raw.get("userAgent", "")),
        received=parse_timestamp(str(raw["requestReceivedTimestamp"])),
        resource=ref.get("resource") if ref else None,
        namespace=ref.get("namespace"),
        name=ref.get("name"),
        dry_run=any(part.startswith("dryRun=") for part in query.split("&")),
        status=int((raw.get("responseStatus") or {}).get("code") or 0),
        label_selector=parse_qs(query).get("labelSelector", [""])[0],
    )


@dataclass
class RequestCounts:
    """One command's requests."""

    by_category: Counter[str] = field(default_factory=Counter)
    object_writes: int = 0
    bookkeeping_writes: Counter[str] = field(default_factory=Counter)
    """`<verb> <object>` -> how often, for the tool's own inventory and lock objects."""
    lists_by_key: Counter[str] = field(default_factory=Counter)
    """`<resource>/<namespace>` -> LIST requests (more than one for a key means the tool read
    the same collection twice, or followed pagination)."""

    @property
    def total(self) -> int:
        return sum(self.by_category.values())

    @property
    def writes(self) -> int:
        return self.object_writes + sum(self.bookkeeping_writes.values())

    @property
    def dry_runs(self) -> int:
        return sum(count for category, count in self.by_category.items() if category.startswith("dry-run"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_category": dict(sorted(self.by_category.items())),
            "object_writes": self.object_writes,
            "bookkeeping_writes": dict(sorted(self.bookkeeping_writes.items())),
            "dry_runs": self.dry_runs,
            "lists": sum(self.lists_by_key.values()),
            "list_keys": len(self.lists_by_key),
            "max_lists_per_key": max(self.lists_by_key.values(), default=0),
        }


def count_requests(
    events: Iterable[AuditEvent],
    *,
    user_agent: str,
    since: float,
    until: float,
    bookkeeping: Iterable[ObjectKey] = (),
) -> RequestCounts:
    """The requests of one command: received in [since, until] from the given user agent."""
    own = list(bookkeeping)
    counts = RequestCounts()
    for event in events:
        if not (since <= event.received <= until and event.user_agent.startswith(user_agent)):
            continue
        counts.by_category[event.category] += 1
        if event.category == "list":
            counts.lists_by_key[f"{event.resource}/{event.namespace or ''}"] += 1
        if event.is_write:
            target = next((key for key in own if key.matches(event)), None)
            if target is None:
                counts.object_writes += 1
            else:
                counts.bookkeeping_writes[f"{event.verb} {target}"] += 1
    return counts


def events_per_second(events: Iterable[AuditEvent], *, since: float, until: float) -> float:
    """Requests of every client received in [since, until], per second."""
    span = max(until - since, 1e-6)
    return sum(1 for event in events if since <= event.received <= until) / span


class AuditLog:
    """The audit log file, read forward from remembered offsets."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> int:
        """Where the log ends now; pass it to `events_from` later."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def events_from(self, offset: int) -> list[AuditEvent]:
        return self.read(offset)[0]

    def read(self, offset: int) -> tuple[list[AuditEvent], int]:
        """The events of the complete lines after `offset`, and the offset after them (a
        line the server is still writing is left for the next read)."""
        events = []
        with self.path.open("rb") as file:
            file.seek(offset)
            for raw in file:
                if not raw.endswith(b"\n"):
                    break
                offset += len(raw)
                event = parse_event(raw.decode("utf-8", "replace"))
                if event is not None:
                    events.append(event)
        return events, offset
