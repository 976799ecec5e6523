"""Counterexamples the model-based test (test_model.py) found, shrunk to plain tests. Each names
the invariant it broke (see tests/e2e/model/checks.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kubernetes import client

from syncer.apply import ChangeSet, plan_sync, sync
from syncer.apply.status import OutcomeRecorder
from syncer.cli import cli
from syncer.errors import ClusterError, ValidationFailed
from syncer.kube import Kube
from tests.conftest import ClusterAccess
from tests.e2e.apps import configmap, connect, core_event, events_event, options, render_app, write_app
from tests.e2e.versions import skip_unless_served

pytestmark = pytest.mark.oldest

INGRESS_V1BETA1 = """
apiVersion: {api_version}
kind: Ingress
metadata: {{name: {name}}}
spec:
  rules:
  - host: {name}.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {{serviceName: web, servicePort: 80}}
"""
SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, protocol: TCP}]
"""
EXTERNAL_ENDPOINTS = """
apiVersion: v1
kind: Endpoints
metadata: {name: external}
subsets:
- addresses: [{ip: 10.0.0.1}]
  ports: [{port: 8080, protocol: TCP}]
"""


def changed(changes: ChangeSet) -> list[str]:
    """What a sync wrote to, as `action Kind/namespace/name`."""
    return [f"{c.action} {c.ref}" for c in changes.changes
            if str(c.action) in ("created", "configured", "recreated", "deleted")]


def uid(read: Callable[[], Any]) -> str | None:
    """The UID of the object `read` returns, None when there is none."""
    try:
        return str(read().metadata.uid)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


@dataclass(frozen=True)
class ServedTwice:
    """Two objects of one kind, "old" declared in one API group and "new" in another that
    serves the same objects, and how to read one back."""

    needs: tuple[str, ...]
    declare: Callable[[str], dict[str, str]]
    read: Callable[[client.ApiClient, str, str], Any]


SERVED_TWICE = [
    # Kubernetes 1.20 serves every Ingress under both groups (1.22 and later under neither).
    pytest.param(ServedTwice(
        needs=("extensions/v1beta1", "networking.k8s.io/v1beta1"),
        declare=lambda namespace: {
            "a.yaml": INGRESS_V1BETA1.format(api_version="extensions/v1beta1", name="old"),
            "b.yaml": INGRESS_V1BETA1.format(api_version="networking.k8s.io/v1beta1", name="new")},
        read=lambda api, namespace, name: client.NetworkingV1Api(api).read_namespaced_ingress(name, namespace),
    ), id="Ingress"),
    # Every supported version serves every Event under the core group and events.k8s.io.
    pytest.param(ServedTwice(
        needs=(),
        declare=lambda namespace: {"a.yaml": core_event("old", namespace), "b.yaml": events_event("new", namespace)},
        read=lambda api, namespace, name: client.CoreV1Api(api).read_namespaced_event(name, namespace),
    ), id="Event"),
]


@pytest.mark.parametrize("served", SERVED_TWICE)
def test_two_objects_declared_in_two_api_groups_are_never_pruned(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient, served_api_versions: frozenset[str],
    served: ServedTwice,
) -> None:
    skip_unless_served(served_api_versions, *served.needs)
    # Invariants nothing-foreign-deleted and resync-writes-nothing. Not a move (report 3): two
    # different objects, declared in two groups. The server serves each under both groups, so
    # each group-kind's prune listing found the other object, not desired under that group, and
    # deleted it; every later sync created and deleted them again.
    manifests = render_app(write_app(tmp_path / "app", served.declare(namespace)), namespace=namespace)
    settings = options("aliases", namespace)
    first = sync(kube, manifests, options=settings, revision="r1")
    assert first.ok, first.error
    reads = {name: (lambda name=name: served.read(kube_api, namespace, name)) for name in ("old", "new")}
    uids = {name: uid(read) for name, read in reads.items()}
    assert None not in uids.values()
    for _ in range(2):
        again = sync(kube, manifests, options=settings, revision="r1")
        assert again.ok, again.error
        assert changed(again) == []
    assert {name: uid(read) for name, read in reads.items()} == uids
    assert not plan_sync(kube, manifests, options=settings, revision="r1").has_changes


def test_endpoints_the_controller_writes_for_a_service_are_not_pruned(
    tmp_path: Path, kube: Kube, namespace: str, kube_api: client.ApiClient
) -> None:
    # Invariant resync-writes-nothing. The endpoints controller copies a Service's labels, the
    # app's `part-of` included, onto the Endpoints it writes. Once the app declares an Endpoints
    # object of its own (an external backend), Endpoints is a recorded group-kind, and every
    # sync pruned the controller's Endpoints of the app's Service (which the controller made
    # again): a sync that never settles, and a Service briefly without endpoints each time.
    app = write_app(tmp_path / "app", {"svc.yaml": SERVICE, "ep.yaml": EXTERNAL_ENDPOINTS})
    manifests = render_app(app, namespace=namespace)
    settings = options("endpoints", namespace)
    first = sync(kube, manifests, options=settings, revision="r1")
    assert first.ok, first.error
    def read() -> Any:
        return client.CoreV1Api(kube_api).read_namespaced_endpoints("web", namespace)

    made = None
    for _ in range(50):  # the controller writes them shortly after the Service appears
        made = uid(read)
        if made:
            break
        time.sleep(0.1)
    assert made, "the endpoints controller wrote no Endpoints for the Service"
    second = sync(kube, manifests, options=settings, revision="r1")
    assert second.ok, second.error
    assert changed(second) == []
    assert uid(read) == made
    assert not plan_sync(kube, manifests, options=settings, revision="r1").has_changes


def test_a_second_refused_first_sync_keeps_the_parent_recognisable(
    tmp_path: Path, cluster: ClusterAccess, namespace: str, kube_api: client.ApiClient
) -> None:
    # Invariant ownership-stays (an ApplySet parent keeps its id). An app whose very first sync
    # is refused gets a parent made by the daemon's status writer, with the ApplySet id and
    # tooling. The next refused sync applied the status without them, under the same field
    # manager, which removed both: the parent was no longer the app's (`syncer status` no
    # longer listed it). A CLI sync that fails validation writes nothing at all.
    app = write_app(tmp_path / "app", {"bad.yaml": "apiVersion: v1\nkind: Nope\nmetadata: {name: x}\n"})
    args = ["sync", "--repo", str(app), "--name", "refused", "--namespace", namespace,
            "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context]
    assert CliRunner().invoke(cli, args).exit_code == 2
    assert configmap(kube_api, namespace, "syncer-refused") is None, "a refused CLI sync wrote its status"
    kube = connect(cluster.kubeconfig, cluster.context)
    try:
        for attempt in range(2):  # two daemon ticks (or restarts), each its own recorder
            recorder = OutcomeRecorder(kube, app="refused", namespace=namespace)
            assert recorder.record_failure(revision="r1", error=ValidationFailed([
                ClusterError(f"Nope/{namespace}/x{attempt}", "unknown kind")]))
            parent = configmap(kube_api, namespace, "syncer-refused")
            assert parent is not None
            assert (parent.metadata.labels or {}).get("applyset.kubernetes.io/id", "").startswith("applyset-"), attempt
            assert (parent.metadata.annotations or {}).get("applyset.kubernetes.io/tooling", "").startswith("syncer/"), attempt
    finally:
        kube.close()



INGRESS_V1 = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}}}
spec:
  rules:
  - host: {name}.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {{service: {{name: web, port: {{number: 80}}}}}}
"""


def test_ingresses_declared_in_two_versions_of_one_group_are_compared_in_their_own(
    tmp_path: Path, kube: Kube, namespace: str, served_api_versions: frozenset[str]
) -> None:
    skip_unless_served(served_api_versions, "networking.k8s.io/v1beta1")
    # Invariant resync-writes-nothing. The server serves every Ingress under both
    # networking.k8s.io/v1 and v1beta1; the plan listed both versions and kept, for each
    # Ingress, whichever list it read last, so one of the two was compared in the other
    # version (the diff showed `backend.service` against `serviceName`) and configured again
    # on every sync.
    settings = options("versions", namespace)
    manifests = render_app(write_app(tmp_path / "app", {
        "new.yaml": INGRESS_V1.format(name="new"),
        "old.yaml": INGRESS_V1BETA1.format(api_version="networking.k8s.io/v1beta1", name="old"),
    }), namespace=namespace)
    assert sync(kube, manifests, options=settings, revision="r1").ok
    plan = plan_sync(kube, manifests, options=settings, revision="r1")
    assert {ref.name: planned.live["apiVersion"] for ref, planned in plan.objects.items() if planned.live} == {
        "new": "networking.k8s.io/v1", "old": "networking.k8s.io/v1beta1"}
    assert not plan.has_changes
    again = sync(kube, manifests, options=settings, revision="r1")
    assert changed(again) == [], again.to_dict()
