"""What GET /metrics shows: no `*_created` series, the standard process and Python collectors,
a per-app state gauge (one series per app, like argocd_app_info) and applied objects by action."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from syncer.apply.changeset import Change, ChangeSet
from syncer.daemon.metrics import Metrics
from syncer.model import ObjectRef


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition()[0].decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def change(action: str, name: str) -> Change:
    return Change(ref=ObjectRef(group="", kind="ConfigMap", namespace="shop", name=name), api_version="v1",
                  action=action)  # type: ignore[arg-type]


def test_series_a_dashboard_needs_and_none_it_does_not() -> None:
    metrics = Metrics(["shop", "web"], waiting=["shop"])
    names = {name for name, _ in samples(metrics)}
    assert [name for name in names if name.endswith("_created")] == []
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "python_info",
            "python_gc_collections_total"} <= names
    assert samples(metrics)[("syncer_app_info", (("app", "web"), ("health_status", "Unknown"),
                                                 ("sync_status", "Unknown")))] == 1


def test_state_gauge_and_applied_counts_by_action() -> None:
    metrics = Metrics(["shop"], waiting=["shop"])
    changes = ChangeSet(app="shop", revision="abc", changes=[
        change("created", "a"), change("created", "b"), change("configured", "c"), change("deleted", "d")])
    metrics.observe_sync("shop", changes=changes, ok=True, seconds=1.0)
    got = samples(metrics)
    assert got[("syncer_objects_applied_total", (("action", "created"), ("app", "shop")))] == 2
    assert got[("syncer_objects_applied_total", (("action", "configured"), ("app", "shop")))] == 1
    assert got[("syncer_objects_applied_total", (("action", "recreated"), ("app", "shop")))] == 0
    assert got[("syncer_objects_pruned_total", (("app", "shop"),))] == 1
    state = {labels: value for (name, labels), value in got.items() if name == "syncer_app_info"}
    assert state == {(("app", "shop"), ("health_status", "Healthy"), ("sync_status", "Succeeded")): 1}

    metrics.observe_sync("shop", changes=None, ok=False, seconds=1.0)
    state = {labels: value for (name, labels), value in samples(metrics).items() if name == "syncer_app_info"}
    assert state == {(("app", "shop"), ("health_status", "Unknown"), ("sync_status", "Failed")): 1}
