"""A Helm chart in a Git repository, synced from the CLI and from an App against a real API
server: it syncs, resyncs with no write, upgrades when a value changes and prunes what a
value turns off. The chart is podinfo's, vendored in tests/charts."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.conftest import ClusterAccess
from tests.e2e.apps import SLACK
from tests.e2e.test_apps import Kubectl, app_yaml, grant_service_account, syncer
from tests.e2e.test_apps import installed, run_daemon  # noqa: F401 - fixtures
from tests.e2e.test_daemon import commit, eventually, git
from tests.e2e.test_daemon import repo  # noqa: F401 - the fixture: a Git repository

PODINFO = Path(__file__).resolve().parents[1] / "charts" / "podinfo"


def chart_repo(repo: Path, values: str) -> Path:
    """The Git repository with podinfo's chart and a values file of the team's added."""
    shutil.copytree(PODINFO, repo / "charts" / "podinfo")
    commit(repo, {"env/web.yaml": values}, "podinfo")
    return repo


def sync(cluster: ClusterAccess, repo: Path, namespace: str) -> dict[str, Any]:
    result = syncer(cluster, "sync", "--repo", str(repo), "--path", "charts/podinfo", "--name", "web", "-n", namespace,
                    "--helm-values", "../../env/web.yaml", "-o", "json")
    assert result.returncode == 0, result.stderr
    document = dict(json.loads(result.stdout))
    assert "3 Helm hook(s) left out" in document["warnings"][0], document["warnings"]
    return document


def deployment(api: client.ApiClient, namespace: str) -> Any:
    return client.AppsV1Api(api).read_namespaced_deployment("web-podinfo", namespace)


def services(api: client.ApiClient, namespace: str) -> list[str]:
    return [s.metadata.name for s in client.CoreV1Api(api).list_namespaced_service(namespace).items]


def test_a_chart_syncs_resyncs_upgrades_and_prunes_from_the_cli(
    cluster: ClusterAccess, kube_api: client.ApiClient, namespace: str, repo: Path,  # noqa: F811
) -> None:
    chart_repo(repo, "replicaCount: 1\n")
    first = sync(cluster, repo, namespace)
    assert first["summary"]["created"] == 2, first["summary"]
    created = deployment(kube_api, namespace)
    assert created.spec.replicas == 1
    assert created.metadata.labels["app.kubernetes.io/name"] == "web-podinfo"
    assert services(kube_api, namespace) == ["web-podinfo"]
    pods = [pod.metadata.name for pod in client.CoreV1Api(kube_api).list_namespaced_pod(namespace).items]
    assert not [name for name in pods if "-test-" in name], f"a test hook was applied: {pods}"

    again = sync(cluster, repo, namespace)
    assert again["summary"]["unchanged"] == 2 and again["summary"]["configured"] == 0, again["summary"]
    assert deployment(kube_api, namespace).metadata.resource_version == created.metadata.resource_version

    commit(repo, {"env/web.yaml": "replicaCount: 2\n"})
    upgraded = sync(cluster, repo, namespace)
    assert upgraded["summary"]["configured"] == 1, upgraded["summary"]
    changed = deployment(kube_api, namespace)
    assert changed.spec.replicas == 2 and changed.metadata.uid == created.metadata.uid

    commit(repo, {"env/web.yaml": "replicaCount: 2\nservice:\n  enabled: false\n"})
    pruned = sync(cluster, repo, namespace)
    assert pruned["summary"]["deleted"] == 1, pruned["summary"]
    assert services(kube_api, namespace) == []
    assert deployment(kube_api, namespace).metadata.uid == created.metadata.uid


def test_an_app_renders_its_chart_with_values_from_its_namespace(
    installed: Kubectl, cluster: ClusterAccess, kube_api: client.ApiClient, namespace: str, repo: Path,  # noqa: F811
    run_daemon: Callable[..., subprocess.Popen[str]],  # noqa: F811
) -> None:
    kubectl = installed
    chart_repo(repo, "replicaCount: 1\n")
    grant_service_account(kube_api, namespace, "deployer")
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "web-values"},
                                                  "data": {"values.yaml": "ui:\n  message: from-configmap\n"}})
    run_daemon("--watch-namespace", namespace, "--require-service-account")
    helm = {"valuesFiles": ["../../env/web.yaml"], "values": {"ui": {"color": "#123456"}},
            "valuesFrom": [{"kind": "ConfigMap", "name": "web-values"},
                           {"kind": "Secret", "name": "web-secret-values", "optional": True}]}
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "web", repo=repo, path="charts/podinfo",
                                               serviceAccountName="deployer", helm=helm))
    head = git(repo, "rev-parse", "HEAD")
    eventually(lambda: kubectl.status(namespace, "web").get("lastAppliedRevision") == head, timeout=SLACK,
               what="the chart to be synced")

    def env() -> dict[str, str]:
        container = deployment(kube_api, namespace).spec.template.spec.containers[0]
        return {item.name: item.value for item in container.env or []}

    created = deployment(kube_api, namespace)
    assert env()["PODINFO_UI_MESSAGE"] == "from-configmap" and env()["PODINFO_UI_COLOR"] == "#123456"
    assert services(kube_api, namespace) == ["web-podinfo"]
    assert kubectl.status(namespace, "web")["inventory"] == {"size": 2}

    # A value read from the App's namespace changes: the next sync upgrades the Deployment.
    core.patch_namespaced_config_map("web-values", namespace,
                                     {"data": {"values.yaml": "ui:\n  message: changed\n"}})
    eventually(lambda: env().get("PODINFO_UI_MESSAGE") == "changed", timeout=SLACK,
               what="the new value to be applied")
    assert deployment(kube_api, namespace).metadata.uid == created.metadata.uid

    # A value in Git turns the Service off: it is pruned.
    commit(repo, {"env/web.yaml": "replicaCount: 1\nservice:\n  enabled: false\n"})
    eventually(lambda: services(kube_api, namespace) == [], timeout=SLACK, what="the Service to be pruned")
    assert kubectl.status(namespace, "web")["inventory"] == {"size": 1}

    # `diff --app` renders the chart as the daemon does (its values from the cluster, read as
    # the App's service account): nothing to change once the daemon synced.
    last = git(repo, "rev-parse", "HEAD")
    eventually(lambda: kubectl.status(namespace, "web").get("lastAppliedRevision") == last, timeout=SLACK,
               what="the last commit to be recorded")
    diff = syncer(cluster, "diff", "--app", "web", "-n", namespace)
    assert diff.returncode == 0, diff.stdout + diff.stderr


KUSTOMIZED_CHART = """\
helmCharts:
- name: podinfo
  releaseName: web
  valuesInline: {replicaCount: 1}
patches:
- target: {kind: Deployment, name: web-podinfo}
  patch: |
    - op: add
      path: /metadata/labels/team
      value: shop
"""


def test_an_app_syncs_a_kustomization_that_patches_a_chart(
    installed: Kubectl, cluster: ClusterAccess, kube_api: client.ApiClient, namespace: str, repo: Path,  # noqa: F811
    run_daemon: Callable[..., subprocess.Popen[str]],  # noqa: F811
) -> None:
    """Kustomize's helmCharts (Flux's post-render): the chart renders under syncer's rules,
    hooks left out, the patch applied; a changed value upgrades it, a resync writes nothing."""
    kubectl = installed
    shutil.copytree(PODINFO, repo / "web" / "charts" / "podinfo")
    commit(repo, {"web/kustomization.yaml": KUSTOMIZED_CHART}, "podinfo through kustomize")
    grant_service_account(kube_api, namespace, "deployer")
    run_daemon("--watch-namespace", namespace, "--require-service-account")
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "web", repo=repo, path="web", serviceAccountName="deployer"))
    head = git(repo, "rev-parse", "HEAD")
    eventually(lambda: kubectl.status(namespace, "web").get("lastAppliedRevision") == head, timeout=SLACK,
               what="the kustomized chart to be synced")
    created = deployment(kube_api, namespace)
    assert created.metadata.labels["team"] == "shop" and created.spec.replicas == 1
    assert services(kube_api, namespace) == ["web-podinfo"]
    pods = [pod.metadata.name for pod in client.CoreV1Api(kube_api).list_namespaced_pod(namespace).items]
    assert not [name for name in pods if "-test-" in name], f"a test hook was applied: {pods}"

    commit(repo, {"web/kustomization.yaml": KUSTOMIZED_CHART.replace("replicaCount: 1", "replicaCount: 2")})
    eventually(lambda: deployment(kube_api, namespace).spec.replicas == 2, timeout=SLACK,
               what="the new value to be applied")
    assert deployment(kube_api, namespace).metadata.uid == created.metadata.uid
    last = git(repo, "rev-parse", "HEAD")
    eventually(lambda: kubectl.status(namespace, "web").get("lastAppliedRevision") == last, timeout=SLACK,
               what="the last commit to be recorded")
    diff = syncer(cluster, "diff", "--app", "web", "-n", namespace)
    assert diff.returncode == 0, diff.stdout + diff.stderr
