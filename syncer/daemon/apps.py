"""`syncer run` without `--config`: the cluster's App objects are the apps.

    daemon = AppsDaemon(client=ClientOptions(), options=DaemonOptions(), apps=AppsOptions())
    daemon.start()                       # then as Daemon: stop(timeout=...)

The same daemon as the file mode (scheduler, reconciler, leader election, HTTP endpoints),
fed by a watch instead of a file:

* A watch per namespace (`--watch-namespace`, else one for all namespaces) keeps a table of
  Apps. It only reads and schedules: a new App becomes an interval job, a changed interval
  re-schedules it, a new generation, a new `syncer.dev/reconcile-requested-at` value or a
  deletion runs it at once. Every replica watches, so a standby takes over with a full table.
* Each tick (on the app's owner only: the leader, or the shard member it hashes to) turns the App into the file mode's `AppConfig`
  (`syncer.daemon.appspec`), runs the `AppReconciler` tick with the App's own identity (its
  service account, impersonated), then reads the objects' health and drift
  (`syncer.daemon.appobserve`) and writes the status (`syncer.daemon.appstatus`) through the
  status subresource when it changed, telling the notification receivers about transitions.
* Deleting an App leaves its objects. With the finalizer `syncer.dev/prune` and
  `spec.prune`, the daemon first syncs an empty source with `allow_empty`: the same safe
  prune as a sync, which deletes only what the app's inventory owns.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from syncer.apply import sync
from syncer.apply.applyset import Inventory
from syncer.config import DEFAULT_INTERVAL, Config
from syncer.daemon.appclient import app_resource, emit_app_event, patch_app, patch_status, secret_data
from syncer.daemon.appobserve import observe_drift, observe_health
from syncer.daemon.appspec import (
    PRUNE_FINALIZER,
    RECONCILE_ANNOTATION,
    AppSpec,
    InvalidApp,
    TenantPolicy,
    app_ref,
    app_spec,
)
from syncer.daemon.appstatus import AppHealth, Observation, app_status
from syncer.daemon.notify import Notifier, Receiver, message, transitions
from syncer.daemon.notifytarget import AddressAllowList
from syncer.daemon.reconciler import AppReconciler, TickOutcome
from syncer.daemon.scheduler import AppScheduler
from syncer.daemon.service import Daemon, DaemonOptions
from syncer.daemon.webhook import Push, matching_apps
from syncer.errors import ClusterError, Conflict, ConfigError, SyncerError
from syncer.kube import ClientOptions, Kube
from syncer.kube.watch import Reflector
from syncer.model import Action, Object
from syncer.sources.auth import GitAuth
from syncer.sources.git import cache_root

log = logging.getLogger(__name__)

EVENT_REASONS = {"failed": ("SyncFailed", True), "recovered": ("SyncRecovered", False),
                 "health": ("HealthChanged", False)}
"""Each transition worth a notification is also an Event on the App: (reason, is a warning)."""


@dataclass(frozen=True)
class AppsOptions:
    namespaces: tuple[str, ...] = ()
    """The namespaces whose Apps are served; empty: all."""
    require_service_account: bool = False
    notify: Receiver | None = None
    """The daemon's own notification receiver (each App may name one more)."""
    allow_local_repos: bool = False
    """`--allow-local-repos`: Apps may name local paths and file:// URLs (see TenantPolicy)."""
    notify_allow: AddressAllowList = AddressAllowList()
    """`--notify-allow`: addresses refused by default that App receivers may reach."""


@dataclass
class _Entry:
    """One App as the daemon knows it. `obj`/`spec` are replaced by the watch; the rest
    belongs to the App's ticks, which never overlap."""

    key: str
    obj: Object
    spec: AppSpec | None
    invalid: InvalidApp | None
    interval: float
    status: dict[str, Any] = field(default_factory=dict)
    """The status as last read or written."""
    reconciler: AppReconciler | None = None
    built_generation: int | None = None
    kube: Kube | None = None
    """The App's own (impersonating) client; None: it uses the daemon's."""
    outcome: TickOutcome | None = None
    running: bool = False
    removed: bool = False


def _parse(obj: Object, *, policy: TenantPolicy) -> tuple[AppSpec | None, InvalidApp | None]:
    try:
        return app_spec(obj, policy=policy), None
    except InvalidApp as invalid:
        return None, invalid


@dataclass(frozen=True)
class _AppsHandler:
    """What the reflector of the Apps in one namespace (or all) tells the daemon."""

    daemon: AppsDaemon
    namespace: str | None

    def listed(self, objects: list[Object]) -> None:
        self.daemon._resync(self.namespace, objects)

    def event(self, kind: str, obj: Object) -> None:
        if kind in ("ADDED", "MODIFIED"):
            self.daemon._upsert(obj)
        elif kind == "DELETED":
            self.daemon._forget(_key(obj))

    def failed(self, error: ClusterError) -> bool:
        log.warning("watch of Apps in %s failed: %s; listing again", self.namespace or "all namespaces", error)
        return True


class AppsDaemon(Daemon):
    """See the module docstring."""

    def __init__(self, *, client: ClientOptions, options: DaemonOptions, apps: AppsOptions) -> None:
        where = "Apps in " + (", ".join(apps.namespaces) if apps.namespaces else "all namespaces")
        super().__init__(Config(apps=(), source=where), client=client, options=options)
        self.scheduler = AppScheduler(max_workers=max(1, options.max_workers))
        self.apps_options = apps
        self._client = client
        self._resource = app_resource(self._kube)
        self._watch_kube = Kube.connect(replace(client, max_retries=0))
        self._entries: dict[str, _Entry] = {}
        self._entries_lock = threading.Lock()
        self._watch_stop = threading.Event()
        self._notifier = Notifier()
        self._credentials = Path(tempfile.mkdtemp(prefix="syncer-credentials-"))
        self.policy = TenantPolicy(
            require_service_account=apps.require_service_account, allow_local_repos=apps.allow_local_repos,
            private_dirs=(cache_root(options.cache_dir), self._credentials), notify_allow=apps.notify_allow,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        super().start()
        for namespace in self.apps_options.namespaces or (None,):
            self._watch(namespace).start()

    def stop(self, *, timeout: float = 60.0, release: bool = True) -> list[str]:
        self._watch_stop.set()
        still_running = super().stop(timeout=timeout, release=release)
        self._notifier.close(wait=not still_running)
        self._watch_kube.close()
        if not still_running:
            with self._entries_lock:
                entries = list(self._entries.values())
            for entry in entries:
                if entry.kube is not None:
                    entry.kube.close()
            shutil.rmtree(self._credentials, ignore_errors=True)
        return still_running

    def readiness_read(self) -> None:
        """One page of one App, read from etcd (`resourceVersion` unset): the daemon needs to
        read Apps to do anything at all."""
        resource = app_resource(self._watch_kube)
        namespace = (self.apps_options.namespaces or (None,))[0]
        self._watch_kube.request("GET", resource.path(namespace=namespace), subject="App", verb="list",
                                 query={"limit": "1"})

    @property
    def app_count(self) -> int:
        with self._entries_lock:
            return len(self._entries)

    def apps_for_push(self, push: Push) -> list[str]:
        with self._entries_lock:
            specs = [(key, entry.spec) for key, entry in self._entries.items() if entry.spec is not None]
        return [key for key, spec in specs if matching_apps([spec.config], push)]

    # -- the watch -------------------------------------------------------------------------

    def _watch(self, namespace: str | None) -> Reflector:
        return Reflector(self._watch_kube, self._resource, handler=_AppsHandler(self, namespace),
                         stop=self._watch_stop, namespace=namespace)

    def _resync(self, namespace: str | None, objects: list[Object]) -> None:
        listed = {_key(obj) for obj in objects}
        for obj in objects:
            self._upsert(obj)
        with self._entries_lock:
            gone = [key for key in self._entries
                    if key not in listed and (namespace is None or key.startswith(namespace + "/"))]
        for key in gone:
            self._forget(key)

    def _upsert(self, obj: Object) -> None:
        key = _key(obj)
        spec, invalid = _parse(obj, policy=self.policy)
        interval = spec.config.interval if spec is not None else DEFAULT_INTERVAL
        with self._entries_lock:
            entry = self._entries.get(key)
            if entry is not None and entry.obj["metadata"]["uid"] != obj["metadata"]["uid"]:
                entry = None  # deleted and created again while the watch was down
            if spec is not None:
                with self._applysets_lock:
                    self._applysets[Inventory.for_app(app=spec.config.name, namespace=spec.config.namespace).id] = key
            if entry is None:
                self._entries[key] = _Entry(key=key, obj=obj, spec=spec, invalid=invalid, interval=interval,
                                            status=dict(obj.get("status") or {}))
                self.scheduler.add(key, interval=interval, tick=functools.partial(self._tick_app, key))
                return
            before, entry.obj, entry.spec, entry.invalid = entry.obj, obj, spec, invalid
            if interval != entry.interval:
                entry.interval = interval
                self.scheduler.remove(key)
                self.scheduler.add(key, interval=interval, tick=functools.partial(self._tick_app, key))
            elif _wants_tick(before, obj):
                if entry.reconciler is not None:
                    entry.reconciler.expect_news()
                self.scheduler.trigger(key)

    def _forget(self, key: str) -> None:
        with self._entries_lock:
            entry = self._entries.pop(key, None)
        if entry is None:
            return
        with self._applysets_lock:
            for applyset in [a for a, app in self._applysets.items() if app == key]:
                del self._applysets[applyset]
        self.scheduler.remove(key)
        entry.removed = True
        if not entry.running and entry.kube is not None:
            entry.kube.close()
        log.info("App/%s is gone: no longer synced (its objects stay unless it had the %s finalizer)",
                 key, PRUNE_FINALIZER)

    # -- a tick ----------------------------------------------------------------------------

    def _tick_app(self, key: str) -> bool:
        if not self.ownership.owns(key):
            return True
        with self._entries_lock:
            entry = self._entries.get(key)
        if entry is None or entry.removed:
            return True
        entry.running = True
        try:
            if (entry.obj["metadata"]).get("deletionTimestamp"):
                return self._finalize(entry)
            return self._reconcile(entry)
        except ClusterError as error:  # the status could not be written; try again later
            log.warning("App/%s: %s", key, error)
            return False
        finally:
            entry.running = False
            if entry.removed and entry.kube is not None:
                entry.kube.close()

    def _reconcile(self, entry: _Entry) -> bool:
        obj, spec, invalid = entry.obj, entry.spec, entry.invalid
        generation = int(obj["metadata"].get("generation") or 0)
        requested = (obj["metadata"].get("annotations") or {}).get(RECONCILE_ANNOTATION)
        if invalid is not None or spec is None:
            self._write(entry, obj, Observation(generation, invalid=invalid, handled_request=requested))
            return True
        if spec.suspend:
            self._write(entry, obj, Observation(generation, suspended=True, handled_request=requested))
            return True
        waited_for = requested is not None and requested != entry.status.get("lastHandledReconcileAt")
        if waited_for or entry.status.get("observedGeneration") != generation:
            what = f"{spec.config.repo} at {spec.config.revision or 'HEAD'}"
            self._write(entry, obj, Observation(generation, outcome=entry.outcome, syncing=what))
        try:
            reconciler = self._reconciler(entry, spec, generation)
        except SyncerError as error:
            revision = entry.outcome.revision if entry.outcome else "unknown"
            entry.outcome = TickOutcome(revision=revision, changes=None, error=str(error))
            self._write(entry, obj, Observation(generation, outcome=entry.outcome, handled_request=requested))
            return False
        before = reconciler.last_outcome
        ok = reconciler.tick()
        outcome = entry.outcome = reconciler.last_outcome or entry.outcome
        manifests = reconciler.manifests
        kube = entry.kube or self._kube
        health: AppHealth | None = None
        drift: tuple[str, ...] | None = None
        if manifests is not None:
            health = observe_health(kube, manifests, cache=self.cache, applyset=Inventory.for_app(
                app=reconciler.app.name, namespace=reconciler.app.namespace).id)
            if outcome is not None and outcome is not before and outcome.ok:
                drift = ()  # the sync just made every object match Git
            elif outcome is not None:
                drift = observe_drift(kube, manifests, options=reconciler.options, revision=outcome.revision,
                                      cache=self.cache)
        self._write(entry, obj, Observation(generation, outcome=outcome, health=health, drift=drift,
                                            handled_request=requested))
        return ok

    def _reconciler(self, entry: _Entry, spec: AppSpec, generation: int) -> AppReconciler:
        """The App's reconciler, built again when its spec or Git credentials changed."""
        if entry.built_generation != generation:
            if entry.kube is not None:
                entry.kube.close()
            entry.reconciler, entry.kube = None, None
            if spec.user is not None:
                entry.kube = Kube.connect(replace(self._client, impersonate=spec.user))
            entry.built_generation = generation
        config = spec.config
        if spec.git_secret is not None:
            config = replace(config, auth=self._git_auth(entry.kube or self._kube, spec))
        if entry.reconciler is None or entry.reconciler.app != config:
            options = self.options
            entry.reconciler = AppReconciler(
                config, kube=entry.kube or self._kube, metrics=self.metrics, cache_dir=options.cache_dir,
                field_manager=options.field_manager, lock_timeout=options.lock_timeout, instance=options.identity,
                cache=self.cache, shared_git=self.shared_git,
            )
        return entry.reconciler

    def _reconciler_of(self, app: str) -> AppReconciler | None:
        with self._entries_lock:
            entry = self._entries.get(app)
        return entry.reconciler if entry is not None else None

    def _git_auth(self, kube: Kube, spec: AppSpec) -> GitAuth:
        """Git credentials from the App's Secret, read with the App's identity on every tick
        (so a rotated Secret is used at the next tick) and handed to git as private files."""
        assert spec.git_secret is not None
        namespace = spec.app_namespace
        data = secret_data(kube, namespace=namespace, name=spec.git_secret)
        directory = self._credentials / namespace / spec.config.name
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        paths: dict[str, Path] = {}
        for key in ("password", "identity", "known_hosts"):
            if key in data:
                path = paths[key] = directory / key
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(descriptor, "wb") as file:
                    file.write(data[key])
        if not paths:
            raise ConfigError(f"Secret/{namespace}/{spec.git_secret}: has no key password (https, with an optional "
                              "username) or identity (ssh, with known_hosts)")
        username = data.get("username")
        return GitAuth(ssh_key_file=paths.get("identity"), known_hosts_file=paths.get("known_hosts"),
                       username=username.decode() if username else None, token_file=paths.get("password"))

    def _finalize(self, entry: _Entry) -> bool:
        """The App is being deleted: with the prune finalizer, delete its objects first."""
        obj, spec, invalid = entry.obj, entry.spec, entry.invalid
        metadata = obj["metadata"]
        finalizers = list(metadata.get("finalizers") or [])
        if PRUNE_FINALIZER not in finalizers:
            return True
        generation = int(metadata.get("generation") or 0)
        if spec is None:
            assert invalid is not None
            cannot = InvalidApp(app_ref(obj), [f"cannot delete the app's objects: {'; '.join(invalid.problems)}; "
                                               f"fix the spec or remove the finalizer {PRUNE_FINALIZER}"])
            self._write(entry, obj, Observation(generation, invalid=cannot))
            return True
        if spec.config.prune:
            try:
                reconciler = self._reconciler(entry, spec, generation)
                changes = sync(entry.kube or self._kube, [], revision="deleted",
                               options=replace(reconciler.options, allow_empty=True, prune=True))
                error = None if changes.ok else (changes.error or "some objects could not be deleted")
            except SyncerError as failure:
                error = str(failure)
            if error is not None:
                entry.outcome = TickOutcome(revision="deleted", changes=None,
                                            error=f"deleting the app's objects: {error}")
                self._write(entry, obj, Observation(generation, outcome=entry.outcome))
                return False
            log.info("App/%s deleted: %d object(s) pruned", entry.key, changes.count(Action.DELETED))
        remaining = [name for name in finalizers if name != PRUNE_FINALIZER]
        try:
            patch_app(self._kube, obj, {"metadata": {"finalizers": remaining,
                                                     "resourceVersion": metadata["resourceVersion"]}})
        except Conflict:  # changed meanwhile: the watch brings the new version, and a new tick
            return True
        return True

    def _write(self, entry: _Entry, obj: Object, observed: Observation) -> None:
        previous = entry.status
        status = app_status(previous, observed)
        if status == previous:
            return
        written = patch_status(self._kube, self._resource, obj, status)
        entry.status = dict(written.get("status") or status)
        self._notify(entry, obj, previous, entry.status)

    def _notify(self, entry: _Entry, obj: Object, previous: dict[str, Any], status: dict[str, Any]) -> None:
        events = transitions(previous, status)
        if not events:
            return
        receivers = [self.apps_options.notify] if self.apps_options.notify else []
        spec = entry.spec
        if spec is not None and spec.notification is not None:
            receiver = self._app_receiver(entry, spec)
            if receiver is not None:
                receivers.append(receiver)
        metadata = obj["metadata"]
        for event in events:
            payload = message(event, namespace=metadata["namespace"], name=metadata["name"], previous=previous,
                              status=status)
            self._notifier.submit(receivers, payload)
            reason, warning = EVENT_REASONS[event]
            try:
                emit_app_event(self._kube, obj, reason=reason, message=str(payload["message"]),
                               warning=warning or status.get("health") in ("Degraded", "Missing"),
                               instance=self.options.identity)
            except ClusterError as error:
                log.warning("App/%s: cannot create an Event: %s", entry.key, error)

    def _app_receiver(self, entry: _Entry, spec: AppSpec) -> Receiver | None:
        """The App's own receiver, its secret read with the App's identity; None (logged)
        when the secret cannot be read: an unsigned message would be refused anyway."""
        notification = spec.notification
        assert notification is not None
        if notification.secret is None:
            return Receiver(url=notification.url, allow=self.apps_options.notify_allow)
        ref = notification.secret
        try:
            data = secret_data(entry.kube or self._kube, namespace=spec.app_namespace, name=ref.name)
        except SyncerError as error:
            log.warning("App/%s: not notifying %s: %s", entry.key, notification.url, error)
            return None
        if ref.key not in data:
            log.warning("App/%s: not notifying %s: Secret/%s/%s has no key %s", entry.key, notification.url,
                        spec.app_namespace, ref.name, ref.key)
            return None
        return Receiver(url=notification.url, secret=data[ref.key], allow=self.apps_options.notify_allow)


def _key(obj: Object) -> str:
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace')}/{metadata.get('name')}"


def _wants_tick(before: Object, after: Object) -> bool:
    """A change the user expects to act on at once: a new spec, a reconcile request, a delete."""
    old, new = before.get("metadata") or {}, after.get("metadata") or {}
    return (old.get("generation") != new.get("generation")
            or (old.get("annotations") or {}).get(RECONCILE_ANNOTATION)
            != (new.get("annotations") or {}).get(RECONCILE_ANNOTATION)
            or bool(new.get("deletionTimestamp")) != bool(old.get("deletionTimestamp")))
