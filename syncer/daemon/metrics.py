"""Prometheus metrics of the daemon, in a registry of its own.

A registry per daemon (not the library's global one) keeps two daemons in one process (the
tests' leader election) from sharing counters, and keeps the output to syncer's own series
plus the standard process, platform and garbage-collector collectors. Every series of every
configured app is created at start, so a standby or an app that never synced shows an
explicit 0 instead of no series at all (`rate()` and alerts need the zero). The `*_created`
timestamps prometheus_client adds to every counter and histogram are switched off: they
double the series and no dashboard reads them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from syncer.apply.changeset import ChangeSet
from syncer.model import Action, AppId

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
APPLIED_ACTIONS = (Action.CREATED, Action.CONFIGURED, Action.RECREATED)
APP_LABELS = ["app", "app_namespace"]
"""Every app series names the app and the namespace of its inventory: two apps of one name in
two namespaces are two apps."""


def _series(app: AppId) -> tuple[str, str]:
    return app.name, app.namespace


class Metrics:
    """The daemon's series; `observe_*` methods are called from the sync threads."""

    def __init__(self, apps: Iterable[AppId], *, waiting: Iterable[AppId] = ()) -> None:
        """`waiting`: the apps that wait for health after applying, the only ones whose
        health syncer knows."""
        disable_created_metrics()  # type: ignore[no-untyped-call]  # process-wide; the daemon's only registry
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.sync_runs = Counter("syncer_sync_runs", "Syncs run, per app.", APP_LABELS, registry=r)
        self.sync_failures = Counter("syncer_sync_failures", "Syncs (or fetches and renders) that failed, per app.",
                                     APP_LABELS, registry=r)
        self.sync_duration = Histogram("syncer_sync_duration_seconds", "Time a sync took, per app.", APP_LABELS,
                                       buckets=DURATION_BUCKETS, registry=r)
        self.objects_applied = Counter("syncer_objects_applied",
                                       "Objects applied, per app and action (created, configured, recreated).",
                                       [*APP_LABELS, "action"], registry=r)
        self.objects_pruned = Counter("syncer_objects_pruned", "Objects deleted by pruning, per app.", APP_LABELS,
                                      registry=r)
        self.last_success = Gauge("syncer_last_successful_sync_timestamp_seconds",
                                  "Unix time of the last successful sync, per app.", APP_LABELS, registry=r)
        self.last_revision = Info("syncer_last_synced_revision",
                                  "The revision of the last successful sync, per app.", APP_LABELS, registry=r)
        self.app_info = Gauge(
            "syncer_app_info",
            "1 for each app's current state, like argocd_app_info: sync_status Succeeded, Failed or Unknown "
            "(not synced since start); health_status as the App's status says it (Healthy, Progressing, "
            "Degraded, Missing) where the daemon reads its objects' health, else Healthy when the app waits "
            "for health and its last sync succeeded, else Unknown.",
            [*APP_LABELS, "sync_status", "health_status"], registry=r)
        self.fetch_duration = Histogram("syncer_git_fetch_duration_seconds",
                                        "Time fetching and exporting a new revision took, per app.", APP_LABELS,
                                        buckets=DURATION_BUCKETS, registry=r)
        self.drifted_objects = Gauge("syncer_drifted_objects",
                                     "Objects a sync would change, per app without selfHeal, as of the last "
                                     "change to one of its objects.", APP_LABELS, registry=r)
        self.heal_triggers = Counter("syncer_drift_events",
                                     "Changes to an app's objects seen by the watches (its own syncs' included), "
                                     "per app.", APP_LABELS, registry=r)
        self.cached_objects = Gauge("syncer_watch_cache_objects",
                                    "Objects of the apps (and their ApplySet parents) held by the watch cache.",
                                    registry=r)
        self.watch_lists = Gauge("syncer_watch_cache_lists",
                                 "LISTs the watch cache made: its first list of each kind, re-lists after a "
                                 "lost watch, and the safety re-lists.", registry=r)
        self.leader = Gauge("syncer_leader", "1 while this replica runs syncs (is the leader, or a live shard "
                            "member), else 0.", registry=r)
        self.shard_members = Gauge("syncer_shard_members",
                                   "Live replicas this replica sees in the shard (0 when not sharded).", registry=r)
        self.shard_apps = Gauge("syncer_shard_apps_owned",
                                "Apps this replica owns in the shard now (0 when not sharded).", registry=r)
        self._waiting: set[AppId] = set()
        self._state: dict[AppId, tuple[str, str]] = {}
        self._health: dict[AppId, str] = {}
        self._state_lock = threading.Lock()
        waits = frozenset(waiting)
        for app in apps:
            self.declare(app, waits=app in waits)

    def declare(self, app: AppId, *, waits: bool = False) -> None:
        """Create the app's series at 0 before its first sync (see the module docstring).
        `waits`: the app waits for health after applying, the only kind whose health syncer knows."""
        with self._state_lock:
            if waits:
                self._waiting.add(app)
        for metric in (self.sync_runs, self.sync_failures, self.sync_duration, self.objects_pruned,
                       self.fetch_duration):
            metric.labels(*_series(app))
        for action in APPLIED_ACTIONS:
            self.objects_applied.labels(*_series(app), action)
        self._set_state(app, sync_status="Unknown", health_status="Unknown")

    def _set_state(self, app: AppId, *, sync_status: str, health_status: str) -> None:
        """One series per app: the previous state's series goes, as argocd_app_info's does."""
        with self._state_lock:
            previous = self._state.get(app)
            if previous == (sync_status, health_status):
                return
            if previous is not None:
                self.app_info.remove(*_series(app), *previous)
            self.app_info.labels(*_series(app), sync_status, health_status).set(1)
            self._state[app] = (sync_status, health_status)

    def observe_sync(self, app: AppId, *, changes: ChangeSet | None, ok: bool, seconds: float,
                     current: bool = True) -> None:
        """One sync attempt; `changes` is None when it failed before producing any (the Git
        server unreachable, a render error, validation): that still counts as a run, so that
        failures / runs stays a ratio. An attempt that is not at the app's current revision (a
        heal of an older render while the current one failed) counts as a run and its objects,
        but says nothing about the app's success: the current revision still failed."""
        self.sync_runs.labels(*_series(app)).inc()
        self.sync_duration.labels(*_series(app)).observe(seconds)
        if changes is not None:
            for action in APPLIED_ACTIONS:
                self.objects_applied.labels(*_series(app), str(action)).inc(changes.count(action))
            self.objects_pruned.labels(*_series(app)).inc(changes.count(Action.DELETED))
        succeeded = ok and changes is not None
        if not current:
            if not succeeded:
                self.sync_failures.labels(*_series(app)).inc()
            return
        if succeeded and changes is not None:
            self.last_success.labels(*_series(app)).set(time.time())
            self.last_revision.labels(*_series(app)).info({"revision": changes.revision})
        else:
            self.sync_failures.labels(*_series(app)).inc()
        with self._state_lock:
            observed = self._health.get(app)
        waited = "Healthy" if succeeded and app in self._waiting else "Unknown"
        self._set_state(app, sync_status="Succeeded" if succeeded else "Failed", health_status=observed or waited)

    def observe_health(self, app: AppId, health: str) -> None:
        """The health the daemon read from the app's objects (App mode), as the App's status
        says it: from then on the metric's health_status is that, not what a sync waited for."""
        with self._state_lock:
            self._health[app] = health
            sync_status = self._state.get(app, ("Unknown", "Unknown"))[0]
        self._set_state(app, sync_status=sync_status, health_status=health)

    def observe_fetch(self, app: AppId, seconds: float) -> None:
        self.fetch_duration.labels(*_series(app)).observe(seconds)

    def observe_heal_trigger(self, app: AppId) -> None:
        self.heal_triggers.labels(*_series(app)).inc()

    def observe_drift(self, app: AppId, objects: int) -> None:
        self.drifted_objects.labels(*_series(app)).set(objects)

    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)

    def follow_shard(self, *, members: Callable[[], int], owned: Callable[[], int]) -> None:
        """Read the shard's gauges when scraped, so they are never stale."""
        self.shard_members.set_function(members)
        self.shard_apps.set_function(owned)

    def exposition(self) -> tuple[bytes, str]:
        """The text format and its content type, for GET /metrics."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
