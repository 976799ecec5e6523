"""Where the daemon's apps come from: the one interface between the runtime and its app source.

    runtime (syncer.daemon.runtime.Daemon)          source (an AppSource)
    clients, member cache, scheduler,      <---     which apps exist, their intervals and
    ownership, heal routing, HTTP,                  ApplySets (told through `Schedule`)
    webhooks, metrics                      --->     tick(app) -> TickOutcome
                                                    apps_for_push, readiness_read,
                                                    reconciler_of, app_count

Two sources implement it: `FileApps` (the configuration file, `syncer run --config`;
`syncer.daemon.fileapps`) and `ClusterApps` (the cluster's App objects;
`syncer.daemon.apps`). The runtime takes a source, so the file mode and the App mode share
every piece of the machinery instead of one subclassing the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from syncer.apply.membercache import MemberCache
from syncer.daemon.metrics import Metrics
from syncer.daemon.options import DaemonOptions
from syncer.daemon.reconciler import AppReconciler
from syncer.daemon.tick import TickOutcome
from syncer.daemon.webhook import Push
from syncer.kube import ClientOptions, Kube
from syncer.sources import SharedLsRemote
from syncer.sources.renderpool import InProcess, Renderer


class Schedule(Protocol):
    """What a source tells the runtime about its apps. `app` is the runtime's name of an app
    (the file's app name; an App's `namespace/name`)."""

    def put(self, app: str, *, interval: float) -> None:
        """Schedule the app: its first tick runs at once. Again, when it is scheduled already:
        at a new interval."""
        ...

    def route(self, app: str, *, applyset: str | None) -> None:
        """Changes to the objects of `applyset` (None: none yet) heal `app`."""
        ...

    def remove(self, app: str) -> None:
        """Stop scheduling the app; a tick in progress still finishes."""
        ...

    def trigger(self, app: str) -> None:
        """Run the app's tick now (or right after the one in progress)."""
        ...


@dataclass(frozen=True)
class SourceContext:
    """The runtime's services a source builds its apps' ticks from."""

    kube: Kube
    """The client syncs use (unless an app has an identity of its own)."""
    control: Kube
    """For probes: no retries and a short timeout, so /readyz answers quickly."""
    client: ClientOptions
    """How `kube` was made: a source connects clients of its own with these (impersonation)."""
    options: DaemonOptions
    metrics: Metrics
    cache: MemberCache | None
    shared_git: SharedLsRemote
    schedule: Schedule
    renderer: Renderer = field(default_factory=InProcess)
    """Where the apps' renders run (the runtime's render workers)."""


class AppSource(Protocol):
    @property
    def description(self) -> str:
        """Where the apps come from, for the log ("apps.yaml", "Apps in all namespaces")."""
        ...

    def start(self, context: SourceContext) -> None:
        """Build the apps and tell `context.schedule` about them; the runtime calls it first
        in its start, so a configuration that cannot be built fails before anything runs."""
        ...

    def stop(self, *, still_running: list[str]) -> None:
        """After scheduling stopped; `still_running`: apps whose tick is still running (leave
        their clients open)."""
        ...

    def app_count(self) -> int: ...

    def tick(self, app: str) -> TickOutcome | None:
        """One tick of the app, on its owner only; None: the app is gone."""
        ...

    def apps_for_push(self, push: Push) -> list[str]:
        """The runtime's names of the apps a Git push concerns."""
        ...

    def readiness_read(self) -> None:
        """One read the source's syncs need, answered from etcd; ClusterError when it fails."""
        ...

    def reconciler_of(self, app: str) -> AppReconciler | None:
        """The app's reconciler, to tell it of news (`expect_news`) or drift (`note_drift`);
        None before its first tick built one."""
        ...
