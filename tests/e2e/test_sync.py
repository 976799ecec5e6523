"""`syncer sync` against a real API server: order, validation before writes, pruning and its
guard rails, conflicts, immutable fields, RBAC, and the per-app lock."""

from __future__ import annotations

import datetime
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kubernetes import client

from syncer.apply import ChangeSet, EmptySourceRefused, sync
from syncer.apply.lock import AppLock
from syncer.cli import cli
from syncer.errors import LockHeld, ValidationFailed
from syncer.kube import Kube
from tests.conftest import ClusterAccess
from tests.schema import assert_valid
from tests.e2e.apps import configmap, connect, eventually, grant_restricted, options, render_app, write_app



def actions(changes: ChangeSet) -> dict[str, str]:
    return {str(c.ref): c.action for c in changes.changes}


def cm(name: str, **data: str) -> str:
    items = "".join(f"\n  {k}: {v!r}" for k, v in data.items()) or " {}"
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:{items}\n"


def test_worst_file_order_syncs_crd_namespace_first(
    tmp_path: Path, kube: Kube, kube_api: client.ApiClient
) -> None:
    suffix = secrets.token_hex(3)
    ns, group = f"t-order-{suffix}", f"o{suffix}.example.com"
    app = write_app(tmp_path / "app", {
        "a-widget.yaml": f"""
            apiVersion: {group}/v1
            kind: Widget
            metadata: {{name: w1, namespace: {ns}}}
            spec: {{size: 3}}
            """,
        "b-deploy.yaml": f"""
            apiVersion: apps/v1
            kind: Deployment
            metadata: {{name: web, namespace: {ns}}}
            spec:
              replicas: 0
              selector: {{matchLabels: {{app: web}}}}
              template:
                metadata: {{labels: {{app: web}}}}
                spec:
                  containers:
                  - name: web
                    image: nginx
                    ports: [{{containerPort: 80}}]
            """,
        "c-crd.yaml": f"""
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
                schema:
                  openAPIV3Schema:
                    type: object
                    properties:
                      spec: {{type: object, properties: {{size: {{type: integer}}}}}}
            """,
        "z-namespace.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n",
    })
    try:
        changes = sync(kube, render_app(app, namespace=ns), options=options("order", ns), revision="r1")
        assert changes.ok, changes.error
        order = [str(c.ref) for c in changes.changes]
        assert order.index(f"CustomResourceDefinition/widgets.{group}") < order.index(f"Widget/{ns}/w1")
        assert order.index(f"Namespace/{ns}") < order.index(f"Deployment/{ns}/web")
        assert set(actions(changes).values()) == {"created"}
        widget = client.CustomObjectsApi(kube_api).get_namespaced_custom_object(group, "v1", ns, "widgets", "w1")
        assert widget["spec"] == {"size": 3}
        again = sync(kube, render_app(app, namespace=ns), options=options("order", ns), revision="r1")
        assert set(actions(again).values()) == {"unchanged"}
    finally:
        client.CoreV1Api(kube_api).delete_namespace(ns)
        client.ApiextensionsV1Api(kube_api).delete_custom_resource_definition(f"widgets.{group}")


def test_custom_resource_in_a_served_older_version_of_a_crd_of_the_same_sync(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient
) -> None:
    """The plan addresses a custom resource whose CRD is in the sync in the version its
    manifest declares, not the CRD's storage version: a server-side apply whose body's
    apiVersion differs from the URL's is refused (400, "Incorrect version specified in apply
    patch"). A version the CRD does not serve fails validation, before any write."""
    group = f"v{secrets.token_hex(3)}.example.com"
    schema = ("{openAPIV3Schema: {type: object, properties: "
              "{spec: {type: object, x-kubernetes-preserve-unknown-fields: true}}}}")
    crd = f"""
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {{name: widgets.{group}}}
        spec:
          group: {group}
          scope: Namespaced
          names: {{kind: Widget, plural: widgets}}
          versions:
          - {{name: v1beta1, served: true, storage: false, schema: {schema}}}
          - {{name: v1, served: true, storage: true, schema: {schema}}}
        """
    widget = "apiVersion: {group}/{version}\nkind: Widget\nmetadata: {{name: w1}}\nspec: {{size: {size}}}\n"
    try:
        app = write_app(tmp_path / "app",
                        {"crd.yaml": crd, "w.yaml": widget.format(group=group, version="v1beta1", size=3)})
        changes = sync(kube, render_app(app, namespace=namespace), options=options("versions", namespace), revision="r1")
        assert changes.ok, changes.error
        assert actions(changes)[f"Widget/{namespace}/w1"] == "created"
        stored = client.CustomObjectsApi(kube_api).get_namespaced_custom_object(group, "v1beta1", namespace,
                                                                               "widgets", "w1")
        assert stored["spec"] == {"size": 3}
        again = sync(kube, render_app(app, namespace=namespace), options=options("versions", namespace), revision="r1")
        assert set(actions(again).values()) == {"unchanged"}, again.to_dict()

        write_app(app, {"crd.yaml": crd, "w.yaml": widget.format(group=group, version="v2", size=4)})
        with pytest.raises(ValidationFailed, match="does not serve version v2"):
            sync(kube, render_app(app, namespace=namespace), options=options("versions", namespace), revision="r2")
        assert client.CustomObjectsApi(kube_api).get_namespaced_custom_object(
            group, "v1", namespace, "widgets", "w1")["metadata"]["resourceVersion"] == stored["metadata"][
            "resourceVersion"], "nothing was written"
    finally:
        try:
            client.ApiextensionsV1Api(kube_api).delete_custom_resource_definition(f"widgets.{group}")
        except client.ApiException:
            pass


def test_the_apps_new_namespace_is_deleted_again_when_the_plan_under_the_lock_fails(
    tmp_path: Path, kube: Kube, kube_api: client.ApiClient
) -> None:
    """The app's own namespace is created before the lock (the lock lives in it); what is in it
    can only be checked then, under the lock. When the server rejects it, the new, empty
    namespace is deleted again: nothing of the failed sync stays."""
    ns = f"t-undo-{secrets.token_hex(3)}"
    app = write_app(tmp_path / "app", {
        "ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n",
        "bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {'not a key!': x}\n",
    })
    core = client.CoreV1Api(kube_api)
    try:
        with pytest.raises(ValidationFailed, match="ConfigMap/.*/bad"):
            sync(kube, render_app(app, namespace=ns), options=options("undo", ns), revision="r1")
        try:
            left = core.read_namespace(ns)
        except client.ApiException as error:
            assert error.status == 404
        else:
            assert left.metadata.deletion_timestamp is not None, "the new namespace was left behind"
    finally:
        try:
            core.delete_namespace(ns)
        except client.ApiException:
            pass


def test_unchanged_objects_are_not_written(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient
) -> None:
    app = write_app(tmp_path / "app", {"cm.yaml": cm("settings", color="blue")})
    sync(kube, render_app(app, namespace=namespace), options=options("noop", namespace), revision="r1")
    before = configmap(kube_api, namespace, "settings").metadata.resource_version
    kube.stats.by_verb.clear()
    changes = sync(kube, render_app(app, namespace=namespace), options=options("noop", namespace), revision="r1")
    assert actions(changes) == {f"ConfigMap/{namespace}/settings": "unchanged"}
    assert configmap(kube_api, namespace, "settings").metadata.resource_version == before
    writes = {verb: n for verb, n in kube.stats.by_verb.items() if verb not in ("list", "get", "discovery")}
    assert writes == {}, "a no-op sync must send no write and no dry-run"


def test_a_deployment_whose_quantities_the_server_rewrote_is_resynced_without_a_dry_run(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient
) -> None:
    """The server stores `cpu: 1000m` as `1` and `memory: 1024Mi` as `1Gi`: compared as text
    the Deployment differed from Git on every resync and was dry-run (twice per App and commit
    in the App benchmark); as numbers it is unchanged."""
    app = write_app(tmp_path / "app", {"d.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          replicas: 0
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers:
              - name: web
                image: nginx:1.25
                resources:
                  limits: {cpu: 1000m, memory: 1024Mi}
                  requests: {cpu: "0.5", memory: 32Mi}
        """})
    sync(kube, render_app(app, namespace=namespace), options=options("qty", namespace), revision="r1")
    live = client.AppsV1Api(kube_api).read_namespaced_deployment("web", namespace)
    resources = live.spec.template.spec.containers[0].resources
    assert (resources.limits, resources.requests) == ({"cpu": "1", "memory": "1Gi"}, {"cpu": "500m", "memory": "32Mi"})
    # Not the resourceVersion: kube-controller-manager writes the Deployment's status meanwhile.
    before = (live.metadata.generation, [(f.manager, f.time) for f in live.metadata.managed_fields
                                         if f.manager == "syncer"])
    kube.stats.by_verb.clear()
    changes = sync(kube, render_app(app, namespace=namespace), options=options("qty", namespace), revision="r1")
    assert actions(changes) == {f"Deployment/{namespace}/web": "unchanged"}
    live = client.AppsV1Api(kube_api).read_namespaced_deployment("web", namespace)
    assert (live.metadata.generation, [(f.manager, f.time) for f in live.metadata.managed_fields
                                       if f.manager == "syncer"]) == before
    assert kube.stats.by_verb["dry-run"] == 0, dict(kube.stats.by_verb)
    write_app(app, {"d.yaml": (app / "d.yaml").read_text().replace("cpu: 1000m", "cpu: 1100m")})
    kube.stats.by_verb.clear()
    changes = sync(kube, render_app(app, namespace=namespace), options=options("qty", namespace), revision="r2")
    assert actions(changes) == {f"Deployment/{namespace}/web": "configured"}
    live = client.AppsV1Api(kube_api).read_namespaced_deployment("web", namespace)
    assert live.spec.template.spec.containers[0].resources.limits["cpu"] == "1100m"


def test_prune_removes_file_but_keeps_hand_made_object(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient
) -> None:
    app = write_app(tmp_path / "app", {"a.yaml": cm("keep"), "b.yaml": cm("drop")})
    sync(kube, render_app(app, namespace=namespace), options=options("prune", namespace), revision="r1")
    client.CoreV1Api(kube_api).create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="hand-made"), data={"x": "1"})
    )
    write_app(app, {"a.yaml": cm("keep")})
    changes = sync(kube, render_app(app, namespace=namespace), options=options("prune", namespace), revision="r2")
    assert changes.ok, changes.error
    assert actions(changes)[f"ConfigMap/{namespace}/drop"] == "deleted"
    assert configmap(kube_api, namespace, "drop") is None
    assert configmap(kube_api, namespace, "keep") is not None
    assert configmap(kube_api, namespace, "hand-made") is not None


def test_prune_disabled_annotation_and_no_prune_keep_objects(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient
) -> None:
    kept = cm("kept").replace("metadata:\n", "metadata:\n  annotations: {syncer.dev/prune: disabled}\n")
    app = write_app(tmp_path / "app", {"a.yaml": cm("a"), "b.yaml": cm("b"), "kept.yaml": kept})
    sync(kube, render_app(app, namespace=namespace), options=options("keep", namespace), revision="r1")
    write_app(app, {"a.yaml": cm("a")})
    changes = sync(kube, render_app(app, namespace=namespace), options=options("keep", namespace, prune=False),
                   revision="r2")
    assert configmap(kube_api, namespace, "b") is not None
    assert actions(changes).get(f"ConfigMap/{namespace}/b") == "skipped"
    changes = sync(kube, render_app(app, namespace=namespace), options=options("keep", namespace), revision="r2")
    assert actions(changes)[f"ConfigMap/{namespace}/kept"] == "kept"
    assert configmap(kube_api, namespace, "kept") is not None
    assert configmap(kube_api, namespace, "b") is None


def test_empty_render_is_refused_unless_allowed(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient
) -> None:
    app = write_app(tmp_path / "app", {"a.yaml": cm("a")})
    sync(kube, render_app(app, namespace=namespace), options=options("empty", namespace), revision="r1")
    write_app(app, {})
    with pytest.raises(EmptySourceRefused, match="--allow-empty"):
        sync(kube, render_app(app, namespace=namespace), options=options("empty", namespace), revision="r2")
    assert configmap(kube_api, namespace, "a") is not None
    changes = sync(kube, [], options=options("empty", namespace, allow_empty=True), revision="r2")
    assert actions(changes)[f"ConfigMap/{namespace}/a"] == "deleted"
    assert configmap(kube_api, namespace, "a") is None


def test_unknown_kind_fails_validation_and_writes_nothing(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient
) -> None:
    app = write_app(tmp_path / "app", {
        "a.yaml": cm("first"),
        "b.yaml": "apiVersion: nowhere.example.com/v1\nkind: Gadget\nmetadata: {name: g}\n",
    })
    with pytest.raises(ValidationFailed) as failure:
        sync(kube, render_app(app, namespace=namespace), options=options("unknown", namespace), revision="r1")
    assert f"Gadget/{namespace}/g" in str(failure.value)
    assert "nothing was changed" in str(failure.value)
    assert configmap(kube_api, namespace, "first") is None
    assert configmap(kube_api, namespace, "syncer-unknown") is None, "not even the inventory is written"


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  {annotations}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: {selector}}}}}
  template:
    metadata: {{labels: {{app: {selector}}}}}
    spec:
      containers: [{{name: web, image: nginx}}]
"""


def test_immutable_change_is_an_error_naming_the_field_and_writes_nothing(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient
) -> None:
    app = write_app(tmp_path / "app", {"d.yaml": DEPLOYMENT.format(annotations="", selector="web"),
                                        "cm.yaml": cm("cfg", v="1")})
    sync(kube, render_app(app, namespace=namespace), options=options("immutable", namespace), revision="r1")
    write_app(app, {"d.yaml": DEPLOYMENT.format(annotations="", selector="web-v2"), "cm.yaml": cm("cfg", v="2")})
    with pytest.raises(ValidationFailed) as failure:
        sync(kube, render_app(app, namespace=namespace), options=options("immutable", namespace), revision="r2")
    message = str(failure.value)
    assert f"Deployment/{namespace}/web" in message and "spec.selector" in message and "immutable" in message
    assert "syncer.dev/recreate" in message
    assert configmap(kube_api, namespace, "cfg").data == {"v": "1"}


def test_recreate_annotation_replaces_object_with_immutable_change(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient
) -> None:
    annotations = "annotations: {syncer.dev/recreate: 'true'}"
    app = write_app(tmp_path / "app", {"d.yaml": DEPLOYMENT.format(annotations=annotations, selector="web")})
    sync(kube, render_app(app, namespace=namespace), options=options("recreate", namespace), revision="r1")
    apps = client.AppsV1Api(kube_api)
    old_uid = apps.read_namespaced_deployment("web", namespace).metadata.uid
    write_app(app, {"d.yaml": DEPLOYMENT.format(annotations=annotations, selector="web-v2")})
    changes = sync(kube, render_app(app, namespace=namespace), options=options("recreate", namespace), revision="r2")
    assert actions(changes)[f"Deployment/{namespace}/web"] == "recreated", changes.error
    new = apps.read_namespaced_deployment("web", namespace)
    assert new.metadata.uid != old_uid
    assert new.spec.selector.match_labels == {"app": "web-v2"}


def test_conflicts_are_forced_and_reported_or_refused(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient
) -> None:
    app = write_app(tmp_path / "app", {"cm.yaml": cm("shared", owner="git")})
    kube.apply(kube.resource_for("v1", "ConfigMap"),
               {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared", "namespace": namespace},
                "data": {"owner": "someone-else"}},
               subject="setup", field_manager="other-tool", force=False, dry_run=False)
    with pytest.raises(ValidationFailed, match="other-tool"):
        sync(kube, render_app(app, namespace=namespace),
             options=options("conflict", namespace, force_conflicts=False), revision="r1")
    assert configmap(kube_api, namespace, "shared").data == {"owner": "someone-else"}
    changes = sync(kube, render_app(app, namespace=namespace), options=options("conflict", namespace), revision="r1")
    change = next(c for c in changes.changes if c.ref.name == "shared")
    assert change.action == "configured"
    assert "other-tool" in change.message and "data.owner" in change.message
    assert configmap(kube_api, namespace, "shared").data == {"owner": "git"}


def test_forbidden_object_fails_validation_and_writes_nothing(
    tmp_path: Path, cluster: ClusterAccess, restricted_context: str, namespace: str, kube_api: client.ApiClient
) -> None:
    grant_restricted(kube_api, namespace, role="configmaps-only", rules=[
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "patch", "create", "delete"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
    ])
    app = write_app(tmp_path / "app", {
        "cm.yaml": cm("allowed"),
        "secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: denied}\nstringData: {k: v}\n",
    })
    restricted = connect(cluster.kubeconfig, restricted_context)
    try:
        with pytest.raises(ValidationFailed) as failure:
            sync(restricted, render_app(app, namespace=namespace), options=options("rbac", namespace), revision="r1")
    finally:
        restricted.close()
    assert f"Secret/{namespace}/denied" in str(failure.value)
    assert "forbidden" in str(failure.value)
    assert configmap(kube_api, namespace, "allowed") is None


def test_second_sync_waits_for_the_lock_then_fails(
    tmp_path: Path, kube: Kube, namespace: str
) -> None:
    app = write_app(tmp_path / "app", {"cm.yaml": cm("locked")})
    with AppLock(kube, app="locked", namespace=namespace, timeout=5, identity="someone-else"):
        with pytest.raises(LockHeld, match="someone-else"):
            sync(kube, render_app(app, namespace=namespace),
                 options=options("locked", namespace, lock_timeout=1), revision="r1")


def test_concurrent_syncs_of_one_app_both_complete(
    tmp_path: Path, cluster: ClusterAccess, namespace: str, kube_api: client.ApiClient
) -> None:
    app = write_app(tmp_path / "app", {f"cm{i}.yaml": cm(f"cm{i}", i=str(i)) for i in range(20)})
    manifests = render_app(app, namespace=namespace)
    results: list[ChangeSet | BaseException] = []

    def run() -> None:
        kube = connect(cluster.kubeconfig, cluster.context)
        try:
            results.append(sync(kube, manifests, options=options("twice", namespace, lock_timeout=30), revision="r1"))
        except BaseException as error:  # collected and asserted below
            results.append(error)
        finally:
            kube.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(r, ChangeSet) and r.ok for r in results), results
    created = sum(r.count("created") for r in results if isinstance(r, ChangeSet))
    assert created == 20, "each object is created exactly once"
    assert len(client.CoreV1Api(kube_api).list_namespaced_config_map(
        namespace, label_selector="applyset.kubernetes.io/part-of").items) == 20


def test_dry_run_changes_nothing(tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient) -> None:
    app = write_app(tmp_path / "app", {"cm.yaml": cm("planned")})
    changes = sync(kube, render_app(app, namespace=namespace), options=options("dry", namespace, dry_run=True),
                   revision="r1")
    assert changes.dry_run and actions(changes) == {f"ConfigMap/{namespace}/planned": "created"}
    assert configmap(kube_api, namespace, "planned") is None
    assert configmap(kube_api, namespace, "syncer-dry") is None


def test_sync_wave_and_depends_on_order_the_apply(tmp_path: Path, kube: Kube, namespace: str) -> None:
    app = write_app(tmp_path / "app", {
        "a.yaml": cm("late").replace("metadata:\n", "metadata:\n  annotations: {syncer.dev/sync-wave: '1'}\n"),
        "b.yaml": cm("needs-b").replace(
            "metadata:\n", f"metadata:\n  annotations: {{config.kubernetes.io/depends-on: /namespaces/{namespace}/ConfigMap/b}}\n"),
        "c.yaml": cm("b"),
        "d.yaml": cm("early").replace("metadata:\n", "metadata:\n  annotations: {syncer.dev/sync-wave: '-1'}\n"),
    })
    changes = sync(kube, render_app(app, namespace=namespace), options=options("waves", namespace), revision="r1")
    order = [c.ref.name for c in changes.changes]
    assert order.index("early") < order.index("b") < order.index("needs-b") < order.index("late")


ONE_REPLICA = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
"""


def _needs_controllers(cluster: ClusterAccess) -> None:
    if not cluster.controller_manager:
        pytest.skip("needs kube-controller-manager: the Deployment's pods and status come from its controllers")


def _deployment_status(kube_api: client.ApiClient, namespace: str) -> Any:
    """The Deployment's status, or None while the sync has not created it."""
    try:
        return client.AppsV1Api(kube_api).read_namespaced_deployment_status("web", namespace).status
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def _make_pods_ready(kube_api: client.ApiClient, namespace: str) -> int:
    """Do what a kubelet does once a container passes its readiness probe: report the pod
    Running and Ready through its status subresource. The local control plane runs no kubelet
    (and no scheduler), so otherwise a pod never becomes ready."""
    core = client.CoreV1Api(kube_api)
    pods: list[Any] = core.list_namespaced_pod(namespace, label_selector="app=web").items
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for pod in pods:
        core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": {
            "phase": "Running",
            "conditions": [{"type": kind, "status": "True", "lastTransitionTime": now}
                           for kind in ("Initialized", "ContainersReady", "Ready")],
        }})
    return len(pods)


def test_wait_returns_only_once_the_rollout_is_available(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient, cluster: ClusterAccess
) -> None:
    """`--wait` on a Deployment whose pod becomes ready only when the test says so: the sync
    is still waiting while the Deployment is observed unavailable, and returns, healthy, only
    after the pod became ready."""
    _needs_controllers(cluster)
    app = write_app(tmp_path / "app", {"d.yaml": ONE_REPLICA})
    results: list[ChangeSet | BaseException] = []
    finished_at: list[float] = []

    def run() -> None:
        try:
            results.append(sync(kube, render_app(app, namespace=namespace),
                                options=options("wait", namespace, wait=True, timeout=600), revision="r1"))
        except BaseException as error:  # asserted below
            results.append(error)
        finished_at.append(time.monotonic())

    syncing = threading.Thread(target=run, daemon=True)
    syncing.start()
    try:
        # The controllers have seen the Deployment and report it unavailable: this is what
        # the wait must not mistake for health.
        eventually(lambda: (status := _deployment_status(kube_api, namespace)) is not None
                   and status.observed_generation and status.unavailable_replicas == 1,
                   timeout=120, what="the Deployment controller to report the pod unavailable")
        # Two of the wait's polls (one a second): a wait that did not wait, or that took an
        # unavailable Deployment for a healthy one, has returned by now.
        time.sleep(2.5)
        assert syncing.is_alive(), f"the sync returned while the Deployment was unavailable: {results}"
        ready_at = time.monotonic()
        assert _make_pods_ready(kube_api, namespace) == 1
    finally:
        syncing.join(timeout=600)
    assert not syncing.is_alive()
    changes = results[0]
    assert isinstance(changes, ChangeSet) and changes.ok, changes
    assert actions(changes) == {f"Deployment/{namespace}/web": "created"}
    assert finished_at[0] > ready_at
    assert _deployment_status(kube_api, namespace).available_replicas == 1


def test_wait_fails_naming_the_object_that_never_became_healthy(
    tmp_path: Path, kube: Kube, namespace: str, cluster: ClusterAccess
) -> None:
    """No kubelet runs, so the Deployment's pod never becomes ready: the sync waits its whole
    timeout and fails, naming the Deployment and why."""
    _needs_controllers(cluster)
    app = write_app(tmp_path / "app", {"d.yaml": ONE_REPLICA})
    timeout = 4.0
    started = time.monotonic()
    changes = sync(kube, render_app(app, namespace=namespace),
                   options=options("never", namespace, wait=True, timeout=timeout), revision="r1")
    assert time.monotonic() - started >= timeout
    assert not changes.ok
    assert actions(changes) == {f"Deployment/{namespace}/web": "created"}
    assert changes.error is not None
    assert f"Deployment/{namespace}/web: progressing" in changes.error, changes.error
    assert "not healthy after 4s" in changes.error


def test_namespace_with_foreign_objects_is_not_pruned(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient
) -> None:
    extra = f"{namespace}-x"
    app = write_app(tmp_path / "app", {
        "ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {extra}}}\n",
        "cm.yaml": cm("inside").replace("metadata:\n", f"metadata:\n  namespace: {extra}\n"),
    })
    core = client.CoreV1Api(kube_api)
    try:
        sync(kube, render_app(app, namespace=namespace), options=options("nsprune", namespace), revision="r1")
        core.create_namespaced_config_map(extra, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="foreign")))
        write_app(app, {"keep.yaml": cm("home")})
        changes = sync(kube, render_app(app, namespace=namespace), options=options("nsprune", namespace), revision="r2")
        assert actions(changes)[f"ConfigMap/{extra}/inside"] == "deleted"
        assert actions(changes)[f"Namespace/{extra}"] == "kept"
        assert "foreign" in next(c.message for c in changes.changes if c.ref.name == extra)
        assert core.read_namespace(extra).status.phase == "Active"
    finally:
        core.delete_namespace(extra)


def test_write_failing_after_validation_stops_the_waves_and_prunes_nothing(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient
) -> None:
    """A ResourceQuota admits each dry-run on its own but not all the writes together: the
    cluster refuses a write that validation allowed, as when it changes under a sync."""
    app = write_app(tmp_path / "app", {"old.yaml": cm("old")})
    sync(kube, render_app(app, namespace=namespace), options=options("quota", namespace), revision="r1")
    core = client.CoreV1Api(kube_api)
    used = len(core.list_namespaced_config_map(namespace).items)
    core.create_namespaced_resource_quota(namespace, client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="cms"), spec=client.V1ResourceQuotaSpec(hard={"configmaps": str(used + 1)})))
    for _ in range(100):  # the quota admits nothing until kube-controller-manager computed its usage
        if (core.read_namespaced_resource_quota("cms", namespace).status.used or {}).get("configmaps"):
            break
        threading.Event().wait(0.1)
    write_app(app, {"a.yaml": cm("new-a"), "b.yaml": cm("new-b"),
                    "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: later}\n"
                                "spec: {ports: [{port: 80}]}\n"})
    changes = sync(kube, render_app(app, namespace=namespace), options=options("quota", namespace), revision="r2")
    assert not changes.ok and changes.error is not None and "nothing was pruned" in changes.error
    got = actions(changes)
    assert sorted([got[f"ConfigMap/{namespace}/new-a"], got[f"ConfigMap/{namespace}/new-b"]]) == ["created", "failed"]
    assert got[f"Service/{namespace}/later"] == "skipped"
    assert configmap(kube_api, namespace, "old") is not None, "nothing is pruned after a failed write"
    failed = next(c for c in changes.changes if c.action == "failed")
    assert "exceeded quota" in failed.message


def test_sync_command_exit_codes_and_json_change_set(
    tmp_path: Path, cluster: ClusterAccess, namespace: str, kube_api: client.ApiClient
) -> None:
    app = write_app(tmp_path / "app", {"cm.yaml": cm("cli", k="v")})
    args = ["sync", "--repo", str(app), "--name", "cli", "--namespace", namespace,
            "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context]
    result = CliRunner().invoke(cli, [*args, "-o", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert_valid(report, kind="Sync")
    assert report["ok"] is True and report["result"] == "Succeeded" and report["summary"]["created"] == 1
    assert report["changes"] == [{"action": "created", "reason": "", "apiVersion": "v1", "kind": "ConfigMap",
                                  "namespace": namespace, "name": "cli", "message": "", "fields": []}]
    assert report["inventory"] == f"ConfigMap/{namespace}/syncer-cli"
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 0 and text.stderr == ""
    assert f"app cli at working-tree (inventory ConfigMap/{namespace}/syncer-cli): 0 created" in text.stdout
    assert "1 unchanged" in text.stdout
    write_app(app, {"cm.yaml": cm("cli", k="v"), "bad.yaml": "apiVersion: v1\nkind: Nope\nmetadata: {name: x}\n"})
    failed = CliRunner().invoke(cli, args)
    assert failed.exit_code == 2 and failed.stdout == ""
    assert f"Nope/{namespace}/x" in failed.stderr and "nothing was changed" in failed.stderr
    failed = CliRunner().invoke(cli, [*args, "-o", "json"])
    assert failed.exit_code == 2
    error = json.loads(failed.stdout)
    assert_valid(error, kind="Error")
    assert error["error"]["type"] == "ValidationFailed"
    assert [p["where"] for p in error["error"]["problems"]] == [f"Nope/{namespace}/x"]


def test_one_changed_object_is_one_write(tmp_path: Path, kube: Kube, namespace: str) -> None:
    app = write_app(tmp_path / "app", {f"cm{i}.yaml": cm(f"cm{i}", v="1") for i in range(10)})
    sync(kube, render_app(app, namespace=namespace), options=options("one", namespace), revision="r1")
    (app / "cm3.yaml").write_text(cm("cm3", v="2"))
    kube.stats.by_verb.clear()
    changes = sync(kube, render_app(app, namespace=namespace), options=options("one", namespace), revision="r2")
    assert actions(changes)[f"ConfigMap/{namespace}/cm3"] == "configured"
    assert "changed .data.v" in next(c.message for c in changes.changes if c.ref.name == "cm3")
    assert kube.stats.by_verb["apply"] == 1, "only the changed object is written"
    assert kube.stats.by_verb["dry-run"] == 1, "only the changed object is checked by the server"
    # the rest is the app's lock: one Lease created and deleted
    assert (kube.stats.by_verb["create"], kube.stats.by_verb["delete"]) == (1, 1)


def test_missing_app_namespace_is_an_error_before_any_write(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient
) -> None:
    elsewhere = cm("elsewhere").replace("metadata:\n", f"metadata:\n  namespace: {namespace}\n")
    app = write_app(tmp_path / "app", {"cm.yaml": elsewhere})
    with pytest.raises(ValidationFailed, match="no-such-namespace-4d2"):
        sync(kube, render_app(app, namespace="no-such-namespace-4d2"),
             options=options("homeless", "no-such-namespace-4d2"), revision="r1")
    assert configmap(kube_api, namespace, "elsewhere") is None


def test_a_namespace_scoped_user_can_sync_and_prune_its_namespace(
    tmp_path: Path, cluster: ClusterAccess, restricted_context: str, namespace: str, kube_api: client.ApiClient
) -> None:
    grant_restricted(kube_api, namespace, role="app-owner", rules=[
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "create", "patch", "delete"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update", "delete"]},
    ])
    app = write_app(tmp_path / "app", {"a.yaml": cm("a"), "b.yaml": cm("b")})
    restricted = connect(cluster.kubeconfig, restricted_context)
    try:
        first = sync(restricted, render_app(app, namespace=namespace), options=options("scoped", namespace), revision="r1")
        assert first.ok, first.error
        write_app(app, {"a.yaml": cm("a")})
        second = sync(restricted, render_app(app, namespace=namespace), options=options("scoped", namespace), revision="r2")
    finally:
        restricted.close()
    assert second.ok, second.error
    assert actions(second)[f"ConfigMap/{namespace}/b"] == "deleted"
    assert configmap(kube_api, namespace, "a") is not None and configmap(kube_api, namespace, "b") is None


def test_forbidden_create_says_which_verb_is_missing(
    tmp_path: Path, cluster: ClusterAccess, restricted_context: str, namespace: str, kube_api: client.ApiClient
) -> None:
    grant_restricted(kube_api, namespace, role="no-create", rules=[
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "patch"]},
    ])
    app = write_app(tmp_path / "app", {"a.yaml": cm("a")})
    restricted = connect(cluster.kubeconfig, restricted_context)
    try:
        with pytest.raises(ValidationFailed, match="'create' too when the object does not exist"):
            sync(restricted, render_app(app, namespace=namespace), options=options("nocreate", namespace), revision="r1")
    finally:
        restricted.close()


def test_a_first_sync_into_a_new_namespace_searches_for_lost_members_once(
    tmp_path: Path, kube: Kube, kube_api: client.ApiClient
) -> None:
    """With no ApplySet parent the plan lists every kind by the app's label (members of a
    parent deleted by hand are still pruned). A sync that creates the app's namespace plans
    again under its lock, and used to repeat that scan: one LIST per kind, twice."""
    home = f"t-first-{secrets.token_hex(3)}"
    app = write_app(tmp_path / "app", {
        "ns.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {home}}}\n",
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\ndata: {a: '1'}\n",
    })
    kinds = len(kube.listable_resources()[0])
    try:
        result = sync(kube, render_app(app, namespace=home), options=options("first", home), revision="r1")
        assert result.ok, result.error
        assert configmap(kube_api, home, "one") is not None
        assert kinds < kube.stats.by_verb["list"] < kinds + 10, dict(kube.stats.by_verb)
    finally:
        client.CoreV1Api(kube_api).delete_namespace(home)
