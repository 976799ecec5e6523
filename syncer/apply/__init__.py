"""Ordered server-side apply with safe pruning: plan, execute, prune, wait, lock."""

from syncer.apply.budget import PruneBudgetExceeded
from syncer.apply.changeset import Change, ChangeSet
from syncer.apply.options import SyncOptions
from syncer.apply.plan import build_plan
from syncer.apply.planned import Plan
from syncer.apply.sync import EmptySourceRefused, plan_sync, sync

__all__ = ["Change", "ChangeSet", "EmptySourceRefused", "Plan", "PruneBudgetExceeded", "SyncOptions", "build_plan",
           "plan_sync", "sync"]
