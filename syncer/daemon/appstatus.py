"""An App's `status`, computed from what the daemon observed: pure functions of plain data.

The status follows the kstatus conventions, so `kubectl wait --for=condition=Ready`, Flux's
and Argo CD's tooling and cli-utils read it without knowing syncer:

    Ready        True once the revision is applied and every object is healthy
    Reconciling  True while a sync runs, is retried, or objects are still progressing
    Stalled      True when nothing gets better without a change: an invalid spec, an App
                 refused (no service account), a render past the daemon's bounds per App
                 (RenderTooLarge), a sync past its prune budget (PruneBudget), or objects
                 that failed (health Degraded)

Each has a reason and a message. `lastTransitionTime` changes only when a condition's status
does, and `lastSync.time` only when the outcome does, so an idle resync computes the same
status as before and the daemon writes nothing.

Health is aggregated from the app's objects with kstatus' rules (`syncer.apply.wait.health`
per object): any failed object makes the app Degraded, else any missing one Missing, else any
progressing one Progressing, else it is Healthy.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from syncer.apply.history import HistoryEntry
from syncer.apply.status import now_rfc3339
from syncer.apply.wait import health
from syncer.daemon.appspec import InvalidApp
from syncer.daemon.approval import PendingPlan, awaiting_message
from syncer.daemon.reconciler import SyncAttempt
from syncer.model import AppId, Object, ObjectRef

AppHealthState = Literal["Healthy", "Progressing", "Degraded", "Missing"]
MAX_LISTED = 20
"""Objects named in a message or in drift.objects at most; the count is always complete."""
MAX_MESSAGE = 2000

READY, RECONCILING, STALLED, ROLLED_BACK = "Ready", "Reconciling", "Stalled", "RolledBack"
AWAITING_APPROVAL = "AwaitingApproval"
OWNED_ACTIONS = ("created", "configured", "recreated", "unchanged", "skipped")
"""Actions after which an object is (still) in the app's inventory."""


@dataclass(frozen=True)
class AppHealth:
    state: AppHealthState
    message: str = ""


def aggregate_health(objects: Sequence[tuple[ObjectRef, Object | None]]) -> AppHealth:
    """The app's health from its desired objects and their live state (None: not found)."""
    failed, missing, progressing = [], [], []
    for ref, live in objects:
        if live is None:
            missing.append(f"{ref}: not found")
            continue
        object_health = health(live)
        if object_health.state == "failed":
            failed.append(f"{ref}: {object_health.message}")
        elif object_health.state == "progressing":
            progressing.append(f"{ref}: {object_health.message}")
    ranked: tuple[tuple[AppHealthState, list[str]], ...] = (
        ("Degraded", failed), ("Missing", missing), ("Progressing", progressing))
    for state, found in ranked:
        if found:
            listed = "; ".join(found[:MAX_LISTED]) + (f"; and {len(found) - MAX_LISTED} more"
                                                      if len(found) > MAX_LISTED else "")
            return AppHealth(state, listed[:MAX_MESSAGE])
    return AppHealth("Healthy", f"{len(objects)} object(s) healthy")


@dataclass(frozen=True)
class Observation:
    """Everything the status is computed from."""

    generation: int
    outcome: SyncAttempt | None = None
    """The latest sync attempt (None: none yet, or nothing new since the last status)."""
    health: AppHealth | None = None
    drift: tuple[str, ...] | None = None
    """Objects whose live state differs from Git; None: not checked."""
    suspended: bool = False
    invalid: InvalidApp | None = None
    syncing: str | None = None
    """Set (to what is being synced) while a sync the user waits for runs."""
    handled_request: str | None = None
    """The reconcile-requested-at value this observation answers."""
    pending: PendingPlan | None = None
    """A new revision planned and waiting for approval (`spec.approval: manual`)."""
    app: AppId | None = None
    """The App, for the message that says how to approve."""
    hold: dict[str, Any] | None = None
    """`status.hold`: the rollback's hold as the daemon applies it (None: the spec has none)."""
    history: tuple[HistoryEntry, ...] | None = None
    """The app's sync history as recorded on its parent (None: not known this tick)."""


def _condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message[:MAX_MESSAGE]}


def _conditions(previous: dict[str, Any], observed: Observation) -> list[dict[str, Any]]:
    """Ready, Reconciling, Stalled for this observation (without times)."""
    if observed.invalid is not None:
        reason, message = observed.invalid.reason, str(observed.invalid)
        return [_condition(READY, "False", reason, message), _condition(RECONCILING, "False", reason, message),
                _condition(STALLED, "True", reason, message)]
    if observed.suspended:
        applied = previous.get("lastAppliedRevision")
        message = "spec.suspend is true: no syncs until it is false" + (
            f"; revision {applied[:12]} was applied last" if applied else "")
        ready = _find(previous.get("conditions"), READY)
        return [_condition(READY, str(ready.get("status", "Unknown")) if ready else "Unknown", "Suspended", message),
                _condition(RECONCILING, "False", "Suspended", message),
                _condition(STALLED, "False", "Suspended", message)]
    if observed.syncing is not None:
        message = f"syncing {observed.syncing}"
        return [_condition(READY, "Unknown", "Progressing", message),
                _condition(RECONCILING, "True", "Progressing", message),
                _condition(STALLED, "False", "Progressing", message)]
    if observed.pending is not None and observed.app is not None:
        message = awaiting_message(observed.pending, app=observed.app)
        return [_condition(READY, "False", AWAITING_APPROVAL, message),
                _condition(RECONCILING, "False", AWAITING_APPROVAL, message),
                _condition(STALLED, "False", AWAITING_APPROVAL, message)]
    outcome = observed.outcome
    if outcome is None:
        message = "waiting for the first sync"
        return [_condition(READY, "Unknown", "Progressing", message),
                _condition(RECONCILING, "True", "Progressing", message),
                _condition(STALLED, "False", "Progressing", message)]
    if not outcome.ok and outcome.stalled is not None:
        message = _error(outcome)  # names the App, the revision, the bound and the flag that raises it
        return [_condition(READY, "False", outcome.stalled, message),
                _condition(RECONCILING, "False", outcome.stalled, message),
                _condition(STALLED, "True", outcome.stalled, message)]
    if not outcome.ok:
        message = f"sync of revision {outcome.revision[:12]} failed: {_error(outcome)}"
        return [_condition(READY, "False", "SyncFailed", message),
                _condition(RECONCILING, "True", "ProgressingWithRetry", message),
                _condition(STALLED, "False", "SyncFailed", message)]
    applied = f"revision {outcome.revision[:12]} applied"
    state = observed.health
    if state is None:
        message = f"{applied}; health unknown (the objects could not be read)"
        return [_condition(READY, "Unknown", "HealthUnknown", message),
                _condition(RECONCILING, "False", "HealthUnknown", message),
                _condition(STALLED, "False", "HealthUnknown", message)]
    message = f"{applied}; {state.state}: {state.message}"
    if state.state == "Healthy":
        return [_condition(READY, "True", "Succeeded", message), _condition(RECONCILING, "False", "Succeeded", message),
                _condition(STALLED, "False", "Succeeded", message)]
    if state.state == "Degraded":
        return [_condition(READY, "False", "HealthDegraded", message),
                _condition(RECONCILING, "False", "HealthDegraded", message),
                _condition(STALLED, "True", "HealthDegraded", message)]
    reason = "HealthMissing" if state.state == "Missing" else "HealthProgressing"
    return [_condition(READY, "False", reason, message), _condition(RECONCILING, "True", reason, message),
            _condition(STALLED, "False", reason, message)]


def _rolled_back(observed: Observation) -> dict[str, Any] | None:
    """`RolledBack`: True while a rollback's hold keeps the App at an earlier revision, False
    once a commit that changed its render ended it; absent without a hold (`spec.hold`)."""
    hold = observed.hold
    if hold is None or observed.invalid is not None:
        return None
    back = f"rolled back to {str(hold.get('revision'))[:12]} from {str(hold.get('from'))[:12]}"
    who = f" by {hold['requestedBy']}" if hold.get("requestedBy") else ""
    if hold.get("holding"):
        return _condition(ROLLED_BACK, "True", "Held",
                          f"{back}{who}; held until a commit changes the App's render or `syncer rollback "
                          f"--release`")
    return _condition(ROLLED_BACK, "False", "Released",
                      f"{back}{who}; the hold ended: commit {str(hold.get('releasedBy'))[:12]} changed the App's "
                      "render (`syncer rollback --release` removes spec.hold)")


def _error(outcome: SyncAttempt) -> str:
    if outcome.error:
        return outcome.error
    assert outcome.changes is not None
    failed = [f"{c.ref}: {c.message}" for c in outcome.changes.changes if c.action == "failed"]
    return "; ".join(failed) or "some objects failed"


def _find(conditions: object, kind: str) -> dict[str, Any] | None:
    for condition in conditions if isinstance(conditions, list) else []:
        if isinstance(condition, dict) and condition.get("type") == kind:
            return condition
    return None


def _last_sync(previous: dict[str, Any], outcome: SyncAttempt, now: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "revision": outcome.revision,
        "result": "Succeeded" if outcome.ok else "Failed",
        "summary": ({k: v for k, v in outcome.changes.summary().items() if v} if outcome.changes else {}),
    }
    failure = outcome.failure
    if failure is not None:
        record["error"] = _error(outcome)[:MAX_MESSAGE]
        _, cause, objects = failure
        record["failure"] = {"cause": cause, "objects": list(objects[:MAX_LISTED])}
    before = dict(previous.get("lastSync") or {})
    before_time = before.pop("time", None)
    record["time"] = before_time if before == record and before_time else now
    return record


def app_status(previous: dict[str, Any], observed: Observation, *, now: str | None = None) -> dict[str, Any]:
    """The new status; equal to `previous` when nothing users care about changed."""
    now = now or now_rfc3339()
    status = copy.deepcopy(previous)
    status["observedGeneration"] = observed.generation
    rolled_back = _rolled_back(observed)
    conditions = _conditions(previous, observed) + ([rolled_back] if rolled_back is not None else [])
    for condition in conditions:
        before = _find(previous.get("conditions"), condition["type"])
        same = before is not None and before.get("status") == condition["status"]
        condition["observedGeneration"] = observed.generation
        condition["lastTransitionTime"] = before.get("lastTransitionTime", now) if same and before else now
    status["conditions"] = conditions
    outcome = observed.outcome
    if outcome is not None and observed.invalid is None:
        status["lastAttemptedRevision"] = outcome.revision
        if outcome.applied:
            status["lastAppliedRevision"] = outcome.revision
        status["lastSync"] = _last_sync(previous, outcome, now)
        if outcome.ok and outcome.changes is not None:
            status["inventory"] = {"size": outcome.changes.count(*OWNED_ACTIONS)}  # type: ignore[arg-type]
    if observed.health is not None and observed.invalid is None:
        status["health"] = observed.health.state
        status["healthMessage"] = observed.health.message[:MAX_MESSAGE]
    if observed.drift is not None and observed.invalid is None:
        status["drift"] = {"count": len(observed.drift), "objects": list(observed.drift[:MAX_LISTED])}
    if observed.handled_request is not None:
        status["lastHandledReconcileAt"] = observed.handled_request
    if observed.hold is not None:
        status["hold"] = observed.hold
    elif observed.invalid is None:
        status.pop("hold", None)
    if observed.history is not None and observed.history:
        status["history"] = [entry.to_dict() for entry in observed.history]
    if outcome is not None and outcome.changes is not None and outcome.changes.interrupted is not None:
        status["lastInterrupted"] = outcome.changes.interrupted.to_dict()
    if observed.pending is not None:
        status["pendingPlan"] = observed.pending.to_status()
    elif observed.invalid is None and not observed.suspended and observed.syncing is None:
        status.pop("pendingPlan", None)
    return status


def condition_status(status: dict[str, Any], kind: str) -> str | None:
    found = _find(status.get("conditions"), kind)
    return str(found.get("status")) if found else None


def sync_result(status: dict[str, Any]) -> str | None:
    return (status.get("lastSync") or {}).get("result")


__all__ = ["AppHealth", "Observation", "aggregate_health", "app_status", "condition_status", "sync_result"]
