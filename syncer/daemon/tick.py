"""The one owner of a tick's outcome: what the sync did, what drifted, how healthy the objects are.

Both app sources run their apps' ticks through `run_tick`, and everything that reports on a
tick reads the `TickOutcome` it returns: the metrics and the drift log line (the runtime,
`record_outcome`), the App status and, from the status' transitions, the notifications and
Events (`syncer.daemon.apptick`). Before, the file mode's reconciler counted drift itself
and the App mode computed drift and health again after the reconciler's tick; two owners of
one answer drift apart.

When drift is planned (a plan of the last render against the live objects, as `syncer diff`
plans it) is decided here, once:

    the tick's sync succeeded          -> no drift: the sync just made every object match Git
    no render yet                      -> not known
    a member changed, or the sync      -> plan it
    failed, or there is no watch cache
    otherwise                          -> not known this tick: nothing changed since the last
                                          plan (the watches would have said so), so whoever
                                          reports it keeps what it reported
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from syncer.apply.applyset import Inventory
from syncer.apply.history import HistoryEntry
from syncer.apply.membercache import MemberReads
from syncer.daemon.appobserve import observe_drift, observe_health
from syncer.daemon.appstatus import AppHealth
from syncer.daemon.approval import PendingPlan
from syncer.daemon.metrics import Metrics
from syncer.daemon.reconciler import AppReconciler, SyncAttempt, SyncStep
from syncer.kube import Kube
from syncer.model import AppId

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TickOutcome:
    """Everything one tick found, computed once (see the module docstring)."""

    app: AppId
    ok: bool
    """False: the tick failed and the app backs off."""
    attempt: SyncAttempt | None = None
    """This tick's sync attempt; None: the tick made none."""
    current: SyncAttempt | None = None
    """The latest attempt at the app's current revision (`AppReconciler.current_attempt`),
    which the status reports: a heal of an older render is this tick's attempt, not this."""
    drift: tuple[str, ...] | None = None
    """The objects a sync would change; None: not known this tick."""
    health: AppHealth | None = None
    """The objects' health; None: not read (the file mode does not report it) or unreadable."""
    pending: PendingPlan | None = None
    """The new revision's plan, waiting for approval (`spec.approval: manual`)."""
    hold: dict[str, Any] | None = None
    """The rollback's hold as applied (`status.hold`); None: the App has none."""
    history: tuple[HistoryEntry, ...] | None = None
    """The app's sync history as the reconciler last read or recorded it."""


def run_tick(reconciler: AppReconciler, *, kube: Kube, cache: MemberReads | None, health: bool) -> TickOutcome:
    """One tick of one app: the reconciler's step, then its drift and (`health`) health, read
    with `kube` (the app's own identity)."""
    step = reconciler.step()
    manifests = reconciler.manifests
    app = reconciler.app
    observed_health: AppHealth | None = None
    if health and manifests is not None:
        applyset = Inventory.for_app(app=app.name, namespace=app.id.namespace).id
        observed_health = observe_health(kube, manifests, cache=cache, applyset=applyset)
    drift: tuple[str, ...] | None = None
    if step.attempt is not None and step.attempt.ok:
        drift = ()
    elif manifests is not None and _drift_may_have_changed(step, cache=cache):
        drift = observe_drift(kube, manifests, options=reconciler.options, revision=reconciler.rendered_revision,
                              cache=cache)
    return TickOutcome(app=app.id, ok=step.ok, attempt=step.attempt, current=reconciler.current_attempt,
                       drift=drift, health=observed_health, pending=reconciler.pending, history=reconciler.history,
                       hold=reconciler.hold_status)


def _drift_may_have_changed(step: SyncStep, *, cache: MemberReads | None) -> bool:
    return step.member_changed or step.attempt is not None or cache is None


def record_outcome(outcome: TickOutcome, *, metrics: Metrics, drift_before: tuple[str, ...] | None) -> None:
    """The metrics of a tick, and a log line when its drift changed."""
    attempt = outcome.attempt
    if attempt is not None:
        metrics.observe_sync(outcome.app, changes=attempt.changes, ok=attempt.ok, seconds=attempt.seconds,
                             current=attempt is outcome.current)
    if outcome.health is not None:
        metrics.observe_health(outcome.app, outcome.health.state)
    drift = outcome.drift
    if drift is None:
        return
    metrics.observe_drift(outcome.app, len(drift))
    if drift != drift_before and (drift or drift_before):
        log.info("app %s: %d object(s) drifted from Git%s", outcome.app, len(drift),
                 f": {', '.join(drift[:10])}" if drift else "", extra={"app": outcome.app.name, "app_namespace": outcome.app.namespace, "drift": list(drift)})
