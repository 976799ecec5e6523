"""The daemon benchmark's pure parts: workloads, the config it gives syncer run, /proc and
metrics parsing, and how requests at rest are classified."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.audit import AuditEvent, parse_event
from bench.daemonwork import (
    Latencies,
    Workload,
    classify_rest,
    daemon_config,
    metric_by_app,
    metric_value,
    parse_proc,
    parse_workloads,
    ratio,
    workload_apps,
)
from syncer.config import load_config


def test_workloads_are_parsed_and_repositories_capped_at_the_apps() -> None:
    assert parse_workloads("200x20, 20x500", repos=4) == [Workload(200, 20, 4), Workload(20, 500, 4)]
    assert parse_workloads("2x8", repos=4) == [Workload(2, 8, 2)]
    for bad in ("", "20", "0x20", "5x3", "axb"):
        with pytest.raises(ValueError):
            parse_workloads(bad, repos=1)


def test_each_app_is_one_namespace_of_every_kind_spread_over_the_repositories() -> None:
    apps = workload_apps(Workload(apps=12, objects=8, repos=4), prefix="d1")
    assert [app.name for app in apps][:2] == ["d1-12x8-a00", "d1-12x8-a01"]
    assert [app.repo_index for app in apps][:5] == [0, 1, 2, 3, 0]
    first = apps[0]
    assert {item.namespace for item in first.objects} == {first.name}
    assert sorted({item.kind for item in first.objects}) == ["ConfigMap", "Deployment", "Secret", "Service"]
    assert len(first.objects) == 8 and len({item.file for item in first.objects}) == 8
    assert (first.first_configmap, first.first_secret) == ("configmap-00000", "secret-00001")
    first.change("7")
    configmap = next(item for item in first.objects if item.name == "configmap-00000")
    assert configmap.obj["data"]["revision"] == "7" and first.configmap_value == "7"


def test_the_config_is_one_syncer_run_accepts(tmp_path: Path) -> None:
    apps = workload_apps(Workload(apps=3, objects=4, repos=2), prefix="d1")
    path = tmp_path / "apps.yaml"
    path.write_text(daemon_config(apps, repos=[tmp_path / "r0", tmp_path / "r1"], interval="1m"))
    config = load_config(path)
    assert [app.name for app in config.apps] == [app.name for app in apps]
    loaded = config.apps[1]
    assert (loaded.interval, loaded.self_heal, loaded.create_namespace, loaded.namespace) == (60.0, True, True, apps[1].name)
    assert str(loaded.repo).endswith("r1")


def test_proc_files_give_cpu_with_reaped_children_and_peak_rss() -> None:
    stat = "4242 (syncer run) S 1 2 3 4 5 6 7 8 9 10 300 100 50 25 20 0 1 0"
    status = "Name:\tsyncer\nVmHWM:\t  90000 kB\nVmRSS:\t  80000 kB\n"
    sample = parse_proc(stat, status, ticks=100)
    assert (sample.cpu, sample.children_cpu, sample.total_cpu) == (4.0, 0.75, 4.75)
    assert (sample.rss_kb, sample.peak_rss_kb) == (80000, 90000)


def test_metrics_by_app_from_the_exposition() -> None:
    text = ('# HELP syncer_sync_runs_total Syncs run, per app.\n'
            'syncer_sync_runs_total{app="a"} 3.0\n'
            'syncer_sync_runs_total{app="b"} 1.0\n'
            'syncer_sync_failures_total{app="a"} 1.0\n'
            'syncer_watch_cache_lists 12.0\n')
    assert metric_by_app(text, "syncer_sync_runs_total") == {"a": 3.0, "b": 1.0}
    assert metric_value(text, "syncer_watch_cache_lists") == 12.0
    assert metric_value(text, "syncer_missing") is None


def _event(verb: str, resource: str | None, namespace: str | None = None, *, at: float = 10.0,
           agent: str = "OpenAPI-Generator/1", name: str | None = None, selector: str = "") -> AuditEvent:
    return AuditEvent(verb=verb, user_agent=agent, received=at, resource=resource, namespace=namespace, name=name,
                      label_selector=selector)


def test_requests_at_rest_are_classified_by_what_they_are_for() -> None:
    events = [
        _event("watch", "configmaps", selector="applyset.kubernetes.io/part-of"),
        _event("list", "configmaps", selector="applyset.kubernetes.io/id"),  # the cache's safety re-list
        _event("list", "namespaces"),  # a plan's LIST of a cluster-scoped kind
        _event("list", "configmaps", "shop"),
        _event("list", "configmaps", "shop"),
        _event("update", "leases", "default", name="syncer-shard-1"),
        _event("get", None),
        _event("list", "configmaps", "shop", agent="syncer-bench/daemon"),  # the benchmark's own
        _event("list", "configmaps", "shop", at=99.0),  # outside the window
    ]
    rest = classify_rest(events, user_agent="OpenAPI-Generator/", since=0.0, until=30.0)
    assert (rest.watches, rest.cache_lists, rest.leases, rest.other_total) == (1, 1, 1, 4)
    assert rest.other == {"list configmaps": 2, "list namespaces": 1, "discovery": 1}
    assert rest.lease_detail == {"update default/syncer-shard-1": 1}
    assert rest.per_minute(rest.other_total) == 8.0


def test_an_audit_line_gives_its_label_selector() -> None:
    line = json.dumps({
        "stage": "ResponseComplete", "verb": "list", "userAgent": "OpenAPI-Generator/1",
        "requestReceivedTimestamp": "2026-12-01T18:00:00.000000Z",
        "requestURI": "/api/v1/configmaps?labelSelector=applyset.kubernetes.io%2Fpart-of&limit=500",
        "objectRef": {"resource": "configmaps", "apiVersion": "v1"},
    })
    event = parse_event(line)
    assert event is not None
    assert event.label_selector == "applyset.kubernetes.io/part-of"
    assert event.resource == "configmaps" and event.namespace is None


def test_latencies_and_ratios_as_the_tables_print_them() -> None:
    assert Latencies((1.0, 3.0, 2.0)).text() == "2.0 / 3.0 (3)"
    assert Latencies((1.0, None)).text() == "1.0 / 1.0 (2), 1 timed out"
    assert Latencies((None,)).text() == "timed out (1)"
    assert Latencies(()).text() == "n/a"
    assert ratio(1.0, 4.0) == "0.25×" and ratio(0.0, 0.0) == "—" and ratio(1.0, 0.0) == "∞"
    assert ratio(None, 1.0) == "n/a"
