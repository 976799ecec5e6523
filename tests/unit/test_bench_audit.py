"""Counting one command's requests from audit log lines: its time window and user agent only,
dry-runs apart from writes, bookkeeping apart from object writes, LISTs per collection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.audit import AuditLog, ObjectKey, count_requests, parse_event, parse_timestamp

BASE = parse_timestamp("2026-01-02T03:04:05.000000Z")


def line(
    verb: str,
    *,
    at: float = 1.0,
    agent: str = "OpenAPI-Generator/37.0.2/python",
    resource: str | None = "configmaps",
    namespace: str | None = "app",
    name: str | None = "web",
    query: str = "",
    stage: str = "ResponseComplete",
) -> str:
    """One audit event as the API server writes it (Metadata level)."""
    seconds = int(at)
    micros = round((at - seconds) * 1_000_000)
    event: dict[str, Any] = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "stage": stage,
        "requestURI": "/api/v1/namespaces/app/configmaps/web" + (f"?{query}" if query else ""),
        "verb": verb, "user": {"username": "syncer-admin"}, "userAgent": agent,
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": f"2026-01-02T03:04:{5 + seconds:02d}.{micros:06d}Z",
    }
    if resource is not None:
        event["objectRef"] = {"resource": resource, "namespace": namespace, "name": name, "apiVersion": "v1"}
    return json.dumps(event)


def events(*lines: str) -> list[Any]:
    return [e for e in (parse_event(text) for text in lines) if e is not None]


def test_timestamp_is_utc() -> None:
    assert parse_timestamp("1970-01-01T00:00:01.500000Z") == 1.5


def test_dry_runs_are_not_writes() -> None:
    counts = count_requests(
        events(line("patch", query="dryRun=All&fieldManager=syncer"), line("patch", query="fieldManager=syncer")),
        user_agent="OpenAPI-Generator/", since=BASE, until=BASE + 10,
    )
    assert counts.by_category == {"dry-run patch": 1, "patch": 1}
    assert (counts.dry_runs, counts.writes, counts.object_writes) == (1, 1, 1)


def test_other_agents_and_times_are_left_out() -> None:
    counts = count_requests(
        events(
            line("list", at=1.0),
            line("list", at=1.0, agent="kube-controller-manager/v1.20.2"),
            line("list", at=0.5),
            line("list", at=3.5),
        ),
        user_agent="OpenAPI-Generator/", since=BASE + 1.0, until=BASE + 3.0,
    )
    assert counts.total == 1


def test_kubectl_prefix_covers_its_dispatcher() -> None:
    counts = count_requests(
        events(line("get", agent="kubectl/v1.32.4 (linux/amd64)"), line("get", agent="kubectl-dispatcher/v1.0")),
        user_agent="kubectl", since=BASE, until=BASE + 10,
    )
    assert counts.total == 2


def test_discovery_is_a_request_without_object() -> None:
    counts = count_requests(events(line("get", resource=None)), user_agent="OpenAPI-Generator/",
                            since=BASE, until=BASE + 10)
    assert counts.by_category == {"discovery": 1}
    assert counts.writes == 0


def test_bookkeeping_writes_are_counted_apart() -> None:
    bookkeeping = (ObjectKey("leases", "app", "syncer-bench"), ObjectKey("events", "app", None))
    counts = count_requests(
        events(
            line("create", resource="leases", name="syncer-bench"),
            line("delete", resource="leases", name="syncer-bench"),
            line("create", resource="events", name=None),
            line("patch", resource="configmaps", name="web"),
            line("get", resource="leases", name="syncer-bench"),
        ),
        user_agent="OpenAPI-Generator/", since=BASE, until=BASE + 10, bookkeeping=bookkeeping,
    )
    assert counts.object_writes == 1
    assert dict(counts.bookkeeping_writes) == {
        "create leases/app/syncer-bench": 1, "delete leases/app/syncer-bench": 1, "create events/app/*": 1,
    }
    assert counts.writes == 4


def test_lists_are_counted_per_collection() -> None:
    counts = count_requests(
        events(line("list", name=None), line("list", name=None), line("list", namespace="other", name=None),
               line("list", resource="namespaces", namespace=None, name=None)),
        user_agent="OpenAPI-Generator/", since=BASE, until=BASE + 10,
    )
    summary = counts.to_dict()
    assert (summary["lists"], summary["list_keys"], summary["max_lists_per_key"]) == (4, 3, 2)


@pytest.mark.parametrize("text", ["", "{not json", json.dumps({"stage": "ResponseStarted", "verb": "watch"})])
def test_incomplete_or_uncounted_lines_are_skipped(text: str) -> None:
    assert parse_event(text) is None


def test_log_is_read_forward_without_half_written_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_text(line("get") + "\n" + line("list")[:40])
    log = AuditLog(path)
    first, offset = log.read(0)
    assert [e.verb for e in first] == ["get"]
    with path.open("a") as file:
        file.write(line("list")[40:] + "\n" + line("patch") + "\n")
    later, _ = log.read(offset)
    assert [e.verb for e in later] == ["list", "patch"]
