"""The web dashboard of `syncer run --ui`: the Apps, one App's objects and Events, live.

    dashboard = serve(daemon, client=ClientOptions(), options=DashboardOptions(auth="kubernetes"))
    ...
    dashboard.stop()

It reads only what the daemon already holds (its App watch, the change set of each App's
last sync, its watch cache) plus each App's Events, renders two revisions of an App's history
to compare them as the App's own syncs render (`syncer.dashboard.compare`), and shows each
user only what they may read (`syncer.dashboard.auth`). It sits above `syncer.daemon` and is wired in by the CLI.
"""

from __future__ import annotations

from dataclasses import replace

from syncer.dashboard.auth import Authorizer, KubernetesAuth, NoAuth, is_loopback
from syncer.dashboard.compare import Renders
from syncer.dashboard.reader import AppsReader
from syncer.dashboard.server import Dashboard, DashboardOptions, daemon_kube, user_kube
from syncer.daemon import ClusterApps, Daemon
from syncer.errors import ConfigError
from syncer.kube import ClientOptions, Kube


def check_options(options: DashboardOptions) -> None:
    """Without authentication the dashboard is anyone's who reaches it: loopback only."""
    host, port = options.listen
    if options.auth == "none" and not is_loopback(host):
        raise ConfigError(
            f"--ui-listen {host}:{port}: without --ui-auth kubernetes the dashboard shows every App to anyone "
            "who reaches it, so it listens on loopback only (127.0.0.1:PORT, reached with kubectl port-forward); "
            "pass --ui-auth kubernetes to serve it beyond"
        )


def serve(daemon: Daemon, *, client: ClientOptions, options: DashboardOptions) -> Dashboard:
    """Start the dashboard of a daemon that serves App objects (`ClusterApps`)."""
    check_options(options)
    if not isinstance(daemon.source, ClusterApps):
        raise ConfigError("--ui shows App objects: it does not apply with --config")
    kube = Kube.connect(replace(client, max_retries=0))
    authorizer: Authorizer = KubernetesAuth(kube) if options.auth == "kubernetes" else NoAuth()
    act_as = user_kube(client) if options.auth == "kubernetes" else daemon_kube(client)
    try:
        dashboard = Dashboard(reader=AppsReader(daemon.source, kube=kube, cache=daemon.cache),
                              renders=Renders(daemon.source.reconciler_of),
                              authorizer=authorizer, options=options, act_as=act_as)
    except OSError as error:
        host, port = options.listen
        raise ConfigError(f"--ui-listen {host}:{port}: cannot listen there: {error.strerror or error}") from None
    dashboard.start()
    return dashboard


__all__ = ["Dashboard", "DashboardOptions", "check_options", "serve"]
