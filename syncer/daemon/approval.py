"""Approval for Apps (`spec.approval: manual`): the CLI's review workflow inside the cluster.

The daemon plans each new revision as `syncer plan` would and does not apply it: the App's
status shows the plan's summary and digest (`status.pendingPlan`, Ready False with reason
`AwaitingApproval`). `syncer approve` writes that digest into `spec.approvedPlan` with the
user's own rights; the daemon then syncs the revision with the App's identity, and, as
`syncer apply` does, compares the plan it makes under the lock with the approved one and
refuses, before its first write, a plan whose digest differs (the cluster or the source
moved since): that plan becomes the new pending one.

A plan's digest here is that of its `Plan` document (`syncer.apply.planfile`) with a context
every replica computes alike: no creation time, and a salt derived from the App's identity.
Heals of the revision the cluster records are not new revisions and need no approval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from syncer.apply import Plan
from syncer.apply.planfile import app_context, plan_document
from syncer.apply.sync import Acceptance, PlanRefused
from syncer.model import AppId, Manifest


@dataclass(frozen=True)
class PendingPlan:
    """A revision planned and waiting for approval."""

    revision: str
    digest: str
    summary: dict[str, int]
    """Objects per action (`configured`, `deleted`, ...), unchanged ones left out."""
    blocked: str | None = None

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {"revision": self.revision, "digest": self.digest, "summary": self.summary}
        if self.blocked:
            status["blocked"] = self.blocked
        return status


def pending_plan(plan: Plan, *, manifests: Sequence[Manifest], app: AppId) -> PendingPlan:
    document = plan_document(plan, manifests=manifests, context=app_context(app))
    counts: dict[str, int] = {}
    for entry in [*document["objects"], *document["prune"]]:
        if entry["action"] != "unchanged":
            counts[entry["action"]] = counts.get(entry["action"], 0) + 1
    return PendingPlan(revision=plan.revision, digest=document["digest"], summary=counts, blocked=plan.blocked)


def approved(digest: str, *, manifests: Sequence[Manifest], app: AppId) -> Acceptance:
    """The sync's check of the plan made under its lock: the approved one, or refused."""
    def accept(plan: Plan) -> None:
        now = pending_plan(plan, manifests=manifests, app=app)
        if now.digest != digest:
            raise PlanRefused(f"App/{app.namespace}/{app.name}: the plan of revision {plan.revision[:12]} moved "
                              f"since it was approved ({digest} approved, {now.digest} now); nothing was written, "
                              "approve the new plan")
    return accept


def awaiting_message(pending: PendingPlan, *, app: AppId) -> str:
    shown = ", ".join(f"{count} {action}" for action, count in sorted(pending.summary.items())) or "no changes"
    blocked = f"; {pending.blocked}" if pending.blocked else ""
    return (f"revision {pending.revision[:12]} is planned ({shown}{blocked}) and waits for approval: "
            f"syncer approve --app {app.name} -n {app.namespace} --digest {pending.digest}")
