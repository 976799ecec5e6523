"""`syncer run --config`: the apps of a configuration file, as the runtime's app source.

The apps are fixed for the life of the process (SIGHUP restarts rather than reloads, see
`syncer.cli.run`), so the source builds every app's reconciler at start and never changes
the schedule afterwards.
"""

from __future__ import annotations

from syncer.apply.applyset import PARENT_PREFIX, Inventory
from syncer.config import Config
from syncer.daemon.reconciler import AppReconciler
from syncer.daemon.source import SourceContext
from syncer.daemon.tick import TickOutcome, run_tick
from syncer.daemon.webhook import Push, matching_apps
from syncer.kube import Kube


class FileApps:
    """An `AppSource` (`syncer.daemon.source`) over a loaded configuration."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._reconcilers: dict[str, AppReconciler] = {}
        self._context: SourceContext | None = None

    @property
    def description(self) -> str:
        return self.config.source

    def start(self, context: SourceContext) -> None:
        options = context.options
        reconcilers = {
            app.id.key: AppReconciler(app, kube=context.kube, metrics=context.metrics, cache_dir=options.cache_dir,
                                    field_manager=options.field_manager, lock_timeout=options.lock_timeout,
                                    instance=options.identity, cache=context.cache, shared_git=context.shared_git,
                                    renderer=context.renderer)
            for app in self.config.apps
        }
        self._context, self._reconcilers = context, reconcilers
        for app in self.config.apps:
            context.metrics.declare(app.id, waits=app.wait)
            context.schedule.route(app.id.key, applyset=Inventory.for_app(app=app.name, namespace=app.id.namespace).id)
            context.schedule.put(app.id.key, interval=app.interval)

    def stop(self, *, still_running: list[str]) -> None:
        pass

    def app_count(self) -> int:
        return len(self.config.apps)

    def tick(self, app: str) -> TickOutcome | None:
        reconciler = self._reconcilers.get(app)
        if reconciler is None or self._context is None:
            return None
        context = self._context
        return run_tick(reconciler, kube=context.kube, cache=context.cache, health=False)

    def apps_for_push(self, push: Push) -> list[str]:
        return matching_apps(self.config.apps, push)

    def readiness_read(self) -> None:
        """The first app's ApplySet parent, read with the syncs' credentials in their namespace
        (a 404 is an answer). `/version` would not do: the API server answers it with etcd
        down, while every sync hangs."""
        if not self.config.apps or self._context is None:
            return
        app = self.config.apps[0]
        kube: Kube = self._context.control
        kube.get(kube.resource_for("v1", "ConfigMap"), f"{PARENT_PREFIX}{app.name}", namespace=app.id.namespace)

    def reconciler_of(self, app: str) -> AppReconciler | None:
        return self._reconcilers.get(app)
