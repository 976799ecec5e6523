"""The invariants the model test checks after every step, as plain functions that return what
is wrong (an empty list when all is well), and the one adapter from the engine's results to
the action vocabulary.

The invariants (issue 10, "Proof: invariants, not examples"):
  diff-predicts-sync     the plan's action for every object is the action of the dry run and of
                         the real sync; `has_changes` exactly when the sync changes something
  dry-means-dry          planning and `sync --dry-run` change no object of the test
  live-matches-git       after a sync every field Git sets is live (Secrets compared decoded)
  inventory-exact        the ApplySet parent records exactly Git's objects plus the kept ones,
                         and every live member of the app is in Git, kept, or terminating
  resync-writes-nothing  an immediate second sync sends no write and the plan has no changes
  fresh-plan-applies     the sync is `syncer apply` of the plan diff made: it is never refused,
                         unless a controller finished a deletion in between
  stale-plan-writes-nothing  applying that plan again after the sync writes nothing, and is
                         refused when it planned object changes
  nothing-foreign-deleted  only the app's own members that Git no longer has are deleted (or
                         what the test's own actor deleted); never an object whose UID is desired
  ownership-stays        an object of one app never becomes another app's unless that app's
                         manifest says `syncer.dev/adopt: "true"`; an ApplySet parent is never
                         a member
  sync-succeeds          a valid commit syncs without error; an invalid one is refused before
                         anything is written; so is one past the prune budget, and only when
                         it is past it (more than half of the app's members and at least 5)
  protected-needs-confirmation  a protected object (Namespace, CRD) is deleted only when the
                         sync confirmed it, and kept by `protected` only when it did not
  budget-holds           an accepted sync that did not confirm past the budget is within it
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

from syncer.apply import ChangeSet, Plan
from syncer.apply.budget import BudgetCheck
from syncer.apply.tasks import WRITING_TASKS, PruneStep
from syncer.model import Action, Object, ObjectRef, is_protected
from tests.e2e.model.world import APPLYSET_ID, PART_OF, Key, Seen, Snapshot, Write

CHANGING = frozenset({"created", "configured", "recreated", "deleted"})
WRITE_VERBS = frozenset({"apply", "delete", "create", "update", "patch"})


# -- the adapter: the only code that knows the shape of Plan and ChangeSet ---------------------


def planned_actions(plan: Plan) -> dict[ObjectRef, str]:
    """{ref: action} as `syncer diff` reports it, in `syncer.model.Action` words."""
    return {ref: str(action) for ref, action in plan.decisions()}


def departed(before: Snapshot, later: Snapshot) -> set[ObjectRef]:
    """Objects terminating in the first snapshot and gone in the later one."""
    return {ref_of(item) for item in before.objects.values() if item.terminating and item.key not in later.objects}


def pending_writes(plan: Plan) -> list[str]:
    """The writes a plan would make, object actions first, then its inventory and namespace
    tasks, in words for a failure message."""
    return [*(f"{ref.qualified()}: {action}" for ref, action in planned_actions(plan).items() if action in CHANGING),
            *(f"{type(task).__name__}({getattr(task, 'stage', '')})" for task in plan.tasks
              if isinstance(task, WRITING_TASKS) and not isinstance(task, PruneStep))]


def only_finished_departures(plan: Plan, departed: Iterable[ObjectRef]) -> bool:
    """The plan's one write narrows the inventory by objects that were terminating when the
    sync ran and are gone now: the cluster finished a deletion after the sync, which had
    rightly kept them recorded, so there was nothing for that sync to do."""
    writes = pending_writes(plan)
    narrowing = plan.inventory_writes()
    return (len(writes) == len(narrowing) == 1 and narrowing[0].stage == "narrow"
            and narrowing[0].inventory.including(list(departed)).records_same(plan.inventory))


def change_actions(changes: ChangeSet) -> dict[ObjectRef, str]:
    """{ref: action} of what a sync did (or a dry run would do)."""
    actions: dict[ObjectRef, str] = {}
    for change in changes.changes:
        action = str(change.action)
        if change.ref in actions and actions[change.ref] != action:
            action = f"{actions[change.ref]}+{action}"
        actions[change.ref] = action
    return actions


# -- checks -------------------------------------------------------------------------------------


def differing_actions(expected: Mapping[ObjectRef, str], got: Mapping[ObjectRef, str]) -> list[str]:
    return [f"{ref.qualified()}: {expected.get(ref, '(absent)')} vs {got.get(ref, '(absent)')}"
            for ref in sorted(set(expected) | set(got)) if expected.get(ref) != got.get(ref)]


def written(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Write requests sent between two readings of a Kube's counters."""
    return {verb: after.get(verb, 0) - before.get(verb, 0) for verb in WRITE_VERBS
            if after.get(verb, 0) != before.get(verb, 0)}


def _decoded_secret(obj: Object) -> dict[str, str]:
    values = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    values.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
    return values


def _missing(desired: Any, live: Any, path: str) -> list[str]:
    """Where `live` lacks or contradicts what `desired` sets (server defaults are allowed)."""
    if isinstance(desired, dict):
        if desired == {} and live is None:
            return []  # the server drops empty maps
        if not isinstance(live, dict):
            return [f"{path}: want an object, live has {live!r}"]
        found = []
        for key, value in desired.items():
            found += _missing(value, live.get(key), f"{path}.{key}")
        return found
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return [f"{path}: want {desired!r}, live has {live!r}"]
        return [problem for i, (d, l) in enumerate(zip(desired, live)) for problem in _missing(d, l, f"{path}[{i}]")]
    if desired != live:
        return [f"{path}: want {desired!r}, live has {live!r}"]
    return []


def live_mismatches(desired: Object, live: Object | None) -> list[str]:
    """Fields Git sets that the live object does not have. ConfigMap and Secret data must match
    exactly: a key Git dropped must be gone."""
    if live is None:
        return ["missing"]
    if desired["kind"] == "Secret":
        want, have = _decoded_secret(desired), _decoded_secret(live)
        problems = [] if want == have else [f"data: want {sorted(want)} with Git's values, live has {sorted(have)}"
                                            + ("" if set(want) != set(have) else " with other values")]
        desired = {k: v for k, v in desired.items() if k not in ("data", "stringData")}
        return problems + _missing(desired, live, "")
    if desired["kind"] == "ConfigMap" and (desired.get("data") or {}) != (live.get("data") or {}):
        return [f"data: want {desired.get('data')}, live has {live.get('data')}"]
    return _missing(desired, live, "")


def inventory_problems(
    parent: Object | None, *, desired: Iterable[ObjectRef], kept: Iterable[ObjectRef], home: str,
    terminating: Iterable[ObjectRef] = (),
) -> list[str]:
    """The parent records every group-kind and namespace of Git's and the kept objects, and
    nothing else but those of members still terminating."""
    if parent is None:
        return ["the ApplySet parent is missing"]
    annotations = (parent.get("metadata") or {}).get("annotations") or {}
    recorded_kinds = {k for k in annotations.get("applyset.kubernetes.io/contains-group-kinds", "").split(",") if k}
    recorded_namespaces = {n for n in annotations.get("applyset.kubernetes.io/additional-namespaces", "").split(",") if n}
    required = list(desired) + list(kept)
    allowed = required + list(terminating)
    problems = []
    want_kinds = {r.group_kind for r in required}
    want_namespaces = {r.namespace for r in required if r.namespace and r.namespace != home}
    if not want_kinds <= recorded_kinds <= {r.group_kind for r in allowed}:
        problems.append(f"contains-group-kinds is {sorted(recorded_kinds)}, Git and kept need {sorted(want_kinds)}")
    allowed_namespaces = {r.namespace for r in allowed if r.namespace and r.namespace != home}
    if not want_namespaces <= recorded_namespaces <= allowed_namespaces:
        problems.append(f"additional-namespaces is {sorted(recorded_namespaces)}, Git and kept need "
                        f"{sorted(want_namespaces)}")
    return problems


def ref_of(item: Seen) -> ObjectRef:
    group, kind, namespace, name = item.key
    return ObjectRef(group=group, kind=kind, namespace=namespace, name=name)


def stray_members(
    snapshot: Snapshot, *, applyset: str, desired: set[ObjectRef], kept: set[ObjectRef]
) -> list[str]:
    """Live members of the app that are neither in Git nor kept nor on their way out."""
    desired_uids = {item.uid for item in snapshot.objects.values() if ref_of(item) in desired}
    return [
        str(item) for item in snapshot.objects.values()
        if item.labels.get(PART_OF) == applyset and not item.terminating and not item.system_made
        and ref_of(item) not in desired | kept and item.uid not in desired_uids
        and not snapshot.gone_with_container(item)
    ]


def ownership_moves(
    before: Snapshot, after: Snapshot, *, allowed: set[str], parents: Mapping[Key, str]
) -> list[str]:
    """Objects whose ApplySet membership changed (UIDs in `allowed` may move), ApplySet parents
    that became members of a set or lost their id. `parents`: each app's parent and its id.

    Objects only Kubernetes writes are left out: Endpoints and EndpointSlices copy their
    Service's labels, `part-of` included, and follow it to its new owner.
    """
    old = {item.uid: item for item in before.objects.values()}
    problems = []
    for key, applyset in parents.items():
        parent = after.objects.get(key)
        if parent is not None and parent.labels.get(APPLYSET_ID) != applyset:
            problems.append(f"{parent} is the parent of ApplySet {applyset} but is labelled "
                            f"{APPLYSET_ID}={parent.labels.get(APPLYSET_ID)}")
    for item in after.objects.values():
        if APPLYSET_ID in item.labels and PART_OF in item.labels:
            problems.append(f"{item} is an ApplySet parent and a member of {item.labels[PART_OF]}")
        previous = old.get(item.uid)
        if previous is None or item.uid in allowed or item.system_made:
            continue
        was, now = previous.labels.get(PART_OF), item.labels.get(PART_OF)
        if was and was != now:
            problems.append(f"{item} moved from ApplySet {was} to {now or 'no ApplySet'}")
    return sorted(set(problems))


def unexplained_deletions(
    deletions: Iterable[Write], *, before: Snapshot, after: Snapshot, deleter: str | None,
    desired: set[ObjectRef], recreated: set[ObjectRef], by_hand: set[str], own_lock: tuple[str, str],
) -> list[str]:
    """Deletions the step could not have made. `deleter` is the ApplySet id of the app that
    synced in this step (None: no sync); it may delete its own members Git no longer has.

    A Namespace or CRD takes everything inside with it, so its deletion is judged by its
    contents: each must be something its deleter could have deleted itself (or Kubernetes'
    own housekeeping, or a dependent of such an object).
    """
    desired_uids = {item.uid for snap in (before, after) for item in snap.objects.values()
                    if ref_of(item) in desired and ref_of(item) not in recreated}
    problems = []

    def deletable(item: Seen, doomed: set[str]) -> str | None:
        if item.uid in by_hand:
            return None
        if item.kind == "Event" or (item.kind, item.namespace, item.name) == ("Lease", *own_lock):
            return None
        if item.uid in desired_uids:
            return f"{item} is desired (its UID {item.uid} is in Git)"
        if item.owners:
            return None if set(item.owners) & doomed else f"{item} (owned by an object that stays) went with it"
        if item.system_made and not item.labels.get(PART_OF):
            return None
        if deleter is None:
            return f"{item} was deleted, and no app synced"
        if item.labels.get(PART_OF) != deleter:
            owner = item.labels.get(PART_OF)
            return f"{item} is not the syncing app's ({'ApplySet ' + owner if owner else 'no ApplySet label'})"
        if ref_of(item) in desired and ref_of(item) not in recreated:
            return f"{item} is in Git"
        return None

    for deletion in deletions:
        item = deletion.item
        problem = deletable(item, {item.uid})
        if problem:
            problems.append(f"{deletion}: {problem}")
        if item.kind == "Namespace" or item.kind == "CustomResourceDefinition":
            inside = [
                seen for snap in (before, after) for seen in snap.objects.values()
                if (item.kind == "Namespace" and seen.namespace == item.name)
                or (item.kind == "CustomResourceDefinition" and seen.kind == "Widget"
                    and f"widgets.{seen.group}" == item.name)
            ]
            doomed = {item.uid, *(seen.uid for seen in inside)}
            for content in {seen.uid: seen for seen in inside}.values():
                if content.terminating and before.objects.get(content.key, content).terminating:
                    continue  # its deletion was decided (and judged) before
                problem = deletable(content, doomed)
                if problem:
                    problems.append(f"{deletion}, with {problem}")
    return problems


def protected_problems(changes: ChangeSet, *, confirmed: frozenset[ObjectRef]) -> list[str]:
    """A protected object deleted without a confirmation, or kept as `protected` with one."""
    problems = []
    for change in changes.changes:
        if not is_protected(change.ref):
            continue
        if change.action is Action.DELETED and change.ref not in confirmed:
            problems.append(f"{change.ref}: deleted without a confirmation")
        if change.reason == "protected" and change.ref in confirmed:
            problems.append(f"{change.ref}: kept as protected though the sync confirmed it")
    return problems


def budget_problems(
    check: BudgetCheck, *, before: Snapshot, applyset: str, desired: set[ObjectRef], confirmed_all: bool,
) -> list[str]:
    """A refusal by the prune budget that the rule does not explain: the sync confirmed past
    it, it counts more deletions than the app has members Git dropped, or they are within it."""
    dropped = [i for i in before.objects.values()
               if i.labels.get(PART_OF) == applyset and ref_of(i) not in desired and not i.terminating]
    problems = []
    if confirmed_all:
        problems.append("refused by the budget, though the sync confirmed past it")
    if check.deletions > len(dropped):
        problems.append(f"counts {check.deletions} deletions, but only {len(dropped)} members left Git")
    if not (check.deletions >= 5 and check.deletions * 2 > check.members):
        problems.append(f"refused within the budget: {check}")
    return problems
