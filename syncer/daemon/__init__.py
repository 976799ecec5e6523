"""The in-cluster sync daemon behind `syncer run`: apps from a configuration file, each
synced on its interval (or at once on a webhook) by the leader among the replicas."""

from syncer.daemon.leader import ElectionOptions, LeaderElector
from syncer.daemon.metrics import Metrics
from syncer.daemon.reconciler import AppReconciler
from syncer.daemon.scheduler import AppScheduler, backoff_interval
from syncer.daemon.service import Daemon, DaemonOptions

__all__ = [
    "AppReconciler", "AppScheduler", "Daemon", "DaemonOptions", "ElectionOptions", "LeaderElector", "Metrics",
    "backoff_interval",
]
