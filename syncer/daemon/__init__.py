"""The in-cluster sync daemon behind `syncer run`: one runtime (`Daemon`) that takes an app
source, the configuration file's apps (`FileApps`) or the cluster's App objects
(`ClusterApps`), and syncs each app on its interval (or at once on a webhook) on its owner."""

from syncer.daemon.apps import AppsOptions, ClusterApps
from syncer.daemon.fileapps import FileApps
from syncer.daemon.leader import ElectionOptions, LeaderElector
from syncer.daemon.metrics import Metrics
from syncer.daemon.options import DaemonOptions
from syncer.daemon.reconciler import AppReconciler
from syncer.daemon.runtime import Daemon
from syncer.daemon.scheduler import AppScheduler, backoff_interval
from syncer.daemon.source import AppSource

__all__ = [
    "AppReconciler", "AppScheduler", "AppSource", "AppsOptions", "ClusterApps", "Daemon", "DaemonOptions",
    "ElectionOptions", "FileApps", "LeaderElector", "Metrics", "backoff_interval",
]
