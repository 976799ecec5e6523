"""`syncer run` without `--config`: the cluster's App objects are the apps.

    daemon = Daemon(ClusterApps(AppsOptions()), client=ClientOptions(), options=DaemonOptions())

An `AppSource` (`syncer.daemon.source`) for the runtime: a watch per namespace
(`--watch-namespace`, else one for all namespaces) keeps the table of Apps
(`syncer.daemon.apptable`), and each tick, on the App's owner only, reads the App's entry
once and runs it (`syncer.daemon.apptick`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from syncer.config import AppConfig
from syncer.daemon.appclient import app_resource
from syncer.daemon.appspec import TenantPolicy
from syncer.daemon.apptable import AppTable, AppsWatchHandler
from syncer.daemon.apptick import AppTicker, ReconcilerFactory
from syncer.daemon.notify import Notifier, Receiver
from syncer.daemon.notifytarget import AddressAllowList
from syncer.daemon.reconciler import AppReconciler
from syncer.daemon.source import SourceContext
from syncer.daemon.tick import TickOutcome
from syncer.daemon.webhook import Push, matching_apps
from syncer.model import AppId
from syncer.errors import ClusterError
from syncer.kube import Kube
from syncer.kube.watch import Reflector
from syncer.sources.git import cache_root

log = logging.getLogger(__name__)


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


class ClusterApps:
    """See the module docstring."""

    def __init__(self, options: AppsOptions, *, new_reconciler: ReconcilerFactory = AppReconciler) -> None:
        self.options = options
        self._new_reconciler = new_reconciler
        self._notifier = Notifier()
        self._credentials = Path(tempfile.mkdtemp(prefix="syncer-credentials-"))
        self._watch_stop = threading.Event()
        self._watch_kube: Kube | None = None
        self._control: Kube | None = None
        self.table: AppTable | None = None
        self._ticker: AppTicker | None = None

    @property
    def description(self) -> str:
        return "Apps in " + (", ".join(self.options.namespaces) if self.options.namespaces else "all namespaces")

    def start(self, context: SourceContext) -> None:
        self.attach(context)
        assert self.table is not None
        watch_kube = self._watch_kube = Kube.connect(replace(context.client, max_retries=0))
        resource = app_resource(watch_kube)
        for namespace in self.options.namespaces or (None,):
            Reflector(watch_kube, resource, handler=AppsWatchHandler(self.table, namespace=namespace),
                      stop=self._watch_stop, namespace=namespace).start()

    def attach(self, context: SourceContext) -> None:
        """The table and the ticks, without the watch (which `start` adds); a ConfigError
        when the App CRD is not installed."""
        self._control = context.control
        policy = TenantPolicy(
            require_service_account=self.options.require_service_account,
            allow_local_repos=self.options.allow_local_repos,
            private_dirs=(cache_root(context.options.cache_dir), self._credentials),
            notify_allow=self.options.notify_allow,
        )
        self.table = AppTable(schedule=context.schedule, policy=policy)
        self._ticker = AppTicker(context=context, resource=app_resource(context.kube), notifier=self._notifier,
                                 notify=self.options.notify, notify_allow=self.options.notify_allow,
                                 credentials=self._credentials, new_reconciler=self._new_reconciler,
                                 may_adopt=self._may_adopt)

    def _may_adopt(self, config: AppConfig) -> bool:
        """The App's inventory before the upgrade was ConfigMap syncer-<name> in its target
        namespace; an App of that name there owns that ConfigMap now, and an unwatched
        namespace may hold one."""
        watched = not self.options.namespaces or config.namespace in self.options.namespaces
        return watched and self.table is not None and self.table.get(AppId(config.namespace, config.name).key) is None

    def stop(self, *, still_running: list[str]) -> None:
        self._watch_stop.set()
        self._notifier.close(wait=not still_running)
        if self._watch_kube is not None:
            self._watch_kube.close()
        if not still_running:
            for state in self.table.states() if self.table is not None else []:
                state.close()
            shutil.rmtree(self._credentials, ignore_errors=True)

    def app_count(self) -> int:
        return len(self.table) if self.table is not None else 0

    def tick(self, app: str) -> TickOutcome | None:
        """The App's entry is read here, once: the whole tick works from this one snapshot,
        whatever the watch swaps into the table meanwhile."""
        found = self.table.get(app) if self.table is not None else None
        if found is None or self._ticker is None:
            return None
        entry, state = found
        if not state.begin():
            return None
        try:
            return self._ticker.tick(entry, state)
        except ClusterError as error:  # the status could not be written; try again later
            log.warning("App/%s: %s", app, error)
            return TickOutcome(app=AppId.of_key(app), ok=False)
        finally:
            state.end()

    def apps_for_push(self, push: Push) -> list[str]:
        entries = self.table.entries() if self.table is not None else []
        return [entry.key for entry in entries if entry.spec is not None and matching_apps([entry.spec.config], push)]

    def readiness_read(self) -> None:
        """One page of one App, read from etcd (`resourceVersion` unset): the daemon needs to
        read Apps to do anything at all."""
        if self._control is None:
            return
        resource = app_resource(self._control)
        namespace = (self.options.namespaces or (None,))[0]
        self._control.request("GET", resource.path(namespace=namespace), subject="App", verb="list",
                              query={"limit": "1"})

    def reconciler_of(self, app: str) -> AppReconciler | None:
        found = self.table.get(app) if self.table is not None else None
        return found[1].reconciler if found is not None else None
