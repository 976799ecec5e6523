"""The solver: a plan's decisions in, its ordered tasks out (cli-utils' solver, which turns
its objects into the task queue the applier runs). Pure: it reads the decisions and asks
nobody.

The order is the sync's safety argument, task by task:
- `EnsureNamespace`: the app's own namespace, when new, comes first: the lock and the
  inventory live in it (a sync runs this before it takes its lock, `Plan.bootstrap`);
- `WriteInventory` (widen): the inventory records every group-kind and namespace the app is
  about to write before the first object is written, so a sync cut off half-way still knows
  where its objects may be;
- per apply step, first `CheckBlocked` for the objects the server could not check at plan
  time and now can (their namespace or CRD was created by an earlier step), so that one the
  server rejects stops the sync before anything depending on it is written; then the
  `ApplyStep`; then `WaitEstablished` after a step that writes a CRD, whose custom resources
  a later step applies;
- `PruneStep`s, in reverse dependency order, only after every apply step succeeded;
- `WriteInventory` (narrow) to exactly what the app now owns, after a complete prune;
- `WaitHealthy`, with `--wait`.
"""

from __future__ import annotations

from syncer.apply.crds import is_crd
from syncer.apply.filters import NOT_THE_APPS
from syncer.apply.order import deletion_steps
from syncer.apply.planned import Plan
from syncer.apply.tasks import (
    ApplyStep,
    CheckBlocked,
    EnsureNamespace,
    PruneStep,
    Task,
    WaitEstablished,
    WaitHealthy,
    WriteInventory,
)
from syncer.model import CHANGING_ACTIONS, Action, ObjectRef


def solve(plan: Plan) -> tuple[Task, ...]:
    """The tasks that carry out `plan`'s decisions, in the order above (its `tasks` are
    ignored: this is what makes them)."""
    tasks: list[Task] = []
    home = ObjectRef(group="", kind="Namespace", namespace=None, name=plan.inventory.parent.namespace or "")
    if home in plan.objects and plan.objects[home].live is None:
        tasks.append(EnsureNamespace(home))

    desired = list(plan.objects)
    kept = [d.ref for d in plan.prune if d.action is not Action.DELETED and d.reason not in NOT_THE_APPS]
    widened = plan.inventory.including(desired)
    final = plan.inventory.exactly(desired + kept)
    if not plan.inventory.exists or not widened.records_same(plan.inventory):
        tasks.append(WriteInventory(widened, "widen"))

    checked: set[ObjectRef] = set()
    created_before: set[ObjectRef] = set()
    for index, step in enumerate(plan.steps):
        ready = tuple(ref for s in plan.steps[index:] for ref in s
                      if plan.objects[ref].blocked_by and ref not in checked
                      and plan.objects[ref].blocked_by <= created_before)
        if ready:
            tasks.append(CheckBlocked(ready))
            checked.update(ready)
        tasks.append(ApplyStep(index, tuple(step)))
        new_crds = tuple(ref for ref in step if is_crd(ref) and plan.objects[ref].action in CHANGING_ACTIONS)
        if new_crds:
            tasks.append(WaitEstablished(new_crds))
        created_before.update(step)

    for deletion in deletion_steps(d.ref for d in plan.deletions):
        tasks.append(PruneStep(tuple(deletion)))
    if not final.records_same(widened):
        tasks.append(WriteInventory(final, "narrow"))
    if plan.options.wait:
        tasks.append(WaitHealthy(tuple(desired)))
    return tuple(tasks)
