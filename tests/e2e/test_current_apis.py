"""APIs a current server serves that Kubernetes 1.20 does not: each syncs, resyncs writing
nothing and diffs clean on a current server, and is refused at plan time on 1.20, naming the
object, its file:line and what the server lacks. And the APIService: a current server
server-side applies it (the 1.20 update fallback, tests/e2e/test_apiservice_fallback.py, is
used only where the server needs it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kubernetes import client

from syncer.apply import sync
from syncer.apply.updateapply import LAST_APPLIED_ANNOTATION
from syncer.cli import cli
from syncer.errors import ValidationFailed
from syncer.kube import Kube
from syncer.model import Action
from tests.conftest import ClusterAccess
from tests.e2e.apps import options, render_app, write_app
from tests.e2e.versions import before, needs

pytestmark = pytest.mark.oldest
"""Also run on Kubernetes 1.20, the oldest leg of scripts/test: what differs there is tested there."""

POD = """\
        spec:
          restartPolicy: Never
          containers:
          - name: job
            image: busybox
            command: [sh, -c, 'true']
"""

CURRENT = {
    "cronjob": ("batch", "v1", "CronJob", "nightly", f"""\
# batch/v1 since Kubernetes 1.21
apiVersion: batch/v1
kind: CronJob
metadata: {{name: nightly}}
spec:
  schedule: "*/30 * * * *"
  suspend: true
  jobTemplate:
    spec:
      template:
{POD}"""),
    "pdb": ("policy", "v1", "PodDisruptionBudget", "web", """\
# policy/v1 since Kubernetes 1.21
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
"""),
    "hpa": ("autoscaling", "v2", "HorizontalPodAutoscaler", "web", """\
# autoscaling/v2 since Kubernetes 1.23
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 60}
"""),
    "grpc-probe": ("apps", "v1", "Deployment", "grpc", """\
# container grpc probes since Kubernetes 1.24 (GA in 1.27)
apiVersion: apps/v1
kind: Deployment
metadata: {name: grpc}
spec:
  replicas: 0
  selector: {matchLabels: {app: grpc}}
  template:
    metadata: {labels: {app: grpc}}
    spec:
      containers:
      - name: server
        image: registry.k8s.io/etcd:3.5.1-0
        ports: [{containerPort: 2379}]
        livenessProbe:
          grpc: {port: 2379}
          initialDelaySeconds: 10
        readinessProbe:
          grpc: {port: 2379, service: readiness}
"""),
}


def written(kube: Kube, case: tuple[str, str, str, str, str], namespace: str) -> tuple[Any, Any]:
    """What only a write of the object's spec or syncer's fields changes: its generation and
    syncer's managedFields entry (controllers write the status, and its resourceVersion, on
    their own schedule)."""
    group, version, kind, name, _ = case
    path = kube.resource_for(f"{group}/{version}", kind).path(namespace=namespace, name=name)
    obj = kube.request("GET", path, subject=f"{kind}/{namespace}/{name}", verb="get")
    metadata = obj["metadata"]
    return metadata["generation"], [e for e in metadata["managedFields"] if e["manager"] == "syncer"]


@pytest.mark.parametrize("case", list(CURRENT), ids=list(CURRENT))
def test_a_current_api_syncs_resyncs_without_writes_and_diffs_clean(
    case: str, tmp_path: Path, kube: Kube, kube_api: client.ApiClient, namespace: str, cluster: ClusterAccess,
) -> None:
    needs(kube, (1, 27), "batch/v1 CronJob, policy/v1 PodDisruptionBudget, autoscaling/v2 and GA grpc probes")
    group, version, kind, name, text = CURRENT[case]
    app = write_app(tmp_path / "app", {f"{case}.yaml": text})
    first = sync(kube, render_app(app, namespace=namespace), options=options("current", namespace), revision="r1")
    assert first.error is None
    assert [(str(c.ref), c.action) for c in first.changes] == [(f"{kind}/{namespace}/{name}", Action.CREATED)]
    created = written(kube, CURRENT[case], namespace)

    kube.stats.by_verb.clear()
    again = sync(kube, render_app(app, namespace=namespace), options=options("current", namespace), revision="r1")
    assert [c.action for c in again.changes] == [Action.UNCHANGED]
    writes = {verb: n for verb, n in kube.stats.by_verb.items() if verb not in ("get", "list", "discovery")}
    assert writes == {}, "a resync sends no write (nor a dry-run)"
    assert written(kube, CURRENT[case], namespace) == created

    result = CliRunner().invoke(cli, ["diff", "--repo", str(app), "--name", "current", "-n", namespace,
                                      "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context])
    assert result.exit_code == 0, result.stdout + result.stderr
    if case == "grpc-probe":
        deployment = client.AppsV1Api(kube_api).read_namespaced_deployment(name, namespace)
        assert deployment.spec.template.spec.containers[0].readiness_probe.grpc.service == "readiness"


REFUSED_ON_1_20 = {
    "cronjob": "batch/v1 CronJob is not served by this API server (Kubernetes 1.20",
    "pdb": "policy/v1 PodDisruptionBudget is not served by this API server (Kubernetes 1.20",
    "hpa": "autoscaling/v2 HorizontalPodAutoscaler is not served by this API server (Kubernetes 1.20",
    "grpc-probe": "grpc",
}


@pytest.mark.parametrize("case", list(CURRENT), ids=list(CURRENT))
def test_a_current_api_is_refused_by_kubernetes_1_20_naming_object_and_file_line(
    case: str, tmp_path: Path, kube: Kube, kube_api: client.ApiClient, namespace: str,
) -> None:
    before(kube, (1, 21), "the APIs here are not served before 1.21-1.24")
    group, version, kind, name, text = CURRENT[case]
    app = write_app(tmp_path / "app", {
        "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n", f"{case}.yaml": text})
    with pytest.raises(ValidationFailed) as refused:
        sync(kube, render_app(app, namespace=namespace), options=options("old", namespace), revision="r1")
    [failure] = refused.value.failures
    assert failure.subject == f"{kind}/{namespace}/{name}"
    assert REFUSED_ON_1_20[case] in failure.message and f"({case}.yaml:2)" in failure.message
    names = {c.metadata.name for c in client.CoreV1Api(kube_api).list_namespaced_config_map(namespace).items}
    assert names <= {"kube-root-ca.crt"}, "nothing was written, not even the inventory"


APISERVICE = """\
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: {name}}}
spec:
  group: current.syncer.test
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: {priority}
  insecureSkipTLSVerify: true
  service: {{name: backend, namespace: {namespace}}}
"""
APISERVICE_NAME = "v1beta1.current.syncer.test"


@pytest.fixture
def apiservice_removed(kube_api: client.ApiClient) -> Iterator[None]:
    """An APIService whose backend does not exist makes the group's discovery fail: it is
    deleted after the test."""
    yield
    try:
        client.ApiregistrationV1Api(kube_api).delete_api_service(APISERVICE_NAME)
    except client.ApiException as error:
        if error.status != 404:
            raise


def test_a_current_server_server_side_applies_an_apiservice(
    tmp_path: Path, kube: Kube, kube_api: client.ApiClient, namespace: str, apiservice_removed: None,
) -> None:
    needs(kube, (1, 21), "the kube-aggregator has a field manager since 1.21 (kubernetes#98576)")
    app = write_app(tmp_path / "app", {"apiservice.yaml": APISERVICE.format(
        name=APISERVICE_NAME, priority=100, namespace=namespace)})
    changes = sync(kube, render_app(app, namespace=namespace), options=options("aggregated", namespace), revision="r1")
    assert changes.error is None and changes.warnings == []
    live = client.ApiregistrationV1Api(kube_api).read_api_service(APISERVICE_NAME)
    by_syncer = [(entry.manager, entry.operation) for entry in live.metadata.managed_fields
                 if entry.manager == "syncer"]
    assert by_syncer == [("syncer", "Apply")], "applied, not updated"
    assert LAST_APPLIED_ANNOTATION not in (live.metadata.annotations or {})

    write_app(app, {"apiservice.yaml": APISERVICE.format(name=APISERVICE_NAME, priority=20, namespace=namespace)})
    changed = sync(kube, render_app(app, namespace=namespace), options=options("aggregated", namespace), revision="r2")
    assert [c.action for c in changed.changes if c.ref.kind == "APIService"] == [Action.CONFIGURED]
    after = client.ApiregistrationV1Api(kube_api).read_api_service(APISERVICE_NAME)
    assert after.spec.version_priority == 20 and after.metadata.uid == live.metadata.uid
    assert [(e.manager, e.operation) for e in after.metadata.managed_fields if e.manager == "syncer"] == [
        ("syncer", "Apply")]
