"""The solver (plan decisions -> tasks), as tables: every task shape, no server.

Each row is a plan, written as its steps of planned objects, its prune decisions and its
inventory, and the tasks the solver must make of it, written short:
`ensure Namespace/shop`, `widen`, `check [..]`, `apply 0 [..]`, `established [..]`,
`prune [..]`, `narrow`, `healthy [..]`.
"""

from __future__ import annotations

from typing import Any

import pytest

from syncer.apply.planned import Plan
from syncer.apply.solver import solve
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
from syncer.model import Action
from tests.unit.fakes import INVENTORY, make_plan, planned, pruned, recorded, ref

C, U, CF = Action.CREATED, Action.UNCHANGED, Action.CONFIGURED


def short(task: Task) -> str:
    def refs(items: Any) -> str:
        return "[" + ", ".join(str(r) for r in items) + "]"
    if isinstance(task, EnsureNamespace):
        return f"ensure {task.ref}"
    if isinstance(task, WriteInventory):
        return task.stage
    if isinstance(task, CheckBlocked):
        return f"check {refs(task.refs)}"
    if isinstance(task, ApplyStep):
        return f"apply {task.index} {refs(task.refs)}"
    if isinstance(task, WaitEstablished):
        return f"established {refs(task.refs)}"
    if isinstance(task, PruneStep):
        return f"prune {refs(task.refs)}"
    assert isinstance(task, WaitHealthy)
    return f"healthy {refs(task.refs)}"


EXISTING = recorded(INVENTORY, "ConfigMap/shop/a")

TABLE = [
    pytest.param(
        make_plan([[planned("Namespace/shop", C)], [planned("ConfigMap/shop/a", C, blocked_by=["Namespace/shop"])]]),
        ["ensure Namespace/shop", "widen", "apply 0 [Namespace/shop]", "check [ConfigMap/shop/a]",
         "apply 1 [ConfigMap/shop/a]"],
        id="new-namespace-of-the-app-first-then-its-objects-checked"),
    pytest.param(
        make_plan([[planned("Namespace/shop", U)], [planned("ConfigMap/shop/a", C)]]),
        ["widen", "apply 0 [Namespace/shop]", "apply 1 [ConfigMap/shop/a]"],
        id="namespace-of-the-app-exists-no-ensure"),
    pytest.param(
        make_plan([[planned("Namespace/other", C)], [planned("ConfigMap/other/a", C, blocked_by=["Namespace/other"])]],
                  inventory=recorded(INVENTORY, "ConfigMap/other/a", "Namespace/other")),
        ["apply 0 [Namespace/other]", "check [ConfigMap/other/a]", "apply 1 [ConfigMap/other/a]"],
        id="new-namespace-not-the-apps-own-no-ensure"),
    pytest.param(
        make_plan([[planned("ConfigMap/shop/a", U)]]),
        ["widen", "apply 0 [ConfigMap/shop/a]"],
        id="inventory-absent-widen-even-when-nothing-changes"),
    pytest.param(
        make_plan([[planned("ConfigMap/shop/a", U)]], inventory=EXISTING),
        ["apply 0 [ConfigMap/shop/a]"],
        id="writes-nothing"),
    pytest.param(
        make_plan([[planned("ConfigMap/shop/a", U)], [planned("Deployment.apps/shop/web", C)]], inventory=EXISTING),
        ["widen", "apply 0 [ConfigMap/shop/a]", "apply 1 [Deployment/shop/web]"],
        id="inventory-present-widened-by-a-new-kind"),
    pytest.param(
        make_plan([[planned("ConfigMap/shop/a", CF)]], prune=[pruned("Deployment.apps/shop/web")],
                  inventory=recorded(INVENTORY, "ConfigMap/shop/a", "Deployment.apps/shop/web")),
        ["apply 0 [ConfigMap/shop/a]", "prune [Deployment/shop/web]", "narrow"],
        id="inventory-present-narrowed-after-the-prune"),
    pytest.param(
        make_plan([[planned("ConfigMap/shop/a", U)]], prune=[pruned("Deployment.apps/shop/web")],
                  inventory=INVENTORY.including([ref("Deployment.apps/shop/web")])),
        ["widen", "apply 0 [ConfigMap/shop/a]", "prune [Deployment/shop/web]", "narrow"],
        id="inventory-absent-members-recovered-widen-and-narrow"),
    pytest.param(
        make_plan([[planned("ConfigMap/shop/a", U)]],
                  prune=[pruned("Deployment.apps/shop/web", Action.KEPT, "prune-disabled")],
                  inventory=recorded(INVENTORY, "ConfigMap/shop/a", "Deployment.apps/shop/web")),
        ["apply 0 [ConfigMap/shop/a]"],
        id="kept-member-stays-recorded-no-narrow"),
    pytest.param(
        make_plan([[planned("ConfigMap/shop/a", U)]],
                  prune=[pruned("Service/shop/web", Action.KEPT, "never-applied")],
                  inventory=recorded(INVENTORY, "ConfigMap/shop/a", "Service/shop/web")),
        ["apply 0 [ConfigMap/shop/a]", "narrow"],
        id="kept-not-the-apps-own-narrowed-away"),
    pytest.param(
        make_plan([[planned("ConfigMap/shop/a", U)]],
                  prune=[pruned("Deployment.apps/shop/web", Action.SKIPPED, "prune-off")],
                  inventory=recorded(INVENTORY, "ConfigMap/shop/a", "Deployment.apps/shop/web")),
        ["apply 0 [ConfigMap/shop/a]"],
        id="pruning-off-no-prune-step-stays-recorded"),
    pytest.param(
        make_plan([[planned("ConfigMap/shop/a", U)]],
                  prune=[pruned("Namespace/old"), pruned("CustomResourceDefinition/widgets.example.com"),
                         pruned("Widget.example.com/old/w"), pruned("Deployment.apps/old/web"),
                         pruned("ConfigMap/old/c")],
                  inventory=recorded(INVENTORY, "ConfigMap/shop/a", "Namespace/old",
                                     "CustomResourceDefinition/widgets.example.com", "Widget.example.com/old/w",
                                     "Deployment.apps/old/web", "ConfigMap/old/c")),
        ["apply 0 [ConfigMap/shop/a]", "prune [Widget/old/w]", "prune [Deployment/old/web]",
         "prune [ConfigMap/old/c]", "prune [Namespace/old]", "prune [CustomResourceDefinition/widgets.example.com]",
         "narrow"],
        id="prune-steps-in-reverse-dependency-order"),
    pytest.param(
        make_plan([[planned("CustomResourceDefinition/widgets.example.com", C)],
                   [planned("ConfigMap/shop/a", U)],
                   [planned("Widget.example.com/shop/w", C,
                            blocked_by=["CustomResourceDefinition/widgets.example.com"])]],
                  inventory=recorded(INVENTORY, "CustomResourceDefinition/widgets.example.com", "ConfigMap/shop/a",
                                     "Widget.example.com/shop/w")),
        ["apply 0 [CustomResourceDefinition/widgets.example.com]",
         "established [CustomResourceDefinition/widgets.example.com]",
         "check [Widget/shop/w]", "apply 1 [ConfigMap/shop/a]", "apply 2 [Widget/shop/w]"],
        id="crd-created-waits-established-its-resources-checked-before-the-next-step"),
    pytest.param(
        make_plan([[planned("CustomResourceDefinition/widgets.example.com", CF)],
                   [planned("Widget.example.com/shop/w", U)]],
                  inventory=recorded(INVENTORY, "CustomResourceDefinition/widgets.example.com",
                                     "Widget.example.com/shop/w")),
        ["apply 0 [CustomResourceDefinition/widgets.example.com]",
         "established [CustomResourceDefinition/widgets.example.com]", "apply 1 [Widget/shop/w]"],
        id="crd-configured-waits-established"),
    pytest.param(
        make_plan([[planned("CustomResourceDefinition/widgets.example.com", U)],
                   [planned("Widget.example.com/shop/w", CF)]],
                  inventory=recorded(INVENTORY, "CustomResourceDefinition/widgets.example.com",
                                     "Widget.example.com/shop/w")),
        ["apply 0 [CustomResourceDefinition/widgets.example.com]", "apply 1 [Widget/shop/w]"],
        id="crd-unchanged-no-wait"),
    pytest.param(
        make_plan([[planned("Namespace/other", C), planned("CustomResourceDefinition/widgets.example.com", C)],
                   [planned("ConfigMap/other/a", C, blocked_by=["Namespace/other"])],
                   [planned("Widget.example.com/other/w", C,
                            blocked_by=["Namespace/other", "CustomResourceDefinition/widgets.example.com"])]],
                  inventory=recorded(INVENTORY, "Namespace/other", "ConfigMap/other/a",
                                     "CustomResourceDefinition/widgets.example.com", "Widget.example.com/other/w")),
        ["apply 0 [Namespace/other, CustomResourceDefinition/widgets.example.com]",
         "established [CustomResourceDefinition/widgets.example.com]",
         "check [ConfigMap/other/a, Widget/other/w]", "apply 1 [ConfigMap/other/a]", "apply 2 [Widget/other/w]"],
        id="one-check-for-every-object-whose-blockers-all-exist"),
    pytest.param(
        make_plan([[planned("Namespace/other", C)],
                   [planned("CustomResourceDefinition/widgets.example.com", C)],
                   [planned("Widget.example.com/other/w", C,
                            blocked_by=["Namespace/other", "CustomResourceDefinition/widgets.example.com"])]],
                  inventory=recorded(INVENTORY, "Namespace/other", "CustomResourceDefinition/widgets.example.com",
                                     "Widget.example.com/other/w")),
        ["apply 0 [Namespace/other]", "apply 1 [CustomResourceDefinition/widgets.example.com]",
         "established [CustomResourceDefinition/widgets.example.com]",
         "check [Widget/other/w]", "apply 2 [Widget/other/w]"],
        id="checked-only-once-the-last-blocker-exists"),
    pytest.param(
        make_plan([[planned("ConfigMap/shop/a", U)], [planned("Deployment.apps/shop/web", CF)]], inventory=recorded(
            INVENTORY, "ConfigMap/shop/a", "Deployment.apps/shop/web"), wait=True),
        ["apply 0 [ConfigMap/shop/a]", "apply 1 [Deployment/shop/web]",
         "healthy [ConfigMap/shop/a, Deployment/shop/web]"],
        id="wait-healthy-last-for-every-desired-object"),
    pytest.param(
        make_plan([[planned("ConfigMap/shop/a", U)]], prune=[pruned("Deployment.apps/shop/web")], inventory=recorded(
            INVENTORY, "ConfigMap/shop/a", "Deployment.apps/shop/web"), wait=True),
        ["apply 0 [ConfigMap/shop/a]", "prune [Deployment/shop/web]", "narrow", "healthy [ConfigMap/shop/a]"],
        id="wait-healthy-after-prune-and-narrow"),
    pytest.param(
        make_plan([], inventory=recorded(INVENTORY)),
        [],
        id="empty-plan-existing-empty-inventory-no-tasks"),
]


@pytest.mark.parametrize(("plan", "want"), TABLE)
def test_solver(plan: Plan, want: list[str]) -> None:
    assert [short(t) for t in solve(plan)] == want


WRITES = [
    pytest.param(make_plan([[planned("ConfigMap/shop/a", U)]], inventory=EXISTING), False, id="all-unchanged"),
    pytest.param(make_plan([[planned("ConfigMap/shop/a", U)]], wait=True, inventory=EXISTING), False,
                 id="waiting-writes-nothing"),
    pytest.param(make_plan([[planned("ConfigMap/shop/a", CF)]], inventory=EXISTING), True, id="configured"),
    pytest.param(make_plan([[planned("ConfigMap/shop/a", U)]]), True, id="inventory-widened"),
    pytest.param(make_plan([[planned("ConfigMap/shop/a", U)]], prune=[pruned("ConfigMap/shop/b")],
                           inventory=recorded(INVENTORY, "ConfigMap/shop/a")), True, id="prune"),
    pytest.param(make_plan([[planned("ConfigMap/shop/a", U)]],
                           prune=[pruned("ConfigMap/shop/b", Action.KEPT, "prune-disabled")],
                           inventory=recorded(INVENTORY, "ConfigMap/shop/a")), False, id="kept-only"),
]


@pytest.mark.parametrize(("plan", "writes"), WRITES)
def test_plan_writes(plan: Plan, writes: bool) -> None:
    """What `syncer diff` exits 1 on and what makes a sync take its lock: from the tasks."""
    assert plan.writes is writes


def test_bootstrap_is_the_ensure_namespace_task() -> None:
    plan = make_plan([[planned("Namespace/shop", C)], [planned("ConfigMap/shop/a", C, blocked_by=["Namespace/shop"])]])
    assert plan.bootstrap == (EnsureNamespace(planned("Namespace/shop").ref),)
    assert make_plan([[planned("Namespace/shop", U)]]).bootstrap == ()


def test_a_plan_and_its_decisions_are_values() -> None:
    """Workers return decisions; nobody changes one afterwards (the executor included)."""
    import dataclasses

    plan = make_plan([[planned("ConfigMap/shop/a", CF)]], inventory=EXISTING)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.objects[planned("ConfigMap/shop/a").ref].check.action = U  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.tasks = ()  # type: ignore[misc]
