"""What GET /metrics shows: no `*_created` series, the standard process and Python collectors,
a per-app state gauge (one series per app, like argocd_app_info) and applied objects by action."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from syncer.apply.changeset import Change, ChangeSet
from syncer.daemon.metrics import Metrics
from syncer.model import AppId, ObjectRef

SHOP = AppId(namespace="team-a", name="shop")
WEB = AppId(namespace="team-a", name="web")


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition()[0].decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def change(action: str, name: str) -> Change:
    return Change(ref=ObjectRef(group="", kind="ConfigMap", namespace="shop", name=name), api_version="v1",
                  action=action)  # type: ignore[arg-type]


def test_series_a_dashboard_needs_and_none_it_does_not() -> None:
    metrics = Metrics([SHOP, WEB], waiting=[SHOP])
    names = {name for name, _ in samples(metrics)}
    assert [name for name in names if name.endswith("_created")] == []
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "python_info",
            "python_gc_collections_total"} <= names
    assert samples(metrics)[("syncer_app_info", (("app", "web"), ("app_namespace", "team-a"),
                                                 ("health_status", "Unknown"), ("sync_status", "Unknown")))] == 1


def test_state_gauge_and_applied_counts_by_action() -> None:
    metrics = Metrics([SHOP], waiting=[SHOP])
    changes = ChangeSet(app="shop", revision="abc", changes=[
        change("created", "a"), change("created", "b"), change("configured", "c"), change("deleted", "d")])
    metrics.observe_sync(SHOP, changes=changes, ok=True, seconds=1.0)
    got = samples(metrics)
    assert got[("syncer_objects_applied_total", (("action", "created"), ("app", "shop"), ("app_namespace", "team-a")))] == 2
    assert got[("syncer_objects_applied_total", (("action", "configured"), ("app", "shop"), ("app_namespace", "team-a")))] == 1
    assert got[("syncer_objects_applied_total", (("action", "recreated"), ("app", "shop"), ("app_namespace", "team-a")))] == 0
    assert got[("syncer_objects_pruned_total", (("app", "shop"), ("app_namespace", "team-a")))] == 1
    state = {labels: value for (name, labels), value in got.items() if name == "syncer_app_info"}
    assert state == {(("app", "shop"), ("app_namespace", "team-a"), ("health_status", "Healthy"), ("sync_status", "Succeeded")): 1}

    metrics.observe_sync(SHOP, changes=None, ok=False, seconds=1.0)
    state = {labels: value for (name, labels), value in samples(metrics).items() if name == "syncer_app_info"}
    assert state == {(("app", "shop"), ("app_namespace", "team-a"), ("health_status", "Unknown"), ("sync_status", "Failed")): 1}


def test_two_apps_of_one_name_in_two_namespaces_are_two_series() -> None:
    other = AppId(namespace="team-b", name="shop")
    metrics = Metrics([SHOP, other])
    metrics.observe_sync(other, changes=None, ok=False, seconds=1.0)
    metrics.observe_heal_trigger(other)
    got = samples(metrics)
    assert got[("syncer_sync_failures_total", (("app", "shop"), ("app_namespace", "team-b")))] == 1
    assert got[("syncer_sync_failures_total", (("app", "shop"), ("app_namespace", "team-a")))] == 0
    assert got[("syncer_drift_events_total", (("app", "shop"), ("app_namespace", "team-b")))] == 1


def test_the_state_gauge_says_the_health_the_app_status_says() -> None:
    """Report 3: the App said Healthy while syncer_app_info said Unknown (the app did not wait)."""
    metrics = Metrics([SHOP])
    metrics.observe_sync(SHOP, changes=ChangeSet(app="shop", revision="abc", changes=[]), ok=True, seconds=1.0)
    metrics.observe_health(SHOP, "Healthy")
    state = {labels: value for (name, labels), value in samples(metrics).items() if name == "syncer_app_info"}
    assert state == {(("app", "shop"), ("app_namespace", "team-a"), ("health_status", "Healthy"),
                      ("sync_status", "Succeeded")): 1}
    metrics.observe_health(SHOP, "Degraded")
    metrics.observe_sync(SHOP, changes=None, ok=False, seconds=1.0)
    state = {labels: value for (name, labels), value in samples(metrics).items() if name == "syncer_app_info"}
    assert state == {(("app", "shop"), ("app_namespace", "team-a"), ("health_status", "Degraded"),
                      ("sync_status", "Failed")): 1}
