"""The executor over an in-memory API server (`FakeKube`): what it sends, in which order, with
which dry-run flag, and what the world looks like after. Plans are built by hand and solved
by the real solver, so each test reads as "this plan, this fault, this outcome"."""

from __future__ import annotations

import copy

import pytest

from syncer.apply.changeset import ChangeSet
from syncer.apply.executor import Bootstrap, execute, execute_bootstrap, undo_bootstrap
from syncer.apply.planned import Plan
from syncer.errors import ClusterError, Forbidden, Invalid, LockLost
from syncer.model import Action
from tests.unit.fakes import INVENTORY, FakeKube, make_plan, planned, pruned, recorded, ref, resource

C, U, CF = Action.CREATED, Action.UNCHANGED, Action.CONFIGURED
PARENT = "/api/v1/namespaces/shop/configmaps/syncer-shop"


def path(text: str) -> str:
    r = ref(text)
    return resource(r.kind, r.group).path(namespace=r.namespace, name=r.name)


def seeded(plan: Plan, kube: FakeKube | None = None) -> FakeKube:
    """A server holding what the plan found live."""
    kube = kube or FakeKube()
    for obj in [p.live for p in plan.objects.values() if p.live] + [d.live for d in plan.prune]:
        kube.put(obj)
    if plan.inventory.exists:
        kube.put(plan.inventory.parent_body())
    kube.requests.clear()
    kube.events.clear()
    return kube


def actions(changes: ChangeSet) -> dict[str, str]:
    return {str(c.ref): str(c.action) for c in changes.changes}


# -- dry run -----------------------------------------------------------------------------------------

def every_task_plan() -> Plan:
    """A plan with every task shape: the app's new namespace, a blocked object, a new CRD,
    a configured object, the update fallback, a deletion, --wait."""
    return make_plan(
        [[planned("Namespace/shop", C), planned("CustomResourceDefinition/widgets.example.com", C)],
         [planned("ConfigMap/shop/a", C, blocked_by=["Namespace/shop"]), planned("Secret/elsewhere/s", CF)],
         [planned("APIService.apiregistration.k8s.io/v1.metrics", CF, update_instead="kubernetes#89264")],
         [planned("Widget.example.com/shop/w", C,
                  blocked_by=["Namespace/shop", "CustomResourceDefinition/widgets.example.com"])]],
        prune=[pruned("Deployment.apps/elsewhere/old"), pruned("ConfigMap/elsewhere/kept", Action.KEPT,
                                                                "prune-disabled")],
        inventory=recorded(INVENTORY, "Secret/elsewhere/s", "Deployment.apps/elsewhere/old"), wait=True)


def test_dry_run_sends_only_dry_run_writes_and_skips_waits() -> None:
    plan = every_task_plan()
    kind_of_task = {type(t).__name__ for t in plan.tasks}
    assert kind_of_task == {"EnsureNamespace", "WriteInventory", "ApplyStep", "WaitEstablished", "CheckBlocked",
                            "PruneStep", "WaitHealthy"}, "the plan has every task shape"
    kube = seeded(plan)
    before = copy.deepcopy(kube.store)
    confirmed: list[str] = []
    changes = execute(kube, plan, dry_run=True, confirm_lock=lambda: confirmed.append("confirm"))

    writes = kube.writes()
    assert writes and all(r.dry_run for r in writes), [r for r in writes if not r.dry_run]
    assert next(r for r in writes if r.method == "DELETE").body["dryRun"] == ["All"], "in the body, read there"
    assert kube.store == before, "a dry run changed the world"
    # Waits and re-checks are skipped: nothing they depend on exists. The update fallback reads.
    assert [r.path for r in kube.requests if r.method == "GET"] == [path("APIService.apiregistration.k8s.io/v1.metrics")]
    assert "forget discovery" not in kube.events
    assert confirmed == [], "a dry run holds no lock"
    assert changes.ok and changes.dry_run
    assert actions(changes) == {str(r): str(a) for r, a in plan.decisions()}, "the dry run reports the plan"


@pytest.mark.parametrize("dry_run", [False, True])
def test_the_answers_of_applies_prunes_and_inventory_writes_are_not_decoded(dry_run: bool) -> None:
    """Nobody reads them: a change's outcome is whether the write succeeded."""
    plan = make_plan([[planned("ConfigMap/shop/a", C), planned("Deployment.apps/shop/web", CF)]],
                     prune=[pruned("Secret/shop/old")], inventory=recorded(INVENTORY, "Deployment.apps/shop/web",
                                                                           "Secret/shop/old"))
    kube = seeded(plan)
    changes = execute(kube, plan, dry_run=dry_run)

    assert changes.ok and actions(changes) == {"ConfigMap/shop/a": "created", "Deployment/shop/web": "configured",
                                               "Secret/shop/old": "deleted"}
    assert (path("ConfigMap/shop/a") in kube.store) is not dry_run
    assert (path("Secret/shop/old") in kube.store) is dry_run
    writes = kube.writes()
    assert {r.path for r in writes} == {path("ConfigMap/shop/a"), path("Deployment.apps/shop/web"),
                                        path("Secret/shop/old"), PARENT}
    assert [(r.method, r.path) for r in writes if r.decoded] == []


# -- a failed step -----------------------------------------------------------------------------------

def test_failed_apply_step_stops_the_tasks_skips_the_rest_prunes_nothing() -> None:
    plan = make_plan([[planned("ConfigMap/shop/a", CF), planned("ConfigMap/shop/b", CF)],
                      [planned("Deployment.apps/shop/web", CF)]],
                     prune=[pruned("Secret/shop/old")],
                     inventory=recorded(INVENTORY, "ConfigMap/shop/a", "Deployment.apps/shop/web", "Secret/shop/old"))
    kube = seeded(plan)
    kube.fail("PATCH", path("ConfigMap/shop/b"), Invalid("ConfigMap/shop/b", "data: Invalid value", status=422))
    changes = execute(kube, plan, dry_run=False)

    assert actions(changes) == {"ConfigMap/shop/a": "configured", "ConfigMap/shop/b": "failed",
                                "Deployment/shop/web": "skipped", "Secret/shop/old": "skipped"}
    assert not changes.ok and "nothing was pruned" in (changes.error or "")
    assert [r for r in kube.requests if r.method == "DELETE"] == []
    assert path("Secret/shop/old") in kube.store
    assert [r.path for r in kube.writes()] == [path("ConfigMap/shop/a"), path("ConfigMap/shop/b")], \
        "neither the next step nor the inventory narrowed"


def test_failed_prune_stops_the_later_prune_steps_and_keeps_the_inventory_wide() -> None:
    plan = make_plan([[planned("ConfigMap/shop/a", U)]],
                     prune=[pruned("Deployment.apps/shop/web"), pruned("Secret/shop/old")],
                     inventory=recorded(INVENTORY, "ConfigMap/shop/a", "Deployment.apps/shop/web", "Secret/shop/old"))
    assert [type(t).__name__ for t in plan.tasks] == ["ApplyStep", "PruneStep", "PruneStep", "WriteInventory"]
    kube = seeded(plan)
    kube.fail("DELETE", path("Deployment.apps/shop/web"), Forbidden("Deployment/shop/web", "forbidden", status=403))
    changes = execute(kube, plan, dry_run=False)

    assert actions(changes) == {"ConfigMap/shop/a": "unchanged", "Deployment/shop/web": "failed",
                                "Secret/shop/old": "skipped"}
    assert changes.error == "1 object(s) could not be pruned"
    assert [r.path for r in kube.writes()] == [path("Deployment.apps/shop/web")]
    assert path("Secret/shop/old") in kube.store


def test_a_blocked_object_the_server_rejects_stops_the_sync_before_it_is_written() -> None:
    plan = make_plan([[planned("Namespace/other", C)], [planned("ConfigMap/other/a", C, blocked_by=["Namespace/other"])]],
                     inventory=recorded(INVENTORY, "Namespace/other", "ConfigMap/other/a"))
    kube = seeded(plan)
    kube.fail("PATCH", path("ConfigMap/other/a"), Invalid("ConfigMap/other/a", "bad", status=422), dry_run=True)
    changes = execute(kube, plan, dry_run=False)

    assert actions(changes) == {"Namespace/other": "created", "ConfigMap/other/a": "failed"}
    assert [(r.path, r.dry_run) for r in kube.writes()] == [(path("Namespace/other"), False),
                                                           (path("ConfigMap/other/a"), True)]


# -- the bootstrap: the app's namespace, before the lock ----------------------------------------------

def first_plan() -> Plan:
    return make_plan([[planned("Namespace/shop", C)], [planned("ConfigMap/shop/a", C, blocked_by=["Namespace/shop"])]])


def plan_under_the_lock() -> Plan:
    """What the sync plans again once the namespace exists."""
    return make_plan([[planned("Namespace/shop", U)], [planned("ConfigMap/shop/a", C)]])


def test_bootstrap_creates_the_apps_namespace_for_real_and_says_how_to_undo_it() -> None:
    kube = FakeKube()
    bootstrap = execute_bootstrap(kube, first_plan())

    assert [(r.method, r.path, r.dry_run) for r in kube.requests] == [("PATCH", path("Namespace/shop"), False)]
    created = kube.store[path("Namespace/shop")]
    assert [str(c.ref) for c in bootstrap.created] == ["Namespace/shop"]
    assert [(str(u.ref), u.uid) for u in bootstrap.undo] == [("Namespace/shop", created["metadata"]["uid"])]

    undo_bootstrap(kube, bootstrap)
    assert path("Namespace/shop") not in kube.store
    delete = kube.requests[-1]
    assert (delete.method, delete.dry_run, delete.body["preconditions"]) == (
        "DELETE", False, {"uid": created["metadata"]["uid"]})


def test_undo_leaves_a_namespace_somebody_made_again_under_the_same_name() -> None:
    kube = FakeKube()
    bootstrap = execute_bootstrap(kube, first_plan())
    del kube.store[path("Namespace/shop")]
    kube.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "uid": "somebody-elses"}})
    undo_bootstrap(kube, bootstrap)
    assert kube.store[path("Namespace/shop")]["metadata"]["uid"] == "somebody-elses"


def test_no_bootstrap_without_a_new_namespace_of_the_app() -> None:
    kube = FakeKube()
    assert execute_bootstrap(kube, plan_under_the_lock()) == Bootstrap()
    assert kube.requests == []


def test_the_namespace_the_bootstrap_created_is_reported_created_once() -> None:
    kube = FakeKube()
    bootstrap = execute_bootstrap(kube, first_plan())
    kube.requests.clear()
    changes = execute(kube, plan_under_the_lock(), dry_run=False, bootstrap=bootstrap)

    assert [(str(c.ref), str(c.action)) for c in changes.changes] == [
        ("Namespace/shop", "created"), ("ConfigMap/shop/a", "created")]
    assert path("Namespace/shop") not in [r.path for r in kube.writes()], "not written again under the lock"


def test_the_bootstraps_namespace_is_reported_created_when_the_sync_stops_early() -> None:
    kube = FakeKube()
    bootstrap = execute_bootstrap(kube, first_plan())
    kube.fail("PATCH", PARENT, Forbidden("ConfigMap/shop/syncer-shop", "forbidden", status=403))
    changes = execute(kube, plan_under_the_lock(), dry_run=False, bootstrap=bootstrap)

    assert actions(changes) == {"Namespace/shop": "created", "ConfigMap/shop/a": "skipped"}
    assert "cannot record the inventory" in (changes.error or "")


# -- the lock ----------------------------------------------------------------------------------------

def two_prune_steps() -> Plan:
    return make_plan([[planned("ConfigMap/shop/a", CF)]],
                     prune=[pruned("Deployment.apps/shop/web"), pruned("Secret/shop/old")],
                     inventory=recorded(INVENTORY, "ConfigMap/shop/a", "Deployment.apps/shop/web", "Secret/shop/old"))


def test_the_lock_is_confirmed_before_every_prune_step() -> None:
    plan = two_prune_steps()
    kube = seeded(plan)
    changes = execute(kube, plan, dry_run=False, confirm_lock=lambda: kube.events.append("confirm"))

    assert changes.ok, changes.error
    assert [e for e in kube.events if e == "confirm" or e.startswith("DELETE")] == [
        "confirm", f"DELETE {path('Deployment.apps/shop/web')}", "confirm", f"DELETE {path('Secret/shop/old')}"]


def test_a_lost_lock_stops_before_the_prune() -> None:
    plan = two_prune_steps()
    kube = seeded(plan)

    def lost() -> None:
        raise LockLost("app shop: lost the lock")

    with pytest.raises(LockLost):
        execute(kube, plan, dry_run=False, confirm_lock=lost)
    assert [r for r in kube.requests if r.method == "DELETE"] == []


# -- the update fallback -----------------------------------------------------------------------------

@pytest.mark.parametrize("dry_run", [False, True], ids=["sync", "dry-run"])
def test_the_update_fallback_object_is_updated_not_applied(dry_run: bool) -> None:
    apiservice = "APIService.apiregistration.k8s.io/v1.metrics"
    plan = make_plan([[planned(apiservice, CF, update_instead="kubernetes#89264"), planned("ConfigMap/shop/a", CF)]],
                     inventory=recorded(INVENTORY, apiservice, "ConfigMap/shop/a"))
    kube = seeded(plan)
    changes = execute(kube, plan, dry_run=dry_run)

    assert changes.ok, changes.error
    assert [(r.method, r.dry_run) for r in kube.requests if r.path == path(apiservice)] == [
        ("GET", False), ("PUT", dry_run)]
    assert [(r.method, r.dry_run) for r in kube.requests if r.path == path("ConfigMap/shop/a")] == [
        ("PATCH", dry_run)], "the others are server-side applied"


def test_a_new_update_fallback_object_is_created_with_post() -> None:
    apiservice = "APIService.apiregistration.k8s.io/v1.metrics"
    plan = make_plan([[planned(apiservice, C, update_instead="kubernetes#89264")]],
                     inventory=recorded(INVENTORY, apiservice))
    kube = seeded(plan)
    assert execute(kube, plan, dry_run=False).ok
    assert [r.method for r in kube.requests if r.path.startswith("/apis/apiregistration.k8s.io")] == ["GET", "POST"]
    assert path(apiservice) in kube.store


def test_a_write_error_keeps_the_servers_answer() -> None:
    plan = make_plan([[planned("ConfigMap/shop/a", CF)]], inventory=recorded(INVENTORY, "ConfigMap/shop/a"))
    kube = seeded(plan)
    kube.fail("PATCH", path("ConfigMap/shop/a"), ClusterError("ConfigMap/shop/a", "etcd timeout", status=500))
    changes = execute(kube, plan, dry_run=False)
    assert [(str(c.ref), c.action, c.message) for c in changes.changes] == [
        ("ConfigMap/shop/a", Action.FAILED, "etcd timeout")]


# -- applied, but not healthy in time ------------------------------------------------------------------

def test_a_sync_that_applied_everything_but_timed_out_on_health_is_applied_not_ok() -> None:
    """What `status.syncer.dev/applied-revision` and an App's lastAppliedRevision record: the
    revision is in the cluster even when --wait gave up on its health (issue 20, report 3)."""
    from syncer.apply.status import AppStatus

    plan = make_plan([[planned("Deployment.apps/shop/web", C)]], wait=True, timeout=0.1)
    kube = seeded(plan)
    changes = execute(kube, plan, dry_run=False)
    assert not changes.ok and "not healthy after" in (changes.error or "")
    assert changes.applied and not changes.stopped
    assert AppStatus.of(changes).applied_revision == "r1"

    failed = make_plan([[planned("ConfigMap/shop/a", CF)]])
    kube = seeded(failed)
    kube.fail("PATCH", path("ConfigMap/shop/a"), Invalid("ConfigMap/shop/a", "data: Invalid value", status=422))
    stopped = execute(kube, failed, dry_run=False)
    assert stopped.stopped and not stopped.applied
    assert AppStatus.of(stopped).applied_revision == ""
