"""`syncer plan` and `syncer apply PLAN` against a real API server: the reviewed plan is what
is written, and a plan the cluster (or the plan file) moved away from is refused, exit 3,
before anything is written. "Nothing written" and "exactly the planned writes" are checked on
the objects: their uids and resourceVersions."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from syncer.apply.planfile import document_digest
from tests.conftest import ClusterAccess
from tests.schema import undocumented_fields, validation_errors
from tests.e2e.apps import eventually
from tests.e2e.test_app_cli import apply_app
from tests.e2e.test_apps import (  # noqa: F401 - fixtures
    Kubectl,
    grant_service_account,
    installed,
    syncer,
)
from tests.e2e.test_daemon import commit, configmap_yaml
from tests.e2e.test_daemon import repo  # noqa: F401 - the fixture: a Git repository
from tests.e2e.test_sync import ONE_REPLICA, _make_pods_ready, _needs_controllers

KEY = "0123456789abcdef0123456789abcdef"


def configmaps(**colors: str) -> dict[str, str]:
    return {f"shop/{name}.yaml": configmap_yaml(name, color) for name, color in colors.items()}


@pytest.fixture
def shop(repo: Path) -> Path:
    """The daemon tests' repository, with three ConfigMaps in shop/ instead of its one."""
    (repo / "shop/config.yaml").unlink()
    commit(repo, configmaps(web="blue", old="red", same="white"))
    return repo


def versions(api: client.ApiClient, namespace: str) -> dict[str, tuple[str, str]]:
    """name -> (uid, resourceVersion) of every ConfigMap and Deployment in the namespace."""
    found = {f"ConfigMap/{c.metadata.name}": (c.metadata.uid, c.metadata.resource_version)
             for c in client.CoreV1Api(api).list_namespaced_config_map(namespace).items}
    found.update({f"Deployment/{d.metadata.name}": (d.metadata.uid, d.metadata.resource_version)
                  for d in client.AppsV1Api(api).list_namespaced_deployment(namespace).items})
    return found


def color(api: client.ApiClient, namespace: str, name: str) -> str | None:
    try:
        data = client.CoreV1Api(api).read_namespaced_config_map(name, namespace).data
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return str(data["color"])


def plan(cluster: ClusterAccess, tmp_path: Path, *args: str) -> Path:
    result = syncer(cluster, "plan", *args, "-o", "json")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    path = tmp_path / f"plan-{time.monotonic_ns()}.json"
    path.write_text(result.stdout)
    return path


def edited(path: Path, change: Callable[[dict[str, Any]], None], *, redigest: bool) -> Path:
    document = json.loads(path.read_text())
    change(document)
    if redigest:
        document["digest"] = document_digest(document)
    out = path.with_name(f"edited-{time.monotonic_ns()}-{path.name}")
    out.write_text(json.dumps(document))
    return out


def cli_app(repo: Path, namespace: str) -> list[str]:
    return ["--repo", str(repo), "--path", "shop", "--name", "shop", "-n", namespace]


def test_apply_writes_exactly_the_plan_and_refuses_it_the_second_time(
    cluster: ClusterAccess, shop: Path, namespace: str, kube_api: client.ApiClient, tmp_path: Path,
) -> None:
    first = syncer(cluster, "sync", *cli_app(shop, namespace))
    assert first.returncode == 0, first.stdout + first.stderr
    head = commit(shop, {"shop/web.yaml": configmap_yaml("web", "green"), "shop/new.yaml": configmap_yaml("new", "x")})
    (shop / "shop/old.yaml").unlink()
    head = commit(shop, {})
    reviewed = plan(cluster, tmp_path, *cli_app(shop, namespace))
    document = json.loads(reviewed.read_text())
    assert validation_errors(document) == [] and undocumented_fields(document) == []
    assert document["revision"] == head
    actions = {o["name"]: o["action"] for o in document["objects"]}
    assert actions == {"web": "configured", "new": "created", "same": "unchanged"}
    assert [(d["name"], d["action"]) for d in document["prune"]] == [("old", "deleted")]
    assert [f["path"] for f in next(o for o in document["objects"] if o["name"] == "web")["fields"]] == [".data.color"]
    before = versions(kube_api, namespace)
    assert document["prune"][0]["uid"] == before["ConfigMap/old"][0]

    applied = syncer(cluster, "apply", str(reviewed))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    after = versions(kube_api, namespace)
    assert color(kube_api, namespace, "web") == "green" and color(kube_api, namespace, "new") == "x"
    assert "ConfigMap/old" not in after
    assert after["ConfigMap/same"] == before["ConfigMap/same"], "an unchanged object was written"
    assert after["ConfigMap/web"][0] == before["ConfigMap/web"][0]

    again = syncer(cluster, "apply", str(reviewed))
    assert again.returncode == 3, again.stdout + again.stderr
    assert f"ConfigMap/{namespace}/web: reviewed as configured, now unchanged" in again.stderr
    assert versions(kube_api, namespace) == after, "a refused apply wrote"


def test_a_hand_edit_of_a_planned_field_is_refused_and_nothing_is_written(
    cluster: ClusterAccess, shop: Path, namespace: str, kube_api: client.ApiClient, tmp_path: Path,
) -> None:
    assert syncer(cluster, "sync", *cli_app(shop, namespace)).returncode == 0
    commit(shop, configmaps(web="green", same="black"))
    reviewed = plan(cluster, tmp_path, *cli_app(shop, namespace))
    client.CoreV1Api(kube_api).patch_namespaced_config_map("web", namespace, {"data": {"color": "purple"}})
    before = versions(kube_api, namespace)

    applied = syncer(cluster, "apply", str(reviewed))
    assert applied.returncode == 3, applied.stdout + applied.stderr
    assert f"ConfigMap/{namespace}/web: its fields moved" in applied.stderr, applied.stderr
    assert f"ConfigMap/{namespace}/same" not in applied.stderr
    assert versions(kube_api, namespace) == before, "a refused apply wrote"
    assert color(kube_api, namespace, "same") == "white"


def test_an_altered_plan_another_cluster_or_an_old_plan_is_refused(
    cluster: ClusterAccess, shop: Path, namespace: str, kube_api: client.ApiClient, tmp_path: Path,
) -> None:
    commit(shop, configmaps(web="green"))
    signed = plan(cluster, tmp_path, *cli_app(shop, namespace), "--plan-key-file", str(_key(tmp_path)))
    unsigned = plan(cluster, tmp_path, *cli_app(shop, namespace))
    key = ["--plan-key-file", str(_key(tmp_path))]

    def set_action(document: dict[str, Any]) -> None:
        document["objects"][0]["action"] = "unchanged"

    def set_body(document: dict[str, Any]) -> None:
        next(o for o in document["objects"] if o["name"] == "web")["bodyDigest"] = "sha256:" + "0" * 64

    def set_cluster(document: dict[str, Any]) -> None:
        document["cluster"]["uid"] = "00000000-0000-0000-0000-000000000000"

    cases = {
        "signed, an action edited and the digest made again": (edited(signed, set_action, redigest=True), key,
                                                               "its signature does not match"),
        "signed, applied without the key": (signed, [], "give --plan-key-file"),
        "unsigned, a body digest edited": (edited(unsigned, set_body, redigest=False), [], "its digest does not match"),
        "unsigned, a body digest edited and the digest made again": (
            edited(unsigned, set_body, redigest=True), [], "the source renders another body"),
        "another cluster": (edited(unsigned, set_cluster, redigest=True), [], "this one's is"),
        "too old": (unsigned, ["--max-age", "1s"], "more than --max-age"),
    }
    time.sleep(2)
    before = versions(kube_api, namespace)
    for what, (path, extra, says) in cases.items():
        result = syncer(cluster, "apply", str(path), *extra)
        assert result.returncode == 3, f"{what}: {result.stdout + result.stderr}"
        assert says in result.stderr, f"{what}: {result.stderr}"
        assert versions(kube_api, namespace) == before, f"{what}: a refused apply wrote"

    applied = syncer(cluster, "apply", str(signed), *key)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert color(kube_api, namespace, "web") == "green"


def _key(tmp_path: Path) -> Path:
    path = tmp_path / "plan.key"
    path.write_text(KEY + "\n")
    return path


def test_a_controllers_status_write_does_not_make_a_plan_stale(
    cluster: ClusterAccess, shop: Path, namespace: str, kube_api: client.ApiClient, tmp_path: Path,
) -> None:
    _needs_controllers(cluster)
    commit(shop, {"shop/deployment.yaml": ONE_REPLICA.replace("image: nginx", "image: nginx:1.27")})
    assert syncer(cluster, "sync", *cli_app(shop, namespace)).returncode == 0
    apps = client.AppsV1Api(kube_api)
    eventually(lambda: client.CoreV1Api(kube_api).list_namespaced_pod(namespace, label_selector="app=web").items,
               timeout=30, what="the Deployment's pod")
    commit(shop, {"shop/deployment.yaml": ONE_REPLICA.replace("image: nginx", "image: nginx:1.28")})
    reviewed = plan(cluster, tmp_path, *cli_app(shop, namespace))
    planned = apps.read_namespaced_deployment("web", namespace).metadata.resource_version

    _make_pods_ready(kube_api, namespace)  # the controllers then report the Deployment's new status
    eventually(lambda: apps.read_namespaced_deployment("web", namespace).metadata.resource_version != planned,
               timeout=30, what="the controller's status write")

    applied = syncer(cluster, "apply", str(reviewed))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    image = apps.read_namespaced_deployment("web", namespace).spec.template.spec.containers[0].image
    assert image == "nginx:1.28"


def test_plan_and_apply_an_app_as_its_service_account(
    installed: Kubectl, cluster: ClusterAccess, shop: Path, namespace: str, kube_api: client.ApiClient,
    tmp_path: Path,
) -> None:
    grant_service_account(kube_api, namespace, "deployer")
    apply_app(installed, namespace, "shop", repo=shop, serviceAccountName="deployer")
    reviewed = plan(cluster, tmp_path, "--app", "shop", "-n", namespace)
    document = json.loads(reviewed.read_text())
    assert document["inventory"]["parent"] == f"ConfigMap/{namespace}/syncer-shop"
    assert document["source"]["appObject"] == "shop"
    text = syncer(cluster, "plan", "--app", "shop", "-n", namespace)
    assert text.returncode == 1 and "plan: digest sha256:" in text.stdout, text.stdout + text.stderr
    markdown = syncer(cluster, "plan", "--app", "shop", "-n", namespace, "-o", "markdown")
    assert markdown.returncode == 1, markdown.stdout + markdown.stderr
    assert markdown.stdout.startswith("### syncer plan: app `shop`")
    assert f"<summary><code>+ created v1 ConfigMap/{namespace}/web</code>" in markdown.stdout

    applied = syncer(cluster, "apply", str(reviewed))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"system:serviceaccount:{namespace}:deployer" in applied.stderr
    assert color(kube_api, namespace, "web") == "blue"
    parent = client.CoreV1Api(kube_api).read_namespaced_config_map("syncer-shop", namespace)
    assert parent.metadata.labels, "the App's inventory was not written"
