"""`syncer diff` against a real API server: exactly what a sync would change, without noise."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from kubernetes import client

from syncer.apply import sync
from syncer.cli import cli
from syncer.kube import Kube
from tests.conftest import ClusterAccess
from tests.e2e.apps import grant_restricted, options, render_app, write_app
from tests.schema import assert_valid


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web{extra_label}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: {image}
        ports: [{{containerPort: 80}}]
"""


def deployment(*, replicas: int = 1, image: str = "nginx:1.25", extra_label: str = "") -> str:
    return DEPLOYMENT.format(replicas=replicas, image=image, extra_label=extra_label)



def run_diff(cluster: ClusterAccess, app: Path, namespace: str, *extra: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, [
        "diff", "--repo", str(app), "--name", "d", "--namespace", namespace,
        "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context, "-o", "json", *extra,
    ])
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    assert_valid(report, kind="Diff")
    assert report["hasChanges"] is (result.exit_code == 1)
    return result.exit_code, report


def changed(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['name']}": o for o in report["changes"] if o["action"] != "unchanged"}


def synced(kube: Kube, app: Path, namespace: str) -> None:
    changes = sync(kube, render_app(app, namespace=namespace), options=options("d", namespace), revision="r")
    assert changes.ok, changes.error


def test_no_op_exits_0_and_lists_nothing(cluster: ClusterAccess, kube: Kube, tmp_path: Path, namespace: str) -> None:
    app = write_app(tmp_path / "app", {"web.yaml": deployment()})
    synced(kube, app, namespace)
    code, report = run_diff(cluster, app, namespace)
    assert code == 0
    assert changed(report) == {}
    assert {k: v for k, v in report["summary"].items() if v} == {"unchanged": 1}
    assert set(report) >= {"revision", "summary", "changes", "inventory"}
    assert report["inventory"] == f"ConfigMap/{namespace}/syncer-d"


def test_new_object_exits_1_with_create(cluster: ClusterAccess, tmp_path: Path, namespace: str) -> None:
    app = write_app(tmp_path / "app", {"web.yaml": deployment()})
    code, report = run_diff(cluster, app, namespace)
    assert code == 1
    web = changed(report)["Deployment/web"]
    assert web["action"] == "created" and web["apiVersion"] == "apps/v1" and web["namespace"] == namespace
    assert "+  replicas: 1" in web["diff"]
    assert "progressDeadlineSeconds" not in web["diff"], "server defaults are not shown"


def test_changed_field_shows_only_that_change(
    cluster: ClusterAccess, kube: Kube, tmp_path: Path, namespace: str
) -> None:
    app = write_app(tmp_path / "app", {"web.yaml": deployment()})
    synced(kube, app, namespace)
    write_app(app, {"web.yaml": deployment(image="nginx:1.27")})
    code, report = run_diff(cluster, app, namespace)
    assert code == 1
    diff = changed(report)["Deployment/web"]["diff"]
    assert "-        image: nginx:1.25" in diff and "+        image: nginx:1.27" in diff
    changed_lines = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert len(changed_lines) == 2, diff


def test_field_removed_from_git_is_a_change(
    cluster: ClusterAccess, kube: Kube, tmp_path: Path, namespace: str
) -> None:
    app = write_app(tmp_path / "app", {"web.yaml": deployment(extra_label=", tier: frontend")})
    synced(kube, app, namespace)
    write_app(app, {"web.yaml": deployment()})
    code, report = run_diff(cluster, app, namespace)
    assert code == 1
    web = changed(report)["Deployment/web"]
    assert "-    tier: frontend" in web["diff"]
    assert any("tier" in path for path in web["removedFields"])


def test_foreign_managers_fields_are_not_drift(
    cluster: ClusterAccess, kube: Kube, kube_api: client.ApiClient, tmp_path: Path, namespace: str
) -> None:
    app = write_app(tmp_path / "app", {"web.yaml": deployment()})
    synced(kube, app, namespace)
    # `kubectl label` and an HPA writing replicas through the scale subresource
    client.AppsV1Api(kube_api).patch_namespaced_deployment(
        "web", namespace, {"metadata": {"labels": {"team": "shop"}}}, field_manager="kubectl-label")
    client.AppsV1Api(kube_api).patch_namespaced_deployment_scale(
        "web", namespace, {"spec": {"replicas": 1}}, field_manager="kube-controller-manager")
    code, report = run_diff(cluster, app, namespace)
    assert (code, changed(report)) == (0, {})


def test_manual_drift_is_reported(
    cluster: ClusterAccess, kube: Kube, kube_api: client.ApiClient, tmp_path: Path, namespace: str
) -> None:
    app = write_app(tmp_path / "app", {"web.yaml": deployment()})
    synced(kube, app, namespace)
    body = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:hacked"}]}}}}
    client.AppsV1Api(kube_api).patch_namespaced_deployment("web", namespace, body, field_manager="kubectl-edit")
    code, report = run_diff(cluster, app, namespace)
    assert code == 1
    diff = changed(report)["Deployment/web"]["diff"]
    assert "-        image: nginx:hacked" in diff and "+        image: nginx:1.25" in diff


def test_secret_values_never_printed(
    cluster: ClusterAccess, kube: Kube, tmp_path: Path, namespace: str
) -> None:
    old, new = "old-hunter2-value", "new-hunter3-value"
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {{name: creds}}\nstringData: {{password: {v}, user: admin}}\n"
    app = write_app(tmp_path / "app", {"s.yaml": secret.format(v=old)})
    synced(kube, app, namespace)
    write_app(app, {"s.yaml": secret.format(v=new)})
    result = CliRunner().invoke(cli, [
        "diff", "--repo", str(app), "--name", "d", "--namespace", namespace,
        "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context,
    ])
    assert result.exit_code == 1, result.output
    json_result = CliRunner().invoke(cli, [
        "diff", "--repo", str(app), "--name", "d", "--namespace", namespace,
        "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context, "-o", "json",
    ])
    for output in (result.output, json_result.output):
        for value in (old, new, "admin"):
            assert value not in output
            assert base64.b64encode(value.encode()).decode() not in output
    diff = changed(json.loads(json_result.stdout))["Secret/creds"]["diff"]
    assert "password" in diff, "the changed key is named"
    assert not any(line.startswith(("-", "+")) and "user" in line for line in diff.splitlines()[2:]), \
        "an unchanged key shows as unchanged"


def test_ignore_rules_from_file_and_annotation(
    cluster: ClusterAccess, kube: Kube, tmp_path: Path, namespace: str
) -> None:
    app = write_app(tmp_path / "app", {"web.yaml": deployment(replicas=1)})
    synced(kube, app, namespace)
    write_app(app, {"web.yaml": deployment(replicas=3)})
    rules = tmp_path / "ignore.yaml"
    rules.write_text("- group: apps\n  kind: Deployment\n  jsonPointers: [/spec/replicas]\n")
    assert run_diff(cluster, app, namespace)[0] == 1
    code, report = run_diff(cluster, app, namespace, "--ignore-differences", str(rules))
    assert (code, changed(report)) == (0, {})
    annotated = deployment(replicas=3).replace(
        "metadata:\n  name: web\n", "metadata:\n  name: web\n  annotations: {syncer.dev/ignore-differences: /spec/replicas}\n")
    write_app(app, {"web.yaml": annotated})
    code, report = run_diff(cluster, app, namespace)
    diff = changed(report)["Deployment/web"]["diff"]
    assert "+    syncer.dev/ignore-differences: /spec/replicas" in diff, "adding the annotation is a change"
    assert not [line for line in diff.splitlines() if line.startswith(("+", "-")) and "replicas:" in line]


def test_plan_is_cheap_on_the_api_server(kube: Kube, tmp_path: Path, namespace: str) -> None:
    app = write_app(tmp_path / "app", {f"cm{i}.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n"
                                       for i in range(30)})
    synced(kube, app, namespace)
    kube.stats.by_verb.clear()
    synced(kube, app, namespace)
    assert kube.stats.by_verb.get("list", 0) <= 2, "one LIST per kind and namespace"
    assert "dry-run" not in kube.stats.by_verb and "get" not in kube.stats.by_verb


def test_diff_needs_only_read_and_dry_run_rights(
    cluster: ClusterAccess, kube: Kube, kube_api: client.ApiClient, restricted_context: str,
    tmp_path: Path, namespace: str,
) -> None:
    app = write_app(tmp_path / "app", {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v1}\n"})
    synced(kube, app, namespace)
    # patch is the verb a dry-run needs; the test proves nothing is written with it
    grant_restricted(kube_api, namespace, role="ci-diff", rules=[
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "patch"]},
    ])
    write_app(app, {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v2}\n"})
    before = client.CoreV1Api(kube_api).read_namespaced_config_map("c", namespace).metadata.resource_version
    result = CliRunner().invoke(cli, [
        "diff", "--repo", str(app), "--name", "d", "--namespace", namespace,
        "--kubeconfig", str(cluster.kubeconfig), "--context", restricted_context, "-o", "json",
    ])
    assert result.exit_code == 1, result.output
    assert changed(json.loads(result.stdout))["ConfigMap/c"]["action"] == "configured"
    after = client.CoreV1Api(kube_api).read_namespaced_config_map("c", namespace).metadata.resource_version
    assert before == after
