"""Ownership from managedFields: what syncer removes, and when an apply provably changes nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from syncer.diff import FieldSet, is_subset, owned_fields, proven_unchanged, removed_paths

# What `syncer` applied: labels app/tier, one container with two env vars, a port and limits.
DESIRED = yaml.safe_load(
    """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app: web
    tier: frontend
    app.kubernetes.io/part-of: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 8080
          name: http
          protocol: TCP
        env:
        - {name: DEBUG, value: "1"}
        - {name: LOG_LEVEL, value: info}
        resources:
          limits: {memory: 256Mi}
      volumes:
      - name: cache
        emptyDir: {}
"""
)

# The same Deployment as the API server returns it: defaults, status, other managers' fields
# (a label from `kubectl label`, replicas from an HPA through the scale subresource).
LIVE = yaml.safe_load(
    """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  uid: 6d0c3f7e-2a4b-4f0e-9d3c-1b2a3c4d5e6f
  resourceVersion: "48213"
  generation: 4
  creationTimestamp: "2024-03-01T10:00:00Z"
  labels:
    app: web
    tier: frontend
    app.kubernetes.io/part-of: shop
    team: payments
  annotations:
    deployment.kubernetes.io/revision: "3"
  managedFields:
  - manager: syncer
    operation: Apply
    apiVersion: apps/v1
    time: "2024-03-01T10:00:00Z"
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata:
        f:labels:
          f:app: {}
          f:app.kubernetes.io/part-of: {}
          f:tier: {}
      f:spec:
        f:selector: {}
        f:template:
          f:metadata:
            f:labels:
              f:app: {}
          f:spec:
            f:containers:
              k:{"name":"web"}:
                .: {}
                f:env:
                  k:{"name":"DEBUG"}:
                    .: {}
                    f:name: {}
                    f:value: {}
                  k:{"name":"LOG_LEVEL"}:
                    .: {}
                    f:name: {}
                    f:value: {}
                f:image: {}
                f:name: {}
                f:ports:
                  k:{"containerPort":8080,"protocol":"TCP"}:
                    .: {}
                    f:containerPort: {}
                    f:name: {}
                    f:protocol: {}
                f:resources:
                  f:limits:
                    f:memory: {}
            f:volumes:
              k:{"name":"cache"}:
                .: {}
                f:emptyDir: {}
                f:name: {}
  - manager: kubectl-label
    operation: Update
    apiVersion: apps/v1
    time: "2024-03-02T09:00:00Z"
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata:
        f:labels:
          f:team: {}
  - manager: kube-controller-manager
    operation: Update
    apiVersion: autoscaling/v1
    time: "2024-03-02T09:30:00Z"
    fieldsType: FieldsV1
    subresource: scale
    fieldsV1:
      f:spec:
        f:replicas: {}
  - manager: kube-controller-manager
    operation: Update
    apiVersion: apps/v1
    time: "2024-03-02T09:30:05Z"
    fieldsType: FieldsV1
    subresource: status
    fieldsV1:
      f:metadata:
        f:annotations:
          .: {}
          f:deployment.kubernetes.io/revision: {}
      f:status:
        f:availableReplicas: {}
        f:replicas: {}
spec:
  replicas: 5
  revisionHistoryLimit: 10
  progressDeadlineSeconds: 600
  selector:
    matchLabels: {app: web}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}
  template:
    metadata:
      creationTimestamp: null
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        imagePullPolicy: IfNotPresent
        ports:
        - containerPort: 8080
          name: http
          protocol: TCP
        env:
        - {name: DEBUG, value: "1"}
        - {name: LOG_LEVEL, value: info}
        resources:
          limits: {memory: 256Mi}
        terminationMessagePath: /dev/termination-log
        terminationMessagePolicy: File
      volumes:
      - name: cache
        emptyDir: {}
      dnsPolicy: ClusterFirst
      restartPolicy: Always
      schedulerName: default-scheduler
      securityContext: {}
      terminationGracePeriodSeconds: 30
status:
  availableReplicas: 5
  replicas: 5
"""
)

CONTAINER = ("spec", "template", "spec", "containers", 0)


def edited(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    obj: dict[str, Any] = copy.deepcopy(DESIRED)
    change(obj)
    return obj


def container(obj: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return result


def test_owned_fields_is_the_managers_apply_entry() -> None:
    owned = owned_fields(LIVE, "syncer")
    assert owned is not None
    assert set(owned) == {"f:metadata", "f:spec"}
    assert owned["f:metadata"]["f:labels"] == {"f:app": {}, "f:app.kubernetes.io/part-of": {}, "f:tier": {}}


@pytest.mark.parametrize(
    ("manager", "operation", "subresource"),
    [
        ("kubectl-label", "Update", None),  # owns a label, but by update
        ("syncer", "Update", None),  # same name, not an apply
        ("syncer", "Apply", "status"),  # an apply of the status subresource is not the object
        ("someone-else", "Apply", None),
    ],
)
def test_owned_fields_none_without_an_apply_of_the_object(
    manager: str, operation: str, subresource: str | None
) -> None:
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:paused": {}}},
    }
    if subresource:
        entry["subresource"] = subresource
    live = {"metadata": {"name": "web", "managedFields": [entry]}}
    assert owned_fields(live, "syncer") is None


def test_owned_fields_merges_entries_of_several_api_versions() -> None:
    live = {
        "metadata": {
            "managedFields": [
                {"manager": "syncer", "operation": "Apply", "apiVersion": "v1beta1",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:a": {}}}},
                {"manager": "syncer", "operation": "Apply", "apiVersion": "v1",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:b": {}}}},
            ]
        }
    }
    assert owned_fields(live, "syncer") == {"f:spec": {"f:a": {}, "f:b": {}}}


OWNED = owned_fields(LIVE, "syncer")
ENV = ".spec.template.spec.containers[name=web].env"


@pytest.mark.parametrize(
    ("desired", "want"),
    [
        pytest.param(DESIRED, [], id="as-applied"),
        pytest.param(
            edited(lambda o: container(o)["env"].pop(0)), [f"{ENV}[name=DEBUG]"], id="env-var-dropped"
        ),
        pytest.param(
            edited(lambda o: container(o).pop("env")),
            [f"{ENV}[name=DEBUG]", f"{ENV}[name=LOG_LEVEL]"],
            id="all-env-dropped",
        ),
        pytest.param(
            edited(lambda o: o["metadata"]["labels"].pop("tier")), [".metadata.labels.tier"], id="label-dropped"
        ),
        pytest.param(
            edited(lambda o: o["metadata"]["labels"].pop("app.kubernetes.io/part-of")),
            ['.metadata.labels["app.kubernetes.io/part-of"]'],
            id="label-with-dots-quoted",
        ),
        pytest.param(
            edited(lambda o: container(o).pop("resources")),
            [".spec.template.spec.containers[name=web].resources.limits.memory"],
            id="map-listed-by-leaf",
        ),
        pytest.param(
            edited(lambda o: container(o).update(name="app")),
            [".spec.template.spec.containers[name=web]"],
            id="list-item-renamed",
        ),
        pytest.param(
            edited(lambda o: container(o)["ports"][0].pop("protocol")), [], id="port-protocol-defaults-to-tcp"
        ),
        pytest.param(
            edited(lambda o: container(o)["ports"][0].update(protocol="UDP")),
            [".spec.template.spec.containers[name=web].ports[containerPort=8080,protocol=TCP]"],
            id="port-protocol-changed",
        ),
        pytest.param(
            edited(lambda o: container(o)["env"][0].update(value=None)),
            [f"{ENV}[name=DEBUG].value"],
            id="null-counts-as-unset",
        ),
        pytest.param(
            edited(lambda o: o["spec"]["template"]["spec"]["volumes"][0].pop("emptyDir")),
            [".spec.template.spec.volumes[name=cache].emptyDir"],
            id="empty-map-leaf",
        ),
        # Not syncer's: a label set with `kubectl label`, replicas set by the HPA.
        pytest.param(edited(lambda o: None), [], id="other-managers-fields-absent-from-git"),
    ],
)
def test_removed_paths(desired: dict[str, Any], want: list[str]) -> None:
    assert OWNED is not None
    assert removed_paths(desired, OWNED) == want


def test_removed_paths_set_items_and_indices() -> None:
    owned: FieldSet = {
        "f:metadata": {"f:finalizers": {'v:"example.com/protect"': {}, 'v:"example.com/audit"': {}}},
        "f:spec": {"f:args": {"i:1": {}}},
    }
    desired = {"metadata": {"finalizers": ["example.com/audit"]}, "spec": {"args": ["only-one"]}}
    assert removed_paths(desired, owned) == [
        ".metadata.finalizers[example.com/protect]",
        ".spec.args[1]",
    ]


@pytest.mark.parametrize(
    ("desired", "live", "want"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": 0.5}, {"a": 0.5}, True),
        ({"a": True}, {"a": 1}, False),
        ({"a": "1"}, {"a": 1}, False),
        ({"a": {"b": {"c": "x"}}}, {"a": {"b": {"c": "x", "d": "y"}}}, True),
        ({"a": {"b": "x"}}, {"a": "x"}, False),
        ({"a": 1}, {}, False),
        ({"a": None}, {}, True),
        ({"a": None}, {"a": 1}, False),
        ({"l": [{"name": "x"}]}, {"l": [{"name": "x", "default": 1}]}, True),
        ({"l": [1, 2]}, {"l": [2, 1]}, False),
        ({"l": [1]}, {"l": [1, 2]}, False),
        ({"cpu": "500m"}, {"cpu": "0.5"}, False),
        ({"emptyDir": {}}, {"emptyDir": {}}, True),
    ],
)
def test_is_subset(desired: dict[str, Any], live: dict[str, Any], want: bool) -> None:
    assert is_subset(desired, live) is want


@pytest.mark.parametrize(
    ("desired", "manager", "want"),
    [
        pytest.param(DESIRED, "syncer", True, id="defaults-status-and-others-fields-are-no-change"),
        pytest.param(edited(lambda o: container(o).update(image="nginx:1.26")), "syncer", False, id="image-changed"),
        pytest.param(edited(lambda o: container(o)["env"].pop(0)), "syncer", False, id="owned-env-removed"),
        pytest.param(edited(lambda o: o["spec"].update(replicas=5.0)), "syncer", True, id="equal-float-replicas"),
        pytest.param(edited(lambda o: o["spec"].update(replicas=3)), "syncer", False, id="replicas-differ-from-hpa"),
        pytest.param(
            edited(lambda o: o["metadata"]["labels"].update(team="payments")), "syncer", True, id="others-label-equal"
        ),
        pytest.param(
            edited(lambda o: container(o)["resources"]["limits"].update(memory="0.25Gi")),
            "syncer",
            False,
            id="quantity-left-to-dry-run",
        ),
        pytest.param(edited(lambda o: o.update(status={"replicas": 1})), "syncer", True, id="status-in-git-ignored"),
        pytest.param(DESIRED, "argocd-controller", False, id="manager-owns-nothing-yet"),
    ],
)
def test_proven_unchanged(desired: dict[str, Any], manager: str, want: bool) -> None:
    assert proven_unchanged(desired, LIVE, manager=manager) is want
