"""Prune safety by default (issue 22), through `syncer diff` and `syncer sync` as a user runs
them, against the real API server: a Namespace, a CustomResourceDefinition, a
PersistentVolumeClaim and a PersistentVolume that leave the source are kept until a
confirmation names them; a sync that would delete most of an app stops before its first write
until the budget is raised or the sync confirmed. Each is checked on the objects: their uid
and resourceVersion, and the inventory the parent records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from kubernetes import client

from syncer.apply import sync
from syncer.cli import cli
from syncer.kube import Kube
from tests.conftest import ClusterAccess
from tests.e2e.apps import options, render_app, write_app
from tests.e2e.test_safety import CRD, Snapshot, cm, namespace_doc, quiet_snapshot, snapshot
from tests.e2e.test_safety import crd_group, extra_namespace  # noqa: F401 - fixtures

pytestmark = pytest.mark.oldest

Identity = tuple[str, str]
"""(uid, resourceVersion)."""


def run(cluster: ClusterAccess, command: str, app: Path, name: str, namespace: str, *flags: str) -> Result:
    return CliRunner().invoke(cli, [
        command, "--repo", str(app), "--name", name, "--namespace", namespace, "--kubeconfig",
        str(cluster.kubeconfig), "--context", cluster.context, *flags])


def inventory(api: client.ApiClient, namespace: str, app: str) -> dict[str, str]:
    """What the parent records about the app's members (its ApplySet annotations and labels)."""
    parent = client.CoreV1Api(api).read_namespaced_config_map(f"syncer-{app}", namespace).metadata
    return {**{k: v for k, v in (parent.annotations or {}).items() if k.startswith("applyset.kubernetes.io/")},
            **{k: v for k, v in (parent.labels or {}).items() if k.startswith("applyset.kubernetes.io/")}}


def identity(obj: Any) -> Identity:
    return obj.metadata.uid, obj.metadata.resource_version


def test_a_namespace_that_left_the_source_is_kept_until_confirmed(
    tmp_path: Path, cluster: ClusterAccess, kube: Kube, namespace: str, extra_namespace: str,
    kube_api: client.ApiClient,
) -> None:
    app = write_app(tmp_path / "app", {"ns.yaml": namespace_doc(extra_namespace), "home.yaml": cm("home", v="1")})
    assert sync(kube, render_app(app, namespace=namespace), options=options("nsp", namespace), revision="r1").ok
    core = client.CoreV1Api(kube_api)
    before = identity(core.read_namespace(extra_namespace))
    recorded = inventory(kube_api, namespace, "nsp")
    write_app(app, {"home.yaml": cm("home", v="1")})

    shown = run(cluster, "diff", app, "nsp", namespace)
    assert shown.exit_code == 0, shown.output  # kept is settled: nothing to change
    assert (f"note: Namespace/{extra_namespace} is no longer in the source; kept (protected): kept: a protected "
            f"kind: deleting a Namespace deletes everything in it; to delete it, confirm it: --confirm-prune "
            f"Namespace/{extra_namespace}, or pruneConfirmations: [Namespace/{extra_namespace}] in the app's spec"
            ) in " ".join(shown.stdout.split())
    synced = run(cluster, "sync", app, "nsp", namespace, "-o", "json")
    assert synced.exit_code == 0, synced.output
    kept = next(c for c in json.loads(synced.stdout)["changes"] if c["kind"] == "Namespace")
    assert (kept["action"], kept["reason"]) == ("kept", "protected")
    assert identity(core.read_namespace(extra_namespace)) == before
    assert inventory(kube_api, namespace, "nsp") == recorded

    confirmed = run(cluster, "sync", app, "nsp", namespace, "--confirm-prune", f"namespace/{extra_namespace}")
    assert confirmed.exit_code == 0, confirmed.output
    assert core.read_namespace(extra_namespace).metadata.deletion_timestamp is not None
    assert "Namespace" not in inventory(kube_api, namespace, "nsp").get(
        "applyset.kubernetes.io/contains-group-kinds", "")


def test_a_crd_that_left_the_source_is_kept_until_confirmed(
    tmp_path: Path, cluster: ClusterAccess, kube: Kube, namespace: str, crd_group: str, kube_api: client.ApiClient,
) -> None:
    app = write_app(tmp_path / "app", {"crd.yaml": CRD.format(group=crd_group), "home.yaml": cm("home")})
    assert sync(kube, render_app(app, namespace=namespace), options=options("crdp", namespace), revision="r1").ok
    crds = client.ApiextensionsV1Api(kube_api)
    name = f"widgets.{crd_group}"
    before = identity(crds.read_custom_resource_definition(name))
    recorded = inventory(kube_api, namespace, "crdp")
    write_app(app, {"home.yaml": cm("home")})

    synced = run(cluster, "sync", app, "crdp", namespace)
    assert synced.exit_code == 0, synced.output
    flat = " ".join(synced.stdout.split())
    assert f"kept CustomResourceDefinition.apiextensions.k8s.io/{name}" in flat
    assert f"every object of its kind, in every namespace; to delete it, confirm it: --confirm-prune " \
           f"CustomResourceDefinition/{name}" in flat
    assert identity(crds.read_custom_resource_definition(name)) == before
    assert inventory(kube_api, namespace, "crdp") == recorded

    confirmed = run(cluster, "sync", app, "crdp", namespace, "--confirm-prune", f"CustomResourceDefinition/{name}",
                    "-o", "json")
    assert confirmed.exit_code == 0, confirmed.output
    deleted = next(c for c in json.loads(confirmed.stdout)["changes"] if c["kind"] == "CustomResourceDefinition")
    assert deleted["action"] == "deleted"
    try:
        assert crds.read_custom_resource_definition(name).metadata.deletion_timestamp is not None
    except client.ApiException as error:
        assert error.status == 404


PVC = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data, namespace: {namespace}}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  volumeName: {volume}
  resources: {{requests: {{storage: 1Mi}}}}
"""

PV = """
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {volume}}}
spec:
  capacity: {{storage: 1Mi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {{path: /tmp/{volume}}}
"""


def test_a_volume_and_its_claim_that_left_the_source_are_kept_until_confirmed(
    tmp_path: Path, cluster: ClusterAccess, kube: Kube, namespace: str, kube_api: client.ApiClient,
) -> None:
    volume = f"{namespace}-pv"
    app = write_app(tmp_path / "app", {"pvc.yaml": PVC.format(namespace=namespace, volume=volume),
                                        "pv.yaml": PV.format(volume=volume), "home.yaml": cm("home")})
    assert sync(kube, render_app(app, namespace=namespace), options=options("pvp", namespace), revision="r1").ok
    core = client.CoreV1Api(kube_api)
    try:
        quiet_snapshot(kube, [namespace])  # the binder has done with them
        settled = quiet_snapshot(kube, [namespace])
        before = objects(settled, parent="syncer-pvp"), identity(core.read_persistent_volume(volume))
        recorded = inventory(kube_api, namespace, "pvp")
        write_app(app, {"home.yaml": cm("home")})

        synced = run(cluster, "sync", app, "pvp", namespace, "-o", "json")
        assert synced.exit_code == 0, synced.output
        kept = {c["kind"]: (c["action"], c["reason"]) for c in json.loads(synced.stdout)["changes"]
                if c["kind"] in ("PersistentVolume", "PersistentVolumeClaim")}
        assert kept == {"PersistentVolume": ("kept", "protected"), "PersistentVolumeClaim": ("kept", "protected")}
        assert (objects(snapshot(kube, [namespace]), parent="syncer-pvp"),
                identity(core.read_persistent_volume(volume))) == before
        assert inventory(kube_api, namespace, "pvp") == recorded

        # A confirmation of something the plan does not prune is said, and changes nothing.
        confirmed = run(cluster, "sync", app, "pvp", namespace, "--confirm-prune",
                        f"PersistentVolumeClaim/{namespace}/data", "--confirm-prune", f"PersistentVolume/{volume}",
                        "--confirm-prune", "Namespace/nothing-here", "-o", "json")
        assert confirmed.exit_code == 0, confirmed.output
        result = json.loads(confirmed.stdout)
        deleted = {c["kind"]: c["action"] for c in result["changes"]
                   if c["kind"] in ("PersistentVolume", "PersistentVolumeClaim")}
        assert deleted == {"PersistentVolume": "deleted", "PersistentVolumeClaim": "deleted"}
        assert ("--confirm-prune Namespace/nothing-here: this sync deletes no such object (the app has no such "
                "member to prune); the confirmation changes nothing") in result["warnings"]
        for read in (lambda: core.read_namespaced_persistent_volume_claim("data", namespace),
                     lambda: core.read_persistent_volume(volume)):
            try:
                assert read().metadata.deletion_timestamp is not None
            except client.ApiException as error:
                assert error.status == 404
    finally:
        try:
            core.delete_persistent_volume(volume)
        except client.ApiException:
            pass


def objects(found: Snapshot, *, parent: str) -> Snapshot:
    """The snapshot without what a refused sync records about itself: the outcome on its
    parent's annotations, and an Event."""
    return {key: value for key, value in found.items()
            if key[0] not in ("Event", "Event.events.k8s.io") and key != ("ConfigMap", key[1], parent)}


def configmaps(count: int) -> dict[str, str]:
    return {f"cm-{n}.yaml": cm(f"cm-{n}", v="1") for n in range(count)}


def test_a_sync_that_would_delete_most_of_an_app_stops_before_its_first_write(
    tmp_path: Path, cluster: ClusterAccess, kube: Kube, namespace: str, kube_api: client.ApiClient,
) -> None:
    app = write_app(tmp_path / "app", configmaps(10))
    assert sync(kube, render_app(app, namespace=namespace), options=options("big", namespace), revision="r1").ok
    recorded = inventory(kube_api, namespace, "big")
    write_app(app, {**configmaps(4), "new.yaml": cm("new", v="1")})  # 6 of 10 members go, one comes
    before = quiet_snapshot(kube, [namespace])
    budget = ("blocked by the prune budget: this sync would delete 6 of the app's 10 member(s), more than its "
              "budget of 50% of its members (5 object(s); a percentage never stops fewer than 5); pass "
              "--confirm-prune-all to let this sync through, or raise the budget with --max-prune N|P% (an app: "
              "maxPrune in its spec)")

    shown = run(cluster, "diff", app, "big", namespace)
    assert shown.exit_code == 1, shown.output
    assert f"diff: a sync would refuse this plan: {budget}" in " ".join(shown.stdout.split())
    as_json = run(cluster, "diff", app, "big", namespace, "-o", "json")
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["blocked"] == budget
    for dry in ((), ("--dry-run",)):
        refused = run(cluster, "sync", app, "big", namespace, *dry)
        assert refused.exit_code == 2, refused.output
        assert f"app big: {budget}" in " ".join(refused.output.split())
    raised = run(cluster, "diff", app, "big", namespace, "--max-prune", "6", "-o", "json")
    assert raised.exit_code == 1 and json.loads(raised.stdout)["blocked"] is None
    # Nothing was written: no member, no new object, the inventory as it was.
    assert objects(snapshot(kube, [namespace]), parent="syncer-big") == objects(before, parent="syncer-big")
    assert inventory(kube_api, namespace, "big") == recorded
    assert not client.CoreV1Api(kube_api).list_namespaced_config_map(
        namespace, field_selector="metadata.name=new").items

    through = run(cluster, "sync", app, "big", namespace, "--confirm-prune-all", "-o", "json")
    assert through.exit_code == 0, through.output
    assert json.loads(through.stdout)["summary"]["deleted"] == 6
    names = {c.metadata.name for c in client.CoreV1Api(kube_api).list_namespaced_config_map(namespace).items}
    assert {f"cm-{n}" for n in range(10)} & names == {f"cm-{n}" for n in range(4)} and "new" in names


def test_kept_objects_do_not_count_against_the_budget(
    tmp_path: Path, cluster: ClusterAccess, kube: Kube, namespace: str, kube_api: client.ApiClient,
) -> None:
    """Six of ten members leave the source, but two carry the opt-out annotation: four
    deletions are within any budget."""
    files = configmaps(10)
    files["cm-8.yaml"] = cm("cm-8", annotations="{syncer.dev/prune: disabled}", v="1")
    files["cm-9.yaml"] = cm("cm-9", annotations="{syncer.dev/prune: disabled}", v="1")
    app = write_app(tmp_path / "app", files)
    assert sync(kube, render_app(app, namespace=namespace), options=options("kept", namespace), revision="r1").ok
    write_app(app, configmaps(4))
    synced = run(cluster, "sync", app, "kept", namespace, "-o", "json")
    assert synced.exit_code == 0, synced.output
    assert json.loads(synced.stdout)["summary"]["deleted"] == 4
