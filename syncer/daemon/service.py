"""The daemon: apps from the configuration, each synced on its interval by its owner.

    daemon = Daemon(load_config(path), client=ClientOptions(), options=DaemonOptions())
    daemon.start()
    ...                                   # until SIGTERM
    still_running = daemon.stop(timeout=60)

Wiring only: ticks are `AppReconciler`s, timing is `AppScheduler`, which apps this replica
syncs is an `Ownership` (every app; `LeaderElector`: all or none; `ShardMember`: its share),
and HTTP is `DaemonHTTPServer`, which calls back into the endpoint methods here. Stopping
never interrupts a sync: scheduling stops, running syncs finish (bounded by the caller's
timeout), and only then are the apps released, so another replica cannot start syncing an
app while this one still writes it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from syncer.apply.applyset import PARENT_PREFIX, Inventory
from syncer.apply.lock import default_identity
from syncer.apply.membercache import RELIST_INTERVAL, MemberCache
from syncer.config import Config
from syncer.daemon.http import DaemonHTTPServer
from syncer.daemon.leader import ElectionOptions, LeaderElector
from syncer.daemon.membership import Assignment
from syncer.daemon.metrics import Metrics
from syncer.daemon.ownership import Ownership, SoleOwner
from syncer.daemon.reconciler import DEFAULT_LOCK_TIMEOUT, AppReconciler
from syncer.daemon.scheduler import AppScheduler
from syncer.daemon.shard import ShardMember
from syncer.daemon.webhook import Push, WebhookRejected, authenticate, event_name, is_push, matching_apps, parse_push
from syncer.errors import ClusterError, ConfigError
from syncer.kube import ClientOptions, Kube
from syncer.model import ObjectRef
from syncer.sources import SharedLsRemote

log = logging.getLogger(__name__)

FORWARDED_HEADER = "x-syncer-forwarded"
_FORWARD_HEADERS = ("content-type", "x-hub-signature-256", "x-gitea-signature", "x-gogs-signature",
                    "x-gitlab-token", "x-github-event", "x-gitea-event", "x-gogs-event", "x-gitlab-event")
READY_CACHE_SECONDS = 2.0
"""The API server is asked at most this often, however often probes come."""


@dataclass(frozen=True)
class DaemonOptions:
    listen: tuple[str, int] = ("0.0.0.0", 8080)
    cache_dir: Path | None = None
    webhook_secret: bytes | None = None
    """The shared webhook secret; None switches POST /webhook off (404)."""
    election: ElectionOptions | None = None
    """None: no leader election, this replica always syncs."""
    shard: ElectionOptions | None = None
    """Share the apps with the other replicas through membership Leases in this namespace,
    with these timings (`name` is not used); exclusive with `election`."""
    identity: str = field(default_factory=default_identity)
    advertise_url: str | None = None
    """This replica's HTTP address as other replicas reach it (for passing on webhooks)."""
    field_manager: str = "syncer"
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    max_workers: int = 16
    """Apps synced at once; more apps than this wait for a free worker."""
    watch: bool = True
    """Keep the apps' objects in a watch cache (`syncer.apply.membercache`): a change to one
    starts a sync of its app at once, and a resync that changes nothing reads nothing from
    the API server. False: every tick LISTs what its plan needs."""
    relist_interval: float = RELIST_INTERVAL
    """The watch cache's safety net: every kind it watches is listed again this often."""


HEAL_DELAY = 0.5
"""Changes to one app's objects within this many seconds start one sync, not one each."""


def default_advertise_url(address: tuple[str, int]) -> str:
    """How other replicas reach this one: the pod's IP ($POD_IP, from the downward API), else
    the address listened on, else the host name."""
    host, port = address
    host = os.environ.get("POD_IP") or (host if host not in ("0.0.0.0", "::", "") else socket.gethostname())
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Daemon:
    """See the module docstring. Implements `syncer.daemon.http.Endpoints`."""

    def __init__(self, config: Config, *, client: ClientOptions, options: DaemonOptions) -> None:
        self.config = config
        self.options = options
        self.metrics = Metrics((app.name for app in config.apps), waiting=(app.name for app in config.apps if app.wait))
        self._kube = Kube.connect(replace(client, pool_size=max(client.pool_size, 64)))
        # Probes and Lease renewals must answer quickly, never sit in retries.
        self._control = Kube.connect(replace(client, max_retries=0, request_timeout=5.0))
        self.shared_git = SharedLsRemote()
        self._applysets: dict[str, str] = {
            Inventory.for_app(app=app.name, namespace=app.namespace).id: app.name for app in config.apps}
        """ApplySet id -> the scheduler's name of the app (App mode adds and removes them)."""
        self._applysets_lock = threading.Lock()
        self._heals_pending: set[str] = set()
        self.cache: MemberCache | None = None
        self._cache_kube: Kube | None = None
        if options.watch:
            self._cache_kube = Kube.connect(replace(client, pool_size=max(client.pool_size, 64)))
            self.cache = MemberCache(self._cache_kube, owned=self._serves, on_change=self._member_changed,
                                     relist_interval=options.relist_interval)
            self.metrics.cached_objects.set_function(lambda: self.cache.stats.objects if self.cache else 0)
            self.metrics.watch_lists.set_function(lambda: self.cache.stats.lists if self.cache else 0)
        self.reconcilers = {
            app.name: AppReconciler(app, kube=self._kube, metrics=self.metrics, cache_dir=options.cache_dir,
                                    field_manager=options.field_manager, lock_timeout=options.lock_timeout,
                                    instance=options.identity, cache=self.cache, shared_git=self.shared_git)
            for app in config.apps
        }
        self.scheduler = AppScheduler(max_workers=max(1, min(options.max_workers, len(config.apps))))
        try:
            self.http = DaemonHTTPServer(options.listen, self)
        except OSError as error:
            host, port = options.listen
            raise ConfigError(f"--listen {host}:{port}: cannot listen there: {error.strerror or error}") from None
        self.elector: LeaderElector | None = None
        self.shard: ShardMember | None = None
        self.ownership: Ownership = SoleOwner()
        url = options.advertise_url or default_advertise_url(self.http.address)
        if options.election is not None:
            self.ownership = self.elector = LeaderElector(
                self._control, identity=options.identity, options=options.election, url=url,
                on_started_leading=self._started_leading, on_stopped_leading=self._stopped_leading,
            )
        elif options.shard is not None:
            self.ownership = self.shard = ShardMember(
                self._control, identity=options.identity, options=options.shard, url=url,
                running=lambda: self.scheduler.running_apps(), on_change=self._shard_changed,
            )
        self._stopping = False
        self._ready_lock = threading.Lock()
        self._ready_checked: tuple[float, str | None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return self.http.address

    @property
    def is_leader(self) -> bool:
        return self.elector is None or self.elector.is_leader

    def start(self) -> None:
        self.http.start()
        log.info("listening on http://%s:%d (healthz, readyz, metrics%s)", *self.address,
                 ", webhook" if self.options.webhook_secret else "")
        for name, reconciler in self.reconcilers.items():
            self.scheduler.add(name, interval=reconciler.app.interval, tick=functools.partial(self._tick, reconciler))
        self.scheduler.start()
        if self.cache is not None:
            self.cache.start()
        self.metrics.set_leader(self.elector is None and self.shard is None)
        if self.shard is not None:
            shard = self.shard
            self.metrics.follow_shard(members=lambda: len(shard.assignment.members),
                                      owned=lambda: len(shard.owned(self.scheduler.apps)))
        self.ownership.start()
        log.info("syncing %d app(s) from %s as %s%s", len(self.reconcilers), self.config.source,
                 self.options.identity, " (leader election on)" if self.elector else
                 " (sharded with the other replicas)" if self.shard else "")

    def stop(self, *, timeout: float = 60.0, release: bool = True) -> list[str]:
        """Stop scheduling and wait up to `timeout` seconds for running syncs. Returns the
        apps still syncing when the time ran out (then leadership is not released: the Lease
        expires on its own, after those syncs have had more time). `release=False` leaves the
        Lease to expire in any case, as a crash would."""
        self._stopping = True
        if self.cache is not None:
            self.cache.stop()
        still_running = self.scheduler.stop(timeout=timeout)
        self.ownership.stop(release=release and not still_running)
        self.metrics.set_leader(False)
        self.http.stop()
        self._control.close()
        if self._cache_kube is not None:
            self._cache_kube.close()
        if not still_running:
            self._kube.close()
        return still_running

    def _tick(self, reconciler: AppReconciler) -> bool:
        if not self.ownership.owns(reconciler.app.name):
            return True
        return reconciler.tick()

    # -- drift from the watches ---------------------------------------------------------------

    def _serves(self, applyset: str) -> bool:
        with self._applysets_lock:
            return applyset in self._applysets

    def _member_changed(self, applyset: str, ref: ObjectRef) -> None:
        """Someone (maybe our own sync) changed an object of an app: sync that app soon, from
        its last render. Changes in a burst start one sync."""
        with self._applysets_lock:
            app = self._applysets.get(applyset)
            if app is None or app in self._heals_pending or self._stopping:
                return
            self._heals_pending.add(app)
        log.debug("app %s: %s changed; syncing it in %.1fs", app, ref, HEAL_DELAY)
        timer = threading.Timer(HEAL_DELAY, self._heal, args=(app,))
        timer.daemon = True
        timer.start()

    def _heal(self, app: str) -> None:
        with self._applysets_lock:
            self._heals_pending.discard(app)
        self.metrics.heal_triggers.labels(app=app).inc()
        reconciler = self._reconciler_of(app)
        if reconciler is not None:
            reconciler.note_drift()
        self.scheduler.trigger(app)

    def _reconciler_of(self, app: str) -> AppReconciler | None:
        return self.reconcilers.get(app)

    def _started_leading(self) -> None:
        self.metrics.set_leader(True)
        self.scheduler.trigger_all()

    def _shard_changed(self, before: Assignment, after: Assignment) -> None:
        """Start the apps gained at once; the ones lost stop at their next tick."""
        self.metrics.set_leader(after.active)
        self.scheduler.trigger_all(where=lambda app: after.owns(app) and not before.owns(app))

    def _stopped_leading(self) -> None:
        self.metrics.set_leader(False)
        if not self._stopping:
            log.warning("no longer the leader: no new syncs start until leadership is regained")

    # -- endpoints -------------------------------------------------------------------------

    def healthz(self) -> tuple[int, str]:
        """Liveness: the process serves HTTP and, unless it is shutting down, still schedules
        syncs (a dead scheduler would otherwise leave a pod that looks fine but never syncs)."""
        if not self._stopping and not self.scheduler.running:
            return 503, "not healthy: the scheduler is not running"
        return 200, "ok"

    def readyz(self) -> tuple[int, str]:
        if self._stopping:
            return 503, "not ready: shutting down"
        problem = self._cluster_problem()
        if problem is not None:
            return 503, f"not ready: syncs cannot read from the API server: {problem}"
        role = self.ownership.describe(self.scheduler.apps)
        watching = "not watching (--no-watch)"
        if self.cache is not None:
            stats = self.cache.stats
            watching = f"watching {stats.resources} kind(s), {stats.objects} object(s) cached"
        return 200, f"ready: {role}; {self.app_count} app(s) configured; {watching}"

    @property
    def app_count(self) -> int:
        return len(self.reconcilers)

    def apps_for_push(self, push: Push) -> list[str]:
        """The scheduler's names of the apps a push concerns."""
        return matching_apps(self.config.apps, push)

    def _cluster_problem(self) -> str | None:
        """Why syncs cannot make progress now, or None. The probe (`readiness_read`) is a read
        that the API server answers from etcd (a 404 is an answer), with the credentials and in
        the namespace a sync uses. `/version` would not do: the
        API server answers it with etcd down, while every sync hangs."""
        now = time.monotonic()
        with self._ready_lock:
            checked = self._ready_checked
            if checked is not None and now - checked[0] < READY_CACHE_SECONDS:
                return checked[1]
        problem = None
        try:
            self.readiness_read()
        except ClusterError as error:
            problem = str(error)
        with self._ready_lock:
            self._ready_checked = (time.monotonic(), problem)
        return problem

    def readiness_read(self) -> None:
        """One read a sync needs, answered from etcd: the first app's ApplySet parent."""
        if not self.config.apps:
            return
        app = self.config.apps[0]
        configmaps = self._control.resource_for("v1", "ConfigMap")
        self._control.get(configmaps, f"{PARENT_PREFIX}{app.name}", namespace=app.namespace)

    def exposition(self) -> tuple[bytes, str]:
        return self.metrics.exposition()

    def webhook(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        secret = self.options.webhook_secret
        if secret is None:
            return 404, {"error": "webhooks are off: start syncer run with --webhook-secret-file "
                                  "or SYNCER_WEBHOOK_SECRET"}
        try:
            provider = authenticate(headers, body, secret=secret)
            if not is_push(headers):
                return 200, {"triggered": [], "ignored": f"event {event_name(headers)!r} is not a push"}
            push = parse_push(body)
        except WebhookRejected as rejected:
            log.warning("webhook rejected (%d): %s", rejected.status, rejected)
            return rejected.status, {"error": str(rejected)}
        apps = self.apps_for_push(push)
        if self.elector is not None and not self.elector.is_leader:
            return self._forward(headers, body)
        passed_on: list[str] = []
        if self.shard is not None:
            apps, passed_on = self._pass_on_to_owners(headers, body, apps)
        for app in apps:
            reconciler = self._reconciler_of(app)
            if reconciler is not None:
                reconciler.expect_news()
            self.scheduler.trigger(app)
        log.info("webhook from %s: push to %s triggered %s", provider, push.ref or "?",
                 ", ".join(apps) or "no app", extra={"apps": apps, "ref": push.ref})
        return 202, {"triggered": sorted(apps + passed_on)}

    def _pass_on_to_owners(self, headers: dict[str, str], body: bytes, apps: list[str]) -> tuple[list[str], list[str]]:
        """Sharded: the apps to trigger here (those this replica owns), and those that other
        replicas triggered after this one passed the push on to each owner once. A push that
        was itself passed on goes no further. An app without a known owner now (membership
        is changing) is triggered anyway by whoever takes it over."""
        assert self.shard is not None
        local = [app for app in apps if self.shard.owns(app)]
        if headers.get(FORWARDED_HEADER):
            return local, []
        triggered: list[str] = []
        for url in sorted({url for app in apps if app not in local and (url := self.shard.owner_url(app))}):
            status, answer = self._post(url, headers, body, to="the owning replica")
            if status == 202:
                triggered.extend(str(app) for app in answer.get("triggered") or [])
            else:
                log.warning("webhook: cannot pass the push on to %s (%d): %s", url, status, answer.get("error"))
        return local, triggered

    def _forward(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """A standby passes an authenticated push on to the leader, which alone syncs: with
        several replicas behind one Service, about half of all webhooks reach a standby."""
        assert self.elector is not None
        url = self.elector.leader_url
        if headers.get(FORWARDED_HEADER) or not url:
            return 503, {"error": "this replica is a standby and does not know the leader's address; "
                                  "the push is picked up at the next interval"}
        return self._post(url, headers, body, to="the leader")

    def _post(self, url: str, headers: dict[str, str], body: bytes, *, to: str) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            url.rstrip("/") + "/webhook", data=body, method="POST",
            headers={**{k: v for k, v in headers.items() if k in _FORWARD_HEADERS},
                     FORWARDED_HEADER: self.options.identity},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - another replica
                return int(response.status), json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            try:
                return error.code, json.loads(error.read() or b"{}")
            except ValueError:
                return error.code, {"error": f"{to} at {url} answered {error.code}"}
        except (OSError, ValueError) as error:
            return 503, {"error": f"cannot pass the push on to {to} at {url}: {error}"}
