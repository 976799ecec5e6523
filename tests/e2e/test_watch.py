"""The watch-driven daemon against a real API server: a hand edit or deletion of a member is
healed within seconds without waiting for a tick, an idle resync sends no request, drift is
only counted without selfHeal, and the watch cache recovers when it cannot resume."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client

from syncer.apply.applyset import Inventory
from syncer.apply.membercache import MemberCache
from syncer.daemon import Daemon
from syncer.kube import ClientOptions, Kube
from syncer.model import AppId, ObjectRef
from tests.conftest import ClusterAccess
from tests.e2e.apps import SLACK, eventually
from tests.e2e.proxy import kubeconfig_through
from tests.e2e.test_daemon import (  # noqa: F401 - fixtures
    app, color, commit, configmap_yaml, get, metric, read_configmap, repo, start_daemon, url,
)

HOUR = 3600.0


def api_requests(daemon: Daemon) -> int:
    """Requests the daemon's syncs sent (the watch cache has a client of its own)."""
    return sum(daemon._kube.stats.by_verb.values())


def test_a_hand_edit_or_deletion_is_healed_within_seconds(
    repo: Path, namespace: str, kube_api: client.ApiClient, start_daemon: Callable[..., Daemon]
) -> None:
    commit(repo, {"shop/other.yaml": configmap_yaml("other-config", "blue")})
    start_daemon(app("shop", repo, namespace, interval=HOUR))
    eventually(lambda: color(kube_api, namespace) == "blue" and color(kube_api, namespace, "other-config") == "blue",
               timeout=SLACK, what="the first sync")
    core = client.CoreV1Api(kube_api)

    core.patch_namespaced_config_map("web-config", namespace, {"data": {"color": "red"}})
    edited = time.monotonic()
    eventually(lambda: color(kube_api, namespace) == "blue", timeout=SLACK, what="the hand edit to be healed")
    assert time.monotonic() - edited < SLACK  # the next interval tick is an hour away

    uid = read_configmap(kube_api, namespace, "other-config").metadata.uid
    core.delete_namespaced_config_map("other-config", namespace)
    eventually(lambda: color(kube_api, namespace, "other-config") == "blue", timeout=SLACK,
               what="the deleted member to be created again")
    assert read_configmap(kube_api, namespace, "other-config").metadata.uid != uid

    # A label removed by hand takes the object out of the watch's selection: still healed.
    core.patch_namespaced_config_map("web-config", namespace,
                                     {"metadata": {"labels": {"applyset.kubernetes.io/part-of": None}}})
    eventually(lambda: (read_configmap(kube_api, namespace, "web-config").metadata.labels or {}).get(
        "applyset.kubernetes.io/part-of") == Inventory.for_app(app="shop", namespace=namespace).id,
        timeout=SLACK, what="the member label to be restored")


def test_an_idle_resync_sends_no_request_and_writes_nothing(
    repo: Path, namespace: str, kube_api: client.ApiClient, start_daemon: Callable[..., Daemon]
) -> None:
    daemon = start_daemon(app("shop", repo, namespace, interval=1.0))
    eventually(lambda: color(kube_api, namespace) == "blue", timeout=SLACK, what="the first sync")
    # The first ticks list what the cache does not hold yet; then the watches answer.
    def quiet() -> bool:
        before = api_requests(daemon)
        time.sleep(1.5)
        return api_requests(daemon) == before

    eventually(quiet, timeout=SLACK, what="the daemon to go quiet")

    requests = api_requests(daemon)
    versions = (read_configmap(kube_api, namespace, "web-config").metadata.resource_version,
                read_configmap(kube_api, namespace, "syncer-shop").metadata.resource_version)
    time.sleep(4.5)  # four ticks of the app, each asking Git
    assert api_requests(daemon) == requests, dict(daemon._kube.stats.by_verb)
    assert (read_configmap(kube_api, namespace, "web-config").metadata.resource_version,
            read_configmap(kube_api, namespace, "syncer-shop").metadata.resource_version) == versions


def test_without_watches_every_tick_reads_the_cluster(
    repo: Path, namespace: str, kube_api: client.ApiClient, start_daemon: Callable[..., Daemon]
) -> None:
    """`--no-watch`, the daemon as it was: the same syncs, each tick LISTs (the comparison the
    benchmark makes)."""
    daemon = start_daemon(app("shop", repo, namespace, interval=1.0), watch=False)
    eventually(lambda: color(kube_api, namespace) == "blue", timeout=SLACK, what="the first sync")
    requests = api_requests(daemon)
    time.sleep(3.5)
    assert daemon.cache is None
    assert daemon._kube.stats.by_verb["list"] > 0 and api_requests(daemon) > requests


def test_without_self_heal_a_hand_edit_is_counted_not_reverted(
    repo: Path, namespace: str, kube_api: client.ApiClient, start_daemon: Callable[..., Daemon]
) -> None:
    daemon = start_daemon(app("manual", repo, namespace, interval=HOUR, self_heal=False))
    eventually(lambda: color(kube_api, namespace) == "blue", timeout=SLACK, what="the first sync")
    client.CoreV1Api(kube_api).patch_namespaced_config_map("web-config", namespace, {"data": {"color": "red"}})

    def drifted() -> float | None:
        return metric(get(url(daemon, "/metrics"))[1], "syncer_drifted_objects", app="manual", app_namespace=namespace)

    eventually(lambda: drifted() == 1.0, timeout=SLACK, what="the drift to be counted")
    assert daemon.drift[AppId(namespace=namespace, name="manual")] == (f"ConfigMap/{namespace}/web-config",)
    time.sleep(1.0)
    assert color(kube_api, namespace) == "red"

    client.CoreV1Api(kube_api).patch_namespaced_config_map("web-config", namespace, {"data": {"color": "blue"}})
    eventually(lambda: drifted() == 0.0, timeout=SLACK, what="the drift to be gone once the edit is undone")


def test_the_cache_resumes_its_watches_and_lists_again_on_schedule(
    namespace: str, kube_api: client.ApiClient, kube: Kube
) -> None:
    """Watches the server ends are resumed from the last version seen (nothing in between is
    lost), and the safety re-list runs on its interval, reporting what changed."""
    applyset = Inventory.for_app(app="shop", namespace=namespace).id
    core = client.CoreV1Api(kube_api)
    labels = {"applyset.kubernetes.io/part-of": applyset}
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "member", "labels": labels},
                                                  "data": {"color": "blue"}})
    changed: list[ObjectRef] = []
    cache = MemberCache(kube, owned=lambda a: a == applyset, on_change=lambda a, ref: changed.append(ref),
                        watch_seconds=1, relist_interval=3)
    configmaps = kube.resource_for("v1", "ConfigMap")
    assert cache.members(configmaps, namespace) is None  # the first question starts the watch
    cache.start()

    def colors() -> list[str]:
        return sorted(o["data"]["color"] for o in cache.members(configmaps, namespace) or [])

    try:
        eventually(lambda: colors() == ["blue"], timeout=SLACK, what="the cache to list")
        lists, watches = cache.stats.lists, cache.stats.watches
        for count in range(6):  # across several watch requests, each ended by the server after 1s
            core.patch_namespaced_config_map("member", namespace, {"data": {"color": f"red-{count}"}})
            time.sleep(0.5)
        eventually(lambda: colors() == ["red-5"], timeout=SLACK, what="the cache to follow every change")
        assert cache.stats.watches >= watches + 2
        assert cache.stats.lists >= lists + 1  # at least one safety re-list in those 3+ seconds
        assert changed.count(ObjectRef(group="", kind="ConfigMap", namespace=namespace, name="member")) >= 6
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "foreign", "labels": {
            "applyset.kubernetes.io/part-of": "applyset-another-v1"}}, "data": {"color": "green"}})
        time.sleep(1.5)
        assert colors() == ["red-5"]  # only what the daemon's apps own is kept
    finally:
        cache.stop()


def test_a_dropped_watch_resumes_without_listing_again(
    namespace: str, kube_api: client.ApiClient, cluster: ClusterAccess, tmp_path: Path
) -> None:
    """The connection drops (an API server restart, a load balancer's idle timeout): the watch
    resumes from where it was, the cache answers again, and nothing was listed again."""
    kubeconfig, proxy = kubeconfig_through(cluster.kubeconfig, write_to=tmp_path / "kubeconfig")
    kube = Kube.connect(ClientOptions(kubeconfig=str(kubeconfig), context=cluster.context))

    applyset = Inventory.for_app(app="shop", namespace=namespace).id
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "member", "labels": {
        "applyset.kubernetes.io/part-of": applyset}}, "data": {"color": "blue"}})
    cache = MemberCache(kube, owned=lambda a: a == applyset)
    configmaps = kube.resource_for("v1", "ConfigMap")
    cache.members(configmaps, namespace)
    cache.start()

    def colors() -> list[str] | None:
        cached = cache.members(configmaps, namespace)
        return None if cached is None else [o["data"]["color"] for o in cached]

    try:
        eventually(lambda: colors() == ["blue"], timeout=SLACK, what="the cache to list")
        lists, watches = cache.stats.lists, cache.stats.watches
        proxy.cut()
        core.patch_namespaced_config_map("member", namespace, {"data": {"color": "red"}})
        eventually(lambda: colors() == ["red"], timeout=SLACK, what="the cache to resume and follow the change")
        assert cache.stats.watches > watches
        assert cache.stats.lists == lists
    finally:
        cache.stop()
        proxy.close()
        kube.close()


def test_a_plan_from_the_cache_leaves_the_cache_as_it_was(
    repo: Path, namespace: str, kube_api: client.ApiClient, start_daemon: Callable[..., Daemon]
) -> None:
    """Plans share the cached objects; none may change them."""
    import copy

    daemon = start_daemon(app("shop", repo, namespace, interval=0.5))
    eventually(lambda: color(kube_api, namespace) == "blue", timeout=SLACK, what="the first sync")
    assert daemon.cache is not None
    configmaps = daemon._kube.resource_for("v1", "ConfigMap")
    cached = eventually(lambda: daemon.cache.members(configmaps, namespace) if daemon.cache else None,
                        timeout=SLACK, what="the cache to hold the app")
    snapshot = copy.deepcopy(cached)
    time.sleep(2.0)  # four ticks, each planning from the cache
    assert daemon.cache.members(configmaps, namespace) == snapshot


def test_a_push_noted_while_a_member_drifted_is_not_lost(
    repo: Path, namespace: str, kube_api: client.ApiClient, kube: Kube
) -> None:
    """A webhook's push and a member's change can reach the same tick (found by the daemon
    benchmark: the daemon's own status write on the ApplySet parent counts as a change). The
    drift shortcut (sync the last render, skip Git) must not swallow the push, which would
    otherwise wait for the next interval."""
    from syncer.daemon import AppReconciler, Metrics  # noqa: PLC0415

    config = app("shop", repo, namespace, interval=HOUR)
    reconciler = AppReconciler(config, kube=kube, metrics=Metrics([config.id]), lock_timeout=5)
    assert reconciler.tick()
    assert color(kube_api, namespace) == "blue"
    commit(repo, {"shop/config.yaml": configmap_yaml("web-config", "green")})
    reconciler.note_drift()
    reconciler.expect_news()
    assert reconciler.tick()
    assert color(kube_api, namespace) == "green"


def test_the_cache_knows_every_labelled_object_by_its_applyset_served_or_not(
    namespace: str, kube_api: client.ApiClient, kube: Kube
) -> None:
    """What a LIST by an app's label would find, for an app the daemon did not serve when the
    watch listed (a new App, a shard handover): the inventory recovery of a new App reads it."""
    mine, other = (Inventory.for_app(app=name, namespace=namespace).id for name in ("new", "other"))
    core = client.CoreV1Api(kube_api)
    for name, applyset in (("a", mine), ("b", other)):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": {
            "applyset.kubernetes.io/part-of": applyset}}})
    cache = MemberCache(kube, owned=lambda applyset: False)
    configmaps = kube.resource_for("v1", "ConfigMap")
    assert cache.labelled(configmaps, mine) is None  # the first question starts the watch
    cache.start()

    def found(applyset: str) -> list[str] | None:
        refs = cache.labelled(configmaps, applyset)
        return None if refs is None else [f"{ref.namespace}/{ref.name}" for ref in refs]

    try:
        eventually(lambda: found(mine) == [f"{namespace}/a"], timeout=SLACK, what="the cache to list")
        assert found(other) == [f"{namespace}/b"]
        assert cache.members(configmaps, namespace) == []  # nothing of an unserved app is kept
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "c", "labels": {
            "applyset.kubernetes.io/part-of": mine}}})
        core.patch_namespaced_config_map("b", namespace, {"metadata": {"labels": {
            "applyset.kubernetes.io/part-of": mine}}})
        core.delete_namespaced_config_map("a", namespace)
        eventually(lambda: found(mine) == [f"{namespace}/b", f"{namespace}/c"], timeout=SLACK,
                   what="the cache to follow creates, relabels and deletes")
        assert found(other) == []
    finally:
        cache.stop()


def test_a_lost_parent_is_recovered_from_the_cache_without_listing_every_kind(
    tmp_path: Path, namespace: str, kube_api: client.ApiClient, kube: Kube, cluster: ClusterAccess
) -> None:
    """The inventory recovery of an app whose ApplySet parent is missing reads the daemon's
    watches instead of one cluster-wide LIST per kind (1,000 new Apps made 48,000), and still
    prunes what Git removed while the parent was gone."""
    from syncer.apply import sync  # noqa: PLC0415
    from tests.e2e.apps import options, render_app, write_app  # noqa: PLC0415

    files = {"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
             "b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
             "s.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n"}
    source = write_app(tmp_path / "app", files)
    assert sync(kube, render_app(source, namespace=namespace), options=options("lost", namespace), revision="r1").ok
    core = client.CoreV1Api(kube_api)
    core.delete_namespaced_config_map("syncer-lost", namespace)

    watcher = Kube.connect(ClientOptions(kubeconfig=str(cluster.kubeconfig), context=cluster.context))
    cache = MemberCache(watcher, owned=lambda applyset: False)
    cache.start()
    content = [r for r in kube.listable_resources()[0] if r.kind != "Event" and "watch" in r.verbs]
    applyset = Inventory.for_app(app="lost", namespace=namespace).id
    try:
        eventually(lambda: all(cache.labelled(r, applyset) is not None for r in content), timeout=SLACK,
                   what="the cache to watch every kind")
        write_app(source, {"a.yaml": files["a.yaml"]})
        kube.stats.by_verb.clear()
        changes = sync(kube, render_app(source, namespace=namespace), options=options("lost", namespace),
                       revision="r2", cache=cache)
        assert changes.ok, changes.error
        assert any("recovered" in w for w in changes.warnings), changes.warnings
        assert kube.stats.by_verb["list"] < 10 < len(content), dict(kube.stats.by_verb)
        assert [c.metadata.name for c in core.list_namespaced_config_map(namespace).items
                if c.metadata.name in ("a", "b")] == ["a"]
        assert [s.metadata.name for s in core.list_namespaced_service(namespace).items] == []
    finally:
        cache.stop()
        watcher.close()


def test_the_cache_knows_a_new_apps_parent_is_missing_and_reads_one_it_did_not_keep(
    tmp_path: Path, namespace: str, kube_api: client.ApiClient, kube: Kube, cluster: ClusterAccess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The parents' watch sees every ApplySet parent and indexes their names: a new App's plan
    and record need not GET a parent that does not exist (three GETs per new App before),
    while a parent the cache saw but did not keep (an app served only since), or one this
    daemon wrote and the watch has not shown yet, is still read."""
    from syncer.apply import sync  # noqa: PLC0415
    from syncer.apply.live import read_parent  # noqa: PLC0415
    from tests.e2e.apps import options, render_app, write_app  # noqa: PLC0415

    source = write_app(tmp_path / "app", {"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"})
    assert sync(kube, render_app(source, namespace=namespace), options=options("older", namespace), revision="r1").ok
    served = {Inventory.for_app(app="fresh", namespace=namespace).id}
    watcher = Kube.connect(ClientOptions(kubeconfig=str(cluster.kubeconfig), context=cluster.context))
    cache = MemberCache(watcher, owned=lambda applyset: applyset in served)
    cache.start()
    try:
        eventually(lambda: cache.parent(namespace, "syncer-fresh") == (True, None), timeout=SLACK,
                   what="the parents' watch to be established")
        assert cache.parent(namespace, "syncer-older") == (False, None), "seen, not kept: the cache cannot tell"
        older = Inventory.for_app(app="older", namespace=namespace)
        parent = read_parent(kube, older, {}, cache=cache)
        assert parent is not None and parent["metadata"]["name"] == "syncer-older", "read, not taken as missing"

        read: list[str] = []
        real_get = kube.get
        monkeypatch.setattr(kube, "get", lambda resource, name, **kw: read.append(f"{resource.kind}/{name}")
                            or real_get(resource, name, **kw))
        # A ServiceAccount: no LIST of the namespace's ConfigMaps that would find the parent anyway.
        fresh = write_app(tmp_path / "fresh", {"f.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: f}\n"})
        changes = sync(kube, render_app(fresh, namespace=namespace), options=options("fresh", namespace),
                       revision="r1", cache=cache)
        assert changes.ok, changes.error
        assert "ConfigMap/syncer-fresh" not in read, read
        assert client.CoreV1Api(kube_api).read_namespaced_config_map("syncer-fresh", namespace).metadata.labels

        cache.wrote_parent(namespace, "syncer-another")
        assert cache.parent(namespace, "syncer-another") == (False, None), "written by us, not yet seen"
        eventually(lambda: cache.parent(namespace, "syncer-fresh")[1] is not None, timeout=SLACK,
                   what="the watch to show the new parent")
    finally:
        cache.stop()
        watcher.close()
