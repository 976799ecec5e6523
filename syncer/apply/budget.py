"""The prune budget: how much of an app one sync may delete before a person says yes.

A source that loses most of an app at once is more often a mistake (a wrong path, a broken
overlay, a branch that dropped a directory) than a decision, and a sync carries it out in
seconds. So the plan counts its deletions against the app's members, and a plan past the
budget is *blocked*: `diff` shows it (exit 1), `sync` refuses it before its first write
(exit 2), the daemon reports the App Stalled (`PruneBudget`). Pure: decisions in, a verdict out.

The budget (`SyncOptions.max_prune`) is more than half of the app's members and at least 5
objects by default; objects a filter keeps do not count, they are not deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from syncer.errors import SyncerError
from syncer.model import Action, PruneBudget

BUDGET_HINT = ("pass --confirm-prune-all to let this sync through, or raise the budget with --max-prune N|P% "
               "(an app: maxPrune in its spec)")


@dataclass(frozen=True)
class BudgetCheck:
    """A plan's deletions against its app's members and budget."""

    deletions: int
    members: int
    budget: PruneBudget

    @property
    def exceeded(self) -> bool:
        return self.budget.exceeded(deletions=self.deletions, members=self.members)

    def __str__(self) -> str:
        if self.budget.count is not None:
            allowed = f"its budget of {self.budget.count} object(s)"
        else:
            allowed = (f"its budget of {self.budget} of its members ({self.budget.allowed(self.members)} "
                       f"object(s); a percentage never stops fewer than {PruneBudget.PERCENT_FLOOR})")
        return (f"blocked by the prune budget: this sync would delete {self.deletions} of the app's "
                f"{self.members} member(s), more than {allowed}; {BUDGET_HINT}")


def check_budget(actions: Iterable[Action], *, members: int, budget: PruneBudget) -> BudgetCheck:
    """`actions`: the prune decisions' actions; only deletions count."""
    return BudgetCheck(deletions=sum(1 for action in actions if action is Action.DELETED), members=members,
                       budget=budget)


class PruneBudgetExceeded(SyncerError):
    """A sync refused before its first write: its plan would prune past the app's budget.
    Nothing gets better until the source, the budget or a confirmation changes: an App is
    Stalled with this `condition` reason."""

    condition = "PruneBudget"

    def __init__(self, app: str, check: BudgetCheck) -> None:
        super().__init__(f"app {app}: {check}")
        self.check = check
