"""The daemon's runtime: one machinery, whichever source its apps come from.

    daemon = Daemon(FileApps(load_config(path)), client=ClientOptions(), options=DaemonOptions())
    daemon = Daemon(ClusterApps(AppsOptions()), client=ClientOptions(), options=DaemonOptions())
    daemon.start()
    ...                                   # until SIGTERM
    still_running = daemon.stop(timeout=60)

The runtime owns what every app shares: the API clients, the member cache and the heal
routing from it (`HealRouter`), the scheduler (`AppScheduler`), which apps this replica syncs
(an `Ownership`: every app; `LeaderElector`: all or none; `ShardMember`: its share), HTTP
(`DaemonHTTPServer`, calling back into the endpoint methods here), webhooks (`PushHandler`)
and the metrics. The `AppSource` (`syncer.daemon.source`) says which apps exist and runs
their ticks; the runtime records each tick's `TickOutcome` in the metrics. Composition
replaces the former subclass: the file mode and the App mode differ only in their source.

Stopping never interrupts a sync: scheduling stops, running syncs finish (bounded by the
caller's timeout), and only then are the apps released, so another replica cannot start
syncing an app while this one still writes it.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from syncer.apply.membercache import MemberCache
from syncer.daemon.heal import HealRouter
from syncer.daemon.http import DaemonHTTPServer
from syncer.daemon.leader import LeaderElector
from syncer.daemon.membership import Assignment
from syncer.daemon.metrics import Metrics
from syncer.daemon.options import DaemonOptions
from syncer.daemon.ownership import Ownership, SoleOwner
from syncer.daemon.pushes import PushHandler
from syncer.daemon.scheduler import AppScheduler
from syncer.daemon.shard import ShardMember
from syncer.daemon.source import AppSource, SourceContext
from syncer.daemon.tick import record_outcome
from syncer.errors import ClusterError, ConfigError
from syncer.kube import ClientOptions, Kube
from syncer.sources import SharedLsRemote
from syncer.model import AppId
from syncer.sources.renderpool import InProcess, Renderer, RenderPool

log = logging.getLogger(__name__)

READY_CACHE_SECONDS = 2.0
"""The API server is asked at most this often, however often probes come."""
HEALTH_RECHECK_SECONDS = (5.0, 60.0)
"""An app whose objects are still progressing (or missing) is looked at again after the first
of these, doubling up to the second, instead of at its next interval: a rollout finishes with
status writes, which start no sync, and an App would otherwise stay Progressing for a whole
interval after its objects became healthy (seen in the App benchmark). With the watch cache
the look reads nothing from the API server."""


def default_advertise_url(address: tuple[str, int]) -> str:
    """How other replicas reach this one: the pod's IP ($POD_IP, from the downward API), else
    the address listened on, else the host name."""
    host, port = address
    host = os.environ.get("POD_IP") or (host if host not in ("0.0.0.0", "::", "") else socket.gethostname())
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass(frozen=True)
class _SourceSchedule:
    """The runtime's side of `syncer.daemon.source.Schedule`."""

    daemon: Daemon

    def put(self, app: str, *, interval: float) -> None:
        if self.daemon._stopping:
            return
        scheduler = self.daemon.scheduler
        scheduler.remove(app)
        scheduler.add(app, interval=interval, tick=functools.partial(self.daemon._tick, app))

    def route(self, app: str, *, applyset: str | None) -> None:
        self.daemon.heals.route(app, applyset=applyset)

    def remove(self, app: str) -> None:
        self.daemon.heals.route(app, applyset=None)
        self.daemon.scheduler.remove(app)

    def trigger(self, app: str) -> None:
        self.daemon.scheduler.trigger(app)


class Daemon:
    """See the module docstring. Implements `syncer.daemon.http.Endpoints`."""

    def __init__(self, source: AppSource, *, client: ClientOptions, options: DaemonOptions) -> None:
        self.source = source
        self.options = options
        self.metrics = Metrics(())
        self._client = replace(client, pool_size=max(client.pool_size, 64))
        self._kube = Kube.connect(self._client)
        # Probes and Lease renewals must answer quickly, never sit in retries.
        self._control = Kube.connect(replace(client, max_retries=0, request_timeout=5.0))
        self.shared_git = SharedLsRemote()
        self.heals = HealRouter(on_heal=self._heal)
        self.drift: dict[AppId, tuple[str, ...]] = {}
        """The last drift a tick found, per app (as its metrics name it)."""
        self.cache: MemberCache | None = None
        self._cache_kube: Kube | None = None
        if options.watch:
            self._cache_kube = Kube.connect(self._client)
            self.cache = MemberCache(self._cache_kube, owned=self.heals.serves, on_change=self.heals.member_changed,
                                     relist_interval=options.relist_interval)
            self.metrics.cached_objects.set_function(lambda: self.cache.stats.objects if self.cache else 0)
            self.metrics.watch_lists.set_function(lambda: self.cache.stats.lists if self.cache else 0)
        self.scheduler = AppScheduler(max_workers=max(1, options.max_workers))
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
        self.pushes = PushHandler(source=source, secret=options.webhook_secret, identity=options.identity,
                                  trigger=self.scheduler.trigger, elector=self.elector, shard=self.shard)
        self._drift_lock = threading.Lock()
        self._rechecks: dict[str, int] = {}
        """Apps whose health is progressing: how many re-checks in a row so far."""
        self._stopping = False
        self._ready_lock = threading.Lock()
        self._ready_checked: tuple[float, str | None] | None = None
        self.renderer: Renderer = InProcess(options.render_limits)
        """The render workers once started (`syncer.sources.renderpool`)."""

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return self.http.address

    @property
    def is_leader(self) -> bool:
        return self.elector is None or self.elector.is_leader

    def start(self) -> None:
        if self.options.render_workers > 0:
            self.renderer = RenderPool(workers=self.options.render_workers, limits=self.options.render_limits)
        self.source.start(SourceContext(
            kube=self._kube, control=self._control, client=self._client, options=self.options,
            metrics=self.metrics, cache=self.cache, shared_git=self.shared_git, schedule=_SourceSchedule(self),
            renderer=self.renderer,
        ))
        self.http.start()
        log.info("listening on http://%s:%d (healthz, readyz, metrics%s)", *self.address,
                 ", webhook" if self.options.webhook_secret else "")
        self.scheduler.start()
        if self.cache is not None:
            self.cache.start()
        self.metrics.set_leader(self.elector is None and self.shard is None)
        if self.shard is not None:
            shard = self.shard
            self.metrics.follow_shard(members=lambda: len(shard.assignment.members),
                                      owned=lambda: len(shard.owned(self.scheduler.apps)))
        self.ownership.start()
        log.info("syncing %d app(s) from %s as %s%s", self.source.app_count(), self.source.description,
                 self.options.identity, " (leader election on)" if self.elector else
                 " (sharded with the other replicas)" if self.shard else "")

    def stop(self, *, timeout: float = 60.0, release: bool = True) -> list[str]:
        """Stop scheduling and wait up to `timeout` seconds for running syncs. Returns the
        apps still syncing when the time ran out (then leadership is not released: the Lease
        expires on its own, after those syncs have had more time). `release=False` leaves the
        Lease to expire in any case, as a crash would."""
        self._stopping = True
        self.heals.stop()
        if self.cache is not None:
            self.cache.stop()
        still_running = self.scheduler.stop(timeout=timeout)
        self.source.stop(still_running=still_running)
        if isinstance(self.renderer, RenderPool):
            self.renderer.close()
        self.ownership.stop(release=release and not still_running)
        self.metrics.set_leader(False)
        self.http.stop()
        self._control.close()
        if self._cache_kube is not None:
            self._cache_kube.close()
        if not still_running:
            self._kube.close()
        return still_running

    def _tick(self, app: str) -> bool:
        if not self.ownership.owns(app):
            return True
        outcome = self.source.tick(app)
        if outcome is None:
            return True
        with self._drift_lock:
            before = self.drift.get(outcome.app)
            if outcome.drift is not None:
                self.drift[outcome.app] = outcome.drift
        record_outcome(outcome, metrics=self.metrics, drift_before=before)
        self._recheck_health(app, progressing=outcome.health is not None
                             and outcome.health.state in ("Progressing", "Missing"))
        return outcome.ok

    def _recheck_health(self, app: str, *, progressing: bool) -> None:
        with self._drift_lock:
            if not progressing:
                self._rechecks.pop(app, None)
                return
            attempt = self._rechecks.get(app, 0)
            self._rechecks[app] = attempt + 1
        first, cap = HEALTH_RECHECK_SECONDS
        timer = threading.Timer(min(first * 2 ** attempt, cap), self._recheck, args=(app,))
        timer.daemon = True
        timer.start()

    def _recheck(self, app: str) -> None:
        if not self._stopping:
            self.scheduler.trigger(app)

    # -- drift from the watches, ownership changes -----------------------------------------

    def _heal(self, app: str) -> None:
        """A member of the app changed: sync it from its last render, without asking Git."""
        self.metrics.observe_heal_trigger(AppId.of_key(app))
        reconciler = self.source.reconciler_of(app)
        if reconciler is not None:
            reconciler.note_drift()
        self.scheduler.trigger(app)

    def _started_leading(self) -> None:
        self.metrics.set_leader(True)
        self.scheduler.trigger_all()

    def _shard_changed(self, before: Assignment, after: Assignment) -> None:
        """Start the apps gained at once; the ones lost stop at their next tick, and what this
        replica held for them is dropped."""
        self.metrics.set_leader(after.active)
        self._forget(lambda app: before.owns(app) and not after.owns(app))
        self.scheduler.trigger_all(where=lambda app: after.owns(app) and not before.owns(app))

    def _stopped_leading(self) -> None:
        self.metrics.set_leader(False)
        self._forget(lambda app: True)
        if not self._stopping:
            log.warning("no longer the leader: no new syncs start until leadership is regained")

    def _forget(self, lost: Callable[[str], bool]) -> None:
        """Drop the renders and noted changes of the apps this replica lost: another replica
        may apply a newer revision meanwhile, and what this one holds must not be applied
        when it owns them again (their next tick here asks Git and renders afresh). Called
        from the membership or election thread before ownership can come back, since that
        thread is the one that would regain it."""
        for app in self.scheduler.apps:
            if lost(app):
                reconciler = self.source.reconciler_of(app)
                if reconciler is not None:
                    reconciler.forget()

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
        return 200, f"ready: {role}; {self.source.app_count()} app(s) configured; {watching}"

    def _cluster_problem(self) -> str | None:
        """Why syncs cannot make progress now, or None: the source's `readiness_read`, a read
        the API server answers from etcd with the credentials a sync uses, at most every
        `READY_CACHE_SECONDS`."""
        now = time.monotonic()
        with self._ready_lock:
            checked = self._ready_checked
            if checked is not None and now - checked[0] < READY_CACHE_SECONDS:
                return checked[1]
        problem = None
        try:
            self.source.readiness_read()
        except ClusterError as error:
            problem = str(error)
        with self._ready_lock:
            self._ready_checked = (time.monotonic(), problem)
        return problem

    def exposition(self) -> tuple[bytes, str]:
        return self.metrics.exposition()

    def webhook(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        return self.pushes.handle(headers, body)
