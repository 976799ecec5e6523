"""normalize(): server-managed noise goes, content stays."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from syncer.diff import normalize, without_paths


def configmap(**metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "shop", **metadata},
        "data": {"mode": "fast"},
    }


SERVER_NOISE = {
    "uid": "0b4f2c1e-9a7d-4c55-8e0f-3d2b1a0c9e8f",
    "resourceVersion": "91234",
    "generation": 2,
    "creationTimestamp": "2024-03-01T10:00:00Z",
    "selfLink": "/api/v1/namespaces/shop/configmaps/settings",
    "deletionGracePeriodSeconds": 30,
    "managedFields": [
        {"manager": "syncer", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:data": {"f:mode": {}}}}
    ],
}


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        pytest.param(configmap(**SERVER_NOISE), configmap(), id="server-metadata"),
        pytest.param({**configmap(), "status": {"phase": "Active"}}, configmap(), id="top-level-status"),
        pytest.param(
            configmap(annotations={
                "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"mode":"fast"}}',
                "deprecated.daemonset.template.generation": "4",
            }),
            configmap(),
            id="noise-annotations-and-emptied-map",
        ),
        pytest.param(
            configmap(annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "a"}),
            configmap(annotations={"team": "a"}),
            id="other-annotations-kept",
        ),
        pytest.param(configmap(labels={}, annotations={}), configmap(), id="empty-labels-annotations"),
        pytest.param(configmap(labels=None), configmap(), id="null-labels"),
        pytest.param(configmap(creationTimestamp=None), configmap(), id="kubectl-create-null-timestamp"),
        pytest.param(
            {"kind": "Pod", "metadata": {"name": "p"},
             "spec": {"volumes": [{"name": "cache", "emptyDir": {}}], "nodeSelector": None}},
            {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"volumes": [{"name": "cache", "emptyDir": {}}]}},
            id="meaningful-empty-map-kept-null-dropped",
        ),
        pytest.param(
            {"kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"metadata": {"creationTimestamp": None}}}},
            {"kind": "Job", "metadata": {"name": "j"}},
            id="map-emptied-by-nulls-goes",
        ),
        pytest.param(
            {"kind": "X", "metadata": {"name": "x"}, "spec": {"status": {"ready": True}}},
            {"kind": "X", "metadata": {"name": "x"}, "spec": {"status": {"ready": True}}},
            id="nested-status-is-content",
        ),
    ],
)
def test_normalize(obj: dict[str, Any], want: dict[str, Any]) -> None:
    assert normalize(obj) == want


def test_normalize_does_not_touch_its_input() -> None:
    live = configmap(**SERVER_NOISE)
    before = copy.deepcopy(live)
    normalize(live)["data"]["mode"] = "slow"
    assert live == before


@pytest.mark.parametrize(
    ("paths", "want"),
    [
        ([("spec", "replicas")], {"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}}),
        ([("spec", "template", "spec", "containers", 0), ("spec", "template", "spec", "containers", 1)],
         {"spec": {"replicas": 2}}),
        ([("spec", "nope"), ("spec", "replicas", "deeper"), ("spec", "template", "spec", "containers", 7)],
         {"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}}),
    ],
    ids=["key", "indices-do-not-shift-and-leftovers-go", "missing-paths-skipped"],
)
def test_without_paths(paths: list[tuple[str | int, ...]], want: dict[str, Any]) -> None:
    obj = {"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}}
    assert without_paths(obj, paths) == want
