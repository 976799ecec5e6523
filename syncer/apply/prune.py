"""Prune decisions: what happens to each live member of the app's ApplySet that Git no longer
has. Deleted, kept by a named filter (`filters.py`), or skipped because pruning is off;
decided here, once, at plan time. The executor deletes exactly the `deleted` ones."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from syncer.apply.applyset import Inventory
from syncer.apply.filters import Candidate, PruneContext, desired_uids, keep_reason
from syncer.apply.options import SyncOptions
from syncer.apply.planned import Desired, PruneDecision
from syncer.diff import compare
from syncer.kube import Kube, Resource
from syncer.model import Action, Object, ObjectRef


def decide(candidate: Candidate, context: PruneContext, *, prune: bool) -> tuple[Action, str, str]:
    """(action, reason, message) for one candidate: the first filter that keeps it decides;
    otherwise it is deleted, or skipped with pruning off."""
    kept = keep_reason(candidate, context)
    if kept is not None:
        return Action.KEPT, kept[0], f"kept: {kept[1]}"
    if not prune:
        return Action.SKIPPED, "prune-off", "not pruned: pruning is off (--no-prune)"
    return Action.DELETED, "", "pruned: no longer in the source"


def decide_prune(
    kube: Kube, members: Iterable[tuple[Resource, Object]], *, desired: Mapping[ObjectRef, Desired],
    inventory: Inventory, options: SyncOptions,
) -> tuple[PruneDecision, ...]:
    """A decision for every live member that is neither desired nor the parent, by ref."""
    context = PruneContext(
        kube=kube, applyset=inventory.id, app=options.app, field_manager=options.field_manager,
        desired=frozenset(desired),
        desired_uids=desired_uids((ref, d.live) for ref, d in desired.items() if d.live is not None),
        home=inventory.parent.namespace or "", confirmed=options.confirm_prune,
    )
    decisions = []
    for resource, live in members:
        ref = ObjectRef.of(live)
        if ref in desired or ref == inventory.parent:
            continue
        candidate = Candidate(ref=ref, api_version=str(live.get("apiVersion")), resource=resource, live=live)
        action, reason, message = decide(candidate, context, prune=options.prune)
        diff = compare(ref=ref, api_version=candidate.api_version, live=live, predicted=None, text=options.diff_text)
        decisions.append(PruneDecision(ref=ref, api_version=candidate.api_version, resource=resource, live=live,
                                       action=action, reason=reason, message=message, diff=diff))
    return tuple(sorted(decisions, key=lambda d: d.ref))


def unused_confirmations(confirmed: Iterable[ObjectRef], decisions: Iterable[PruneDecision]) -> list[str]:
    """Warnings for the confirmations that name nothing this plan deletes: harmless, but
    likely a typo or an object the source still has (or another filter keeps)."""
    deleted = {d.ref for d in decisions if d.action is Action.DELETED}
    kept = {d.ref: d.reason for d in decisions if d.action is not Action.DELETED}
    warnings = []
    for ref in sorted(set(confirmed) - deleted):
        why = f"it is kept by the {kept[ref]} filter" if ref in kept else "the app has no such member to prune"
        warnings.append(f"--confirm-prune {ref}: this sync deletes no such object ({why}); the confirmation "
                        "changes nothing")
    return warnings
