"""Never lose data: one regression test per report of issue 10, each checking the objects in
the cluster afterwards (existence, UID, resourceVersion), not the requests syncer sent."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kubernetes import client

from syncer.apply import ChangeSet, plan_sync, sync
from syncer.apply.applyset import PART_OF_LABEL, Inventory
from syncer.apply.status import read_app_status
from syncer.cli import cli
from syncer.errors import LockLost, NotFound, ValidationFailed
from syncer.kube import Kube
from syncer.model import Action, ObjectRef
from tests.conftest import ClusterAccess
from tests.e2e.apps import configmap, core_event, events_event, options, render_app, write_app
from tests.e2e.versions import skip_unless_served

pytestmark = pytest.mark.oldest

WRITE_VERBS = ("apply", "create", "update", "patch", "delete")

Snapshot = dict[tuple[str, str | None, str], tuple[str, str]]


def quiet_snapshot(kube: Kube, namespaces: list[str]) -> Snapshot:
    """A snapshot once the controllers have stopped changing things (equal for a second)."""
    last, same = snapshot(kube, namespaces), 0
    for _ in range(100):
        time.sleep(0.25)
        current = snapshot(kube, namespaces)
        same = same + 1 if current == last else 0
        if same == 4:
            return current
        last = current
    raise AssertionError("the test namespaces never settled")


def snapshot(kube: Kube, namespaces: list[str]) -> Snapshot:
    """(kind, namespace, name) -> (uid, resourceVersion) of every object in the namespaces and
    of the Namespaces themselves. Only these: other tests' namespaces finish deleting at any
    time, and a snapshot of every Namespace saw that as a change."""
    found: Snapshot = {}
    resources, _ = kube.listable_resources()
    for resource in resources:
        if resource.namespaced:
            for namespace in namespaces:
                try:
                    listed = kube.list(resource, namespace=namespace)
                except NotFound:
                    # The kind stopped being served after discovery listed it (another test's
                    # CRD finished deleting): it has no objects left.
                    continue
                for obj in listed:
                    meta = obj["metadata"]
                    found[(resource.group_kind, namespace, meta["name"])] = (meta["uid"], meta["resourceVersion"])
        elif resource.kind == "Namespace" and not resource.group:
            for name in namespaces:
                obj = kube.get(resource, name)
                if obj is not None:
                    meta = obj["metadata"]
                    found[(resource.group_kind, None, name)] = (meta["uid"], meta["resourceVersion"])
    return found


def actions(changes: ChangeSet) -> dict[str, str]:
    return {str(c.ref): str(c.action) for c in changes.changes}


def cm(name: str, namespace: str | None = None, annotations: str = "", **data: str) -> str:
    where = f"\n  namespace: {namespace}" if namespace else ""
    notes = f"\n  annotations: {annotations}" if annotations else ""
    items = "".join(f"\n  {k}: {v!r}" for k, v in data.items()) or " {}"
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}{where}{notes}\ndata:{items}\n"


def namespace_doc(name: str) -> str:
    return f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"


def writes(kube: Kube) -> dict[str, int]:
    return {verb: n for verb, n in kube.stats.by_verb.items() if verb in WRITE_VERBS and n}


def assert_settled(kube: Kube, app: Path, *, name: str, namespace: str) -> None:
    """diff exits 0 and a resync sends no write."""
    manifests = render_app(app, namespace=namespace)
    assert not plan_sync(kube, manifests, options=options(name, namespace), revision="r").has_changes
    kube.stats.by_verb.clear()
    again = sync(kube, manifests, options=options(name, namespace), revision="r")
    assert again.ok, again.error
    assert writes(kube) == {}, f"a settled resync wrote: {again.to_dict()}"


@pytest.fixture
def extra_namespace(namespace: str, kube_api: client.ApiClient) -> Iterator[str]:
    """A second namespace name for objects an app creates itself; removed after the test."""
    name = f"{namespace}-x"
    yield name
    try:
        client.CoreV1Api(kube_api).delete_namespace(name)
    except client.ApiException:
        pass


SECRET = """
apiVersion: v1
kind: Secret
metadata:
  name: token
  annotations: {{syncer.dev/recreate: "true"}}
type: {type}
stringData: {{key: value}}
"""


# -- 1. dry means dry ---------------------------------------------------------------------------

def test_dry_run_and_diff_write_nothing_on_any_write_path(
    tmp_path: Path, cluster: ClusterAccess, kube: Kube, namespace: str, extra_namespace: str,
) -> None:
    app = write_app(tmp_path / "app", {
        "a.yaml": cm("a", v="1"), "gone.yaml": cm("gone"), "secret.yaml": SECRET.format(type="Opaque"),
    })
    first = sync(kube, render_app(app, namespace=namespace), options=options("dry", namespace), revision="r1")
    assert first.ok, first.error
    # every write path at once: configure, prune, recreate, a new namespace with an object in it
    write_app(app, {"a.yaml": cm("a", v="2"), "secret.yaml": SECRET.format(type="example.com/token"),
                    "ns.yaml": namespace_doc(extra_namespace), "in.yaml": cm("inside", extra_namespace)})
    manifests = render_app(app, namespace=namespace)
    before = quiet_snapshot(kube, [namespace, extra_namespace])

    plan = plan_sync(kube, manifests, options=options("dry", namespace), revision="r2")
    assert dict(plan.decisions())[next(r for r in plan.objects if r.kind == "Secret")] is Action.RECREATED
    dry = sync(kube, manifests, options=options("dry", namespace, dry_run=True), revision="r2")
    args = ["sync", "--dry-run", "--repo", str(app), "--name", "dry", "--namespace", namespace,
            "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert CliRunner().invoke(cli, ["diff", *args[2:]]).exit_code == 1

    assert snapshot(kube, [namespace, extra_namespace]) == before, "a dry run or a diff changed the cluster"
    assert actions(dry)[f"ConfigMap/{namespace}/gone"] == "deleted"
    assert actions(dry)[f"Secret/{namespace}/token"] == "recreated"
    assert actions(dry) == {str(ref): str(action) for ref, action in plan.decisions()}, "dry run follows the plan"


# -- 2. a Namespace or CRD that still holds what Git wants is kept ------------------------------------

def test_namespace_removed_from_git_is_kept_while_git_has_objects_in_it(
    tmp_path: Path, kube: Kube, namespace: str, extra_namespace: str, kube_api: client.ApiClient,
) -> None:
    app = write_app(tmp_path / "app", {"ns.yaml": namespace_doc(extra_namespace),
                                        "cm.yaml": cm("stays", extra_namespace, v="1")})
    assert sync(kube, render_app(app, namespace=namespace), options=options("nsk", namespace), revision="r1").ok
    uid = configmap(kube_api, extra_namespace, "stays").metadata.uid
    write_app(app, {"cm.yaml": cm("stays", extra_namespace, v="1")})
    changes = sync(kube, render_app(app, namespace=namespace), options=options("nsk", namespace), revision="r2")
    assert changes.ok, changes.error
    kept = next(c for c in changes.changes if c.ref.kind == "Namespace")
    assert (kept.action, kept.reason) == (Action.KEPT, "desired-inside") and "stays" in kept.message
    assert client.CoreV1Api(kube_api).read_namespace(extra_namespace).status.phase == "Active"
    assert configmap(kube_api, extra_namespace, "stays").metadata.uid == uid
    assert_settled(kube, app, name="nsk", namespace=namespace)


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{kind: Widget, plural: widgets, singular: widget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}
"""


def widget(group: str, name: str, namespace: str | None = None) -> str:
    where = f", namespace: {namespace}" if namespace else ""
    return f"apiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: {name}{where}}}\nspec: {{size: 1}}\n"


@pytest.fixture
def crd_group(kube_api: client.ApiClient) -> Iterator[str]:
    group = f"s{secrets.token_hex(3)}.example.com"
    yield group
    try:
        client.ApiextensionsV1Api(kube_api).delete_custom_resource_definition(f"widgets.{group}")
    except client.ApiException:
        pass


def test_crd_removed_from_git_is_kept_while_git_has_its_custom_resources(
    tmp_path: Path, kube: Kube, namespace: str, crd_group: str, kube_api: client.ApiClient,
) -> None:
    app = write_app(tmp_path / "app", {"crd.yaml": CRD.format(group=crd_group), "w.yaml": widget(crd_group, "w1")})
    assert sync(kube, render_app(app, namespace=namespace), options=options("crdk", namespace), revision="r1").ok
    write_app(app, {"w.yaml": widget(crd_group, "w1")})
    changes = sync(kube, render_app(app, namespace=namespace), options=options("crdk", namespace), revision="r2")
    assert changes.ok, changes.error
    kept = next(c for c in changes.changes if c.ref.kind == "CustomResourceDefinition")
    assert (kept.action, kept.reason) == (Action.KEPT, "desired-inside")
    custom = client.CustomObjectsApi(kube_api)
    assert custom.get_namespaced_custom_object(crd_group, "v1", namespace, "widgets", "w1")["spec"] == {"size": 1}
    assert_settled(kube, app, name="crdk", namespace=namespace)


# -- 3. an object served under two API groups is never pruned through the other -------------------------

INGRESS_OLD = """
apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: web}
spec:
  backend: {serviceName: web, servicePort: 80}
"""
INGRESS_NEW = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
"""


MOVES = [
    # Kubernetes 1.20 serves every Ingress under both groups (1.22 and later only the new one).
    pytest.param(("extensions/v1beta1",), lambda namespace: INGRESS_OLD, lambda namespace: INGRESS_NEW,
                 lambda api, namespace: client.NetworkingV1Api(api).read_namespaced_ingress("web", namespace),
                 "Ingress.networking.k8s.io", id="Ingress"),
    # Every supported version serves every Event under the core group and events.k8s.io.
    pytest.param((), lambda namespace: core_event("web", namespace), lambda namespace: events_event("web", namespace),
                 lambda api, namespace: client.CoreV1Api(api).read_namespaced_event("web", namespace),
                 "Event.events.k8s.io", id="Event"),
]


@pytest.mark.parametrize(("needs", "old", "new", "read", "recorded"), MOVES)
def test_moving_an_object_to_another_api_group_keeps_it(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient, served_api_versions: frozenset[str],
    needs: tuple[str, ...], old: Callable[[str], str], new: Callable[[str], str],
    read: Callable[[client.ApiClient, str], Any], recorded: str,
) -> None:
    skip_unless_served(served_api_versions, *needs)
    app = write_app(tmp_path / "app", {"web.yaml": old(namespace)})
    assert sync(kube, render_app(app, namespace=namespace), options=options("move", namespace), revision="r1").ok
    uid = read(kube_api, namespace).metadata.uid
    write_app(app, {"web.yaml": new(namespace)})
    changes = sync(kube, render_app(app, namespace=namespace), options=options("move", namespace), revision="r2")
    assert changes.ok, changes.error
    assert read(kube_api, namespace).metadata.uid == uid, "the object itself was pruned"
    assert not any(c.action is Action.DELETED for c in changes.changes)
    parent = configmap(kube_api, namespace, "syncer-move")
    assert parent.metadata.annotations["applyset.kubernetes.io/contains-group-kinds"] == recorded
    assert_settled(kube, app, name="move", namespace=namespace)


# -- 4. two apps never share, steal or prune each other's objects ---------------------------------------

def test_an_app_cannot_take_over_or_prune_another_apps_object(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient,
) -> None:
    app_a = write_app(tmp_path / "a", {"shared.yaml": cm("shared", owner="a")})
    app_b = write_app(tmp_path / "b", {"shared.yaml": cm("shared", owner="b"), "own.yaml": cm("b-own")})
    assert sync(kube, render_app(app_a, namespace=namespace), options=options("a", namespace), revision="r1").ok
    before = configmap(kube_api, namespace, "shared")

    with pytest.raises(ValidationFailed, match="belongs to app a") as refused:
        sync(kube, render_app(app_b, namespace=namespace), options=options("b", namespace), revision="r1")
    assert "syncer.dev/adopt" in str(refused.value)
    after = configmap(kube_api, namespace, "shared")
    assert after.metadata.resource_version == before.metadata.resource_version
    assert configmap(kube_api, namespace, "b-own") is None, "a failed validation writes nothing"

    # the explicit opt-in moves it, and only then does the first app learn it lost it
    write_app(app_b, {"shared.yaml": cm("shared", annotations="{syncer.dev/adopt: 'true'}", owner="b")})
    assert sync(kube, render_app(app_b, namespace=namespace), options=options("b", namespace), revision="r2").ok
    adopted = configmap(kube_api, namespace, "shared")
    assert adopted.metadata.uid == before.metadata.uid and adopted.data == {"owner": "b"}
    b_id = Inventory.for_app(app="b", namespace=namespace).id
    assert adopted.metadata.labels[PART_OF_LABEL] == b_id
    with pytest.raises(ValidationFailed, match="belongs to app b"):
        sync(kube, render_app(app_a, namespace=namespace), options=options("a", namespace), revision="r2")
    # the first app dropping it from Git does not delete what is now the second app's
    write_app(app_a, {"other.yaml": cm("a-other")})
    assert sync(kube, render_app(app_a, namespace=namespace), options=options("a", namespace), revision="r3").ok
    assert configmap(kube_api, namespace, "shared").metadata.uid == before.metadata.uid


def test_an_app_cannot_declare_an_applyset_parent(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient,
) -> None:
    app_a = write_app(tmp_path / "a", {"x.yaml": cm("x")})
    assert sync(kube, render_app(app_a, namespace=namespace), options=options("a", namespace), revision="r1").ok
    parent = configmap(kube_api, namespace, "syncer-a")
    thief = write_app(tmp_path / "b", {"p.yaml": cm("syncer-a", annotations="{applyset.kubernetes.io/contains-group-kinds: ''}")})
    with pytest.raises(ValidationFailed, match="ApplySet parent"):
        sync(kube, render_app(thief, namespace=namespace), options=options("b", namespace), revision="r1")
    assert configmap(kube_api, namespace, "syncer-a").metadata.resource_version == parent.metadata.resource_version


# -- 5. an owned object is foreign unless its owner is the app's ----------------------------------------

def test_namespace_holding_an_object_owned_from_outside_is_kept(
    tmp_path: Path, kube: Kube, namespace: str, extra_namespace: str, kube_api: client.ApiClient,
) -> None:
    app = write_app(tmp_path / "app", {"ns.yaml": namespace_doc(extra_namespace), "home.yaml": cm("home")})
    assert sync(kube, render_app(app, namespace=namespace), options=options("own", namespace), revision="r1").ok
    rbac = client.RbacAuthorizationV1Api(kube_api)
    owner = rbac.create_cluster_role({"metadata": {"name": f"{extra_namespace}-owner"}, "rules": []})
    try:
        client.CoreV1Api(kube_api).create_namespaced_config_map(extra_namespace, {"metadata": {
            "name": "owned-elsewhere", "ownerReferences": [{"apiVersion": "rbac.authorization.k8s.io/v1",
                                                            "kind": "ClusterRole", "name": owner.metadata.name,
                                                            "uid": owner.metadata.uid}]}})
        write_app(app, {"home.yaml": cm("home")})
        changes = sync(kube, render_app(app, namespace=namespace), options=options("own", namespace), revision="r2")
        kept = next(c for c in changes.changes if c.ref.kind == "Namespace")
        assert (kept.action, kept.reason) == (Action.KEPT, "foreign-inside") and "owned-elsewhere" in kept.message
        assert configmap(kube_api, extra_namespace, "owned-elsewhere") is not None
        assert client.CoreV1Api(kube_api).read_namespace(extra_namespace).status.phase == "Active"
        assert_settled(kube, app, name="own", namespace=namespace)
    finally:
        rbac.delete_cluster_role(owner.metadata.name)


def test_namespace_holding_only_the_apps_own_workload_is_pruned(
    tmp_path: Path, kube: Kube, namespace: str, extra_namespace: str, kube_api: client.ApiClient,
) -> None:
    """The other side of the owner rule: a ReplicaSet the app's Deployment made is the app's."""
    app = write_app(tmp_path / "app", {"ns.yaml": namespace_doc(extra_namespace), "home.yaml": cm("home"),
                                        "d.yaml": DEPLOYMENT.format(namespace=extra_namespace)})
    assert sync(kube, render_app(app, namespace=namespace), options=options("rs", namespace), revision="r1").ok
    apps = client.AppsV1Api(kube_api)
    for _ in range(100):
        if apps.list_namespaced_replica_set(extra_namespace).items:
            break
        time.sleep(0.1)
    assert apps.list_namespaced_replica_set(extra_namespace).items, "the controller made no ReplicaSet"
    write_app(app, {"home.yaml": cm("home")})
    confirmed = frozenset({ObjectRef(group="", kind="Namespace", namespace=None, name=extra_namespace)})
    changes = sync(kube, render_app(app, namespace=namespace), options=options("rs", namespace, confirm_prune=confirmed),
                   revision="r2")
    assert actions(changes)[f"Namespace/{extra_namespace}"] == "deleted", changes.to_dict()
    assert client.CoreV1Api(kube_api).read_namespace(extra_namespace).metadata.deletion_timestamp is not None


# -- 6. a sync that lost its lock stops writing ------------------------------------------------------------

def test_a_sync_that_lost_its_lock_makes_no_further_write(
    tmp_path: Path, cluster: ClusterAccess, kube: Kube, namespace: str, kube_api: client.ApiClient,
) -> None:
    """The whole process of the first sync is paused (SIGSTOP) past its lease; a second sync
    runs meanwhile; when the first resumes it must stop: no write, above all no prune."""
    waves = {f"w{wave}-{i}.yaml": cm(f"w{wave}-{i}", annotations=f"{{syncer.dev/sync-wave: '{wave}'}}", v="old")
             for wave in range(6) for i in range(15)}
    app = write_app(tmp_path / "app", {**waves, "doomed.yaml": cm("doomed")})
    assert sync(kube, render_app(app, namespace=namespace), options=options("paused", namespace), revision="r1").ok
    doomed_uid = configmap(kube_api, namespace, "doomed").metadata.uid
    newer = {name: text.replace("'old'", "'newer'") for name, text in waves.items()}
    first_files = {name: text.replace("'old'", "'first'") for name, text in waves.items()}
    leases = client.CoordinationV1Api(kube_api)

    stopped_mid_sync = False
    for _ in range(3):
        write_app(app, first_files)  # drops "doomed": the first sync would prune it
        first = subprocess.Popen(
            [sys.executable, "-m", "syncer", "sync", "--repo", str(app), "--name", "paused", "--namespace", namespace,
             "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context, "--lock-duration", "3",
             "--request-timeout", "3", "--concurrency", "1"],  # taken over after 3 s + its 3 s write bound
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while first.poll() is None and not leases.list_namespaced_lease(namespace).items:
            time.sleep(0.005)
        os.kill(first.pid, signal.SIGSTOP)
        if first.poll() is None and leases.list_namespaced_lease(namespace).items:
            stopped_mid_sync = True
            break
        os.kill(first.pid, signal.SIGCONT)
        first.communicate()
    assert stopped_mid_sync, "could not pause the first sync while it held its lock"
    try:
        time.sleep(4)  # the first sync's lease expires while it is paused (taken over 6 s after)
        write_app(app, {**newer, "doomed.yaml": cm("doomed")})
        second = sync(kube, render_app(app, namespace=namespace),
                      options=options("paused", namespace, lock_timeout=20), revision="r3")
        assert second.ok, second.error
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 2, stderr
    assert "lost" in stderr and "Lease" in stderr, stderr
    assert configmap(kube_api, namespace, "doomed").metadata.uid == doomed_uid, "the paused sync pruned"
    values = {configmap(kube_api, namespace, name[:-5]).data["v"] for name in waves}
    assert values == {"newer"}, f"the paused sync undid the newer sync's work: {stderr}"


def test_a_sync_whose_lock_is_taken_over_stops_before_the_next_write(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient,
) -> None:
    app = write_app(tmp_path / "app", {"a.yaml": cm("a"), "doomed.yaml": cm("doomed"),
                                        "late.yaml": cm("late", annotations="{syncer.dev/sync-wave: '1'}")})
    assert sync(kube, render_app(app, namespace=namespace), options=options("taken", namespace), revision="r1").ok
    write_app(app, {"a.yaml": cm("a", v="2"), "late.yaml": cm("late", annotations="{syncer.dev/sync-wave: '1'}", v="2")})
    leases = client.CoordinationV1Api(kube_api)

    def take_over(change: object) -> None:
        lease = leases.read_namespaced_lease("syncer-taken", namespace)
        lease.spec.holder_identity = "another-sync"
        leases.replace_namespaced_lease("syncer-taken", namespace, lease)
        time.sleep(1.5)  # the holder's renewal (every duration/3) finds the Lease taken

    with pytest.raises(LockLost, match="lost Lease"):
        sync(kube, render_app(app, namespace=namespace), options=options("taken", namespace, lock_duration=3),
             revision="r2", report=take_over)
    assert not configmap(kube_api, namespace, "late").data, "a write after the lock was lost"
    assert configmap(kube_api, namespace, "doomed") is not None, "a prune after the lock was lost"
    assert leases.read_namespaced_lease("syncer-taken", namespace).spec.holder_identity == "another-sync"


# -- 7. kept and terminating are settled ----------------------------------------------------------------

def test_an_object_held_by_a_finalizer_is_deleted_once_and_then_settled(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient,
) -> None:
    app = write_app(tmp_path / "app", {"a.yaml": cm("a"), "held.yaml": cm("held")})
    assert sync(kube, render_app(app, namespace=namespace), options=options("fin", namespace), revision="r1").ok
    core = client.CoreV1Api(kube_api)
    core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": ["example.com/hold"]}})
    try:
        write_app(app, {"a.yaml": cm("a")})
        first = sync(kube, render_app(app, namespace=namespace), options=options("fin", namespace), revision="r2")
        assert actions(first)[f"ConfigMap/{namespace}/held"] == "deleted"
        held = configmap(kube_api, namespace, "held")
        assert held is not None and held.metadata.deletion_timestamp is not None
        plan = plan_sync(kube, render_app(app, namespace=namespace), options=options("fin", namespace), revision="r2")
        decision = next(d for d in plan.prune if d.ref.name == "held")
        assert (decision.action, decision.reason) == (Action.KEPT, "terminating")
        assert_settled(kube, app, name="fin", namespace=namespace)
        assert not client.CoordinationV1Api(kube_api).list_namespaced_lease(namespace).items
    finally:
        core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})


def test_a_kept_namespace_with_foreign_objects_is_settled(
    tmp_path: Path, kube: Kube, namespace: str, extra_namespace: str, kube_api: client.ApiClient,
) -> None:
    app = write_app(tmp_path / "app", {"ns.yaml": namespace_doc(extra_namespace), "home.yaml": cm("home")})
    assert sync(kube, render_app(app, namespace=namespace), options=options("kf", namespace), revision="r1").ok
    client.CoreV1Api(kube_api).create_namespaced_config_map(extra_namespace, {"metadata": {"name": "foreign"}})
    write_app(app, {"home.yaml": cm("home")})
    changes = sync(kube, render_app(app, namespace=namespace), options=options("kf", namespace), revision="r2")
    assert actions(changes)[f"Namespace/{extra_namespace}"] == "kept"
    before = quiet_snapshot(kube, [namespace, extra_namespace])
    assert_settled(kube, app, name="kf", namespace=namespace)
    assert snapshot(kube, [namespace, extra_namespace]) == before


# -- 8. an object may wait for a namespace and a CRD of the same sync ---------------------------------------

def test_first_install_of_a_crd_with_a_resource_in_a_namespace_the_sync_creates(
    tmp_path: Path, kube: Kube, namespace: str, extra_namespace: str, crd_group: str, kube_api: client.ApiClient,
) -> None:
    app = write_app(tmp_path / "app", {
        "a-widget.yaml": widget(crd_group, "w1", extra_namespace),
        "b-crd.yaml": CRD.format(group=crd_group),
        "c-ns.yaml": namespace_doc(extra_namespace),
    })
    changes = sync(kube, render_app(app, namespace=namespace), options=options("both", namespace), revision="r1")
    assert changes.ok, changes.error
    custom = client.CustomObjectsApi(kube_api)
    assert custom.get_namespaced_custom_object(crd_group, "v1", extra_namespace, "widgets", "w1")["spec"] == {"size": 1}
    assert_settled(kube, app, name="both", namespace=namespace)


# -- 9. diff shows a recreate as a recreate, against what the re-created object will be ----------------------

JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations: {annotations}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: m, image: "{image}"}}]
"""


def test_diff_shows_an_immutable_change_as_the_recreate_sync_does(
    tmp_path: Path, cluster: ClusterAccess, kube: Kube, namespace: str,
) -> None:
    recreate = "{syncer.dev/recreate: 'true'}"
    app = write_app(tmp_path / "app", {"job.yaml": JOB.format(annotations=recreate, image="busybox:1")})
    assert sync(kube, render_app(app, namespace=namespace), options=options("rc", namespace), revision="r1").ok
    write_app(app, {"job.yaml": JOB.format(annotations=recreate, image="busybox:2")})
    result = CliRunner().invoke(cli, [
        "diff", "--repo", str(app), "--name", "rc", "--namespace", namespace,
        "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context, "-o", "json"])
    assert result.exit_code == 1, result.output
    job = next(o for o in json.loads(result.stdout)["changes"] if o["kind"] == "Job")
    assert job["action"] == "recreated"
    removed = [line for line in job["diff"].splitlines() if line.startswith("-") and not line.startswith("---")]
    assert removed and all("busybox:1" in line for line in removed), job["diff"]
    assert "busybox:2" in job["diff"]
    changes = sync(kube, render_app(app, namespace=namespace), options=options("rc", namespace), revision="r2")
    assert actions(changes)[f"Job/{namespace}/migrate"] == "recreated"


# -- 10. --wait judges every object of the app ---------------------------------------------------------------

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {namespace}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: nginx}}]
"""


def test_a_rerun_of_wait_fails_while_the_app_is_still_unhealthy(tmp_path: Path, kube: Kube, namespace: str) -> None:
    """No scheduler runs on the test control plane: the Deployment's Pod never becomes ready."""
    app = write_app(tmp_path / "app", {"d.yaml": DEPLOYMENT.format(namespace=namespace)})
    first = sync(kube, render_app(app, namespace=namespace),
                 options=options("wt", namespace, wait=True, timeout=3), revision="r1")
    assert not first.ok and first.error is not None and "Deployment" in first.error
    again = sync(kube, render_app(app, namespace=namespace),
                 options=options("wt", namespace, wait=True, timeout=3), revision="r1")
    assert actions(again)[f"Deployment/{namespace}/web"] == "unchanged"
    assert not again.ok and again.error is not None and "not healthy" in again.error


# -- 11. a lost inventory is recovered from the members' labels ----------------------------------------------

def test_removed_objects_are_pruned_after_the_applyset_parent_was_deleted(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient,
) -> None:
    app = write_app(tmp_path / "app", {"a.yaml": cm("a"), "b.yaml": cm("b"),
                                        "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
                                                    "spec: {ports: [{port: 80}]}\n"})
    assert sync(kube, render_app(app, namespace=namespace), options=options("lost", namespace), revision="r1").ok
    client.CoreV1Api(kube_api).delete_namespaced_config_map("syncer-lost", namespace)
    write_app(app, {"a.yaml": cm("a")})
    changes = sync(kube, render_app(app, namespace=namespace), options=options("lost", namespace), revision="r2")
    assert changes.ok, changes.error
    assert any("recovered" in w for w in changes.warnings), changes.warnings
    assert configmap(kube_api, namespace, "b") is None
    with pytest.raises(client.ApiException):
        client.CoreV1Api(kube_api).read_namespaced_service("s", namespace)
    parent = configmap(kube_api, namespace, "syncer-lost")
    assert parent.metadata.annotations["applyset.kubernetes.io/contains-group-kinds"] == "ConfigMap"
    assert_settled(kube, app, name="lost", namespace=namespace)


# -- 12. the CLI records what the daemon records, failures included -----------------------------------------

def test_status_shows_a_cli_sync_that_failed_validation(
    tmp_path: Path, cluster: ClusterAccess, kube: Kube, namespace: str,
) -> None:
    app = write_app(tmp_path / "app", {"a.yaml": cm("a")})
    args = ["sync", "--repo", str(app), "--name", "st", "--namespace", namespace,
            "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert read_app_status(kube, app="st", namespace=namespace).result == "Succeeded"
    write_app(app, {"a.yaml": cm("a"), "bad.yaml": "apiVersion: v1\nkind: Nope\nmetadata: {name: x}\n"})
    assert CliRunner().invoke(cli, args).exit_code == 2
    status = read_app_status(kube, app="st", namespace=namespace)
    assert status is not None and status.result == "Failed" and f"Nope/{namespace}/x" in status.error
    shown = CliRunner().invoke(cli, ["status", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig),
                                     "--context", cluster.context, "-o", "json"])
    assert json.loads(shown.stdout)["items"][0]["result"] == "Failed"


def test_a_lock_whose_acquisition_outlasted_its_lease_is_not_held(
    kube: Kube, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found as a flake of the test above: the process was paused after the API server created
    its Lease but before the answer arrived. It counted the lease from the answer, so on resuming
    it wrote for a full lease duration over the newer sync's work. The lease counts from the
    request."""
    from syncer.apply.lock import AppLock

    create = Kube.create

    def create_then_pause(self: Kube, *args: object, **kwargs: object) -> object:
        created = create(self, *args, **kwargs)  # type: ignore[arg-type]
        time.sleep(3.5)  # paused: longer than the lease below
        return created

    monkeypatch.setattr(Kube, "create", create_then_pause)
    lock = AppLock(kube, app="paused-acquire", namespace=namespace, timeout=10, duration_seconds=3)
    lock.acquire()
    try:
        with pytest.raises(LockLost, match="last renewal was"):
            lock.ensure_held()
    finally:
        lock.release()
