"""Ignore rules: parsing the app config, matching objects, removing the ignored fields."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from syncer.diff import IGNORE_ANNOTATION, IgnoreRule, apply_ignores, parse_ignore_rules, rules_for
from syncer.errors import ConfigError
from syncer.model import ObjectRef

WEB = ObjectRef(group="apps", kind="Deployment", namespace="shop", name="web")


def test_parse_ignore_rules_argo_cd_field_names() -> None:
    raw = [
        {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]},
        {"kind": "ConfigMap", "name": "generated", "namespace": "shop",
         "managedFieldsManagers": ["kube-controller-manager"]},
    ]
    assert parse_ignore_rules(raw, where="apps/shop.yaml") == [
        IgnoreRule(kind="Deployment", group="apps", json_pointers=("/spec/replicas",)),
        IgnoreRule(kind="ConfigMap", name="generated", namespace="shop",
                   managed_fields_managers=("kube-controller-manager",)),
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"kind": "Deployment"}, "apps/shop.yaml: ignoreDifferences: must be a list"),
        (["Deployment"], "apps/shop.yaml: ignoreDifferences[0]: must be a mapping"),
        ([{"jsonPointers": ["/spec/replicas"]}], "ignoreDifferences[0].kind: required"),
        ([{"kind": "Deployment", "jsonPointers": "/spec/replicas"}],
         "ignoreDifferences[0].jsonPointers: must be a list"),
        ([{"kind": "Deployment", "jsonPointers": ["/a"]}, {"kind": "Service", "jsonPointers": ["spec/ports"]}],
         "ignoreDifferences[1].jsonPointers[0]: 'spec/ports' is not a JSON pointer"),
        ([{"kind": "Deployment", "jsonPointer": ["/spec/replicas"]}],
         "ignoreDifferences[0]: unknown field(s) jsonPointer"),
        ([{"kind": "Deployment", "jqPathExpressions": [".spec"]}],
         "ignoreDifferences[0].jqPathExpressions: not supported; use jsonPointers"),
        ([{"kind": "Deployment"}], "ignoreDifferences[0]: ignores nothing"),
        ([{"kind": "Deployment", "managedFieldsManagers": [""]}],
         "ignoreDifferences[0].managedFieldsManagers: must be a list of non-empty strings"),
        ([{"kind": "Deployment", "name": 3, "jsonPointers": ["/a"]}], "ignoreDifferences[0].name: must be"),
        ([{"kind": "Deployment", "group": None, "jsonPointers": ["/a"]}], "ignoreDifferences[0].group: must be"),
    ],
)
def test_parse_ignore_rules_errors_name_the_config_and_entry(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_ignore_rules(raw, where="apps/shop.yaml")
    assert str(caught.value).startswith("apps/shop.yaml: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("rule", "matches"),
    [
        (IgnoreRule(kind="Deployment", group="apps"), True),
        (IgnoreRule(kind="Deployment"), False),  # core group
        (IgnoreRule(kind="Deployment", group="*"), True),
        (IgnoreRule(kind="*", group="*", namespace="shop"), True),
        (IgnoreRule(kind="Deployment", group="apps", name="api"), False),
        (IgnoreRule(kind="Deployment", group="apps", name="web", namespace="other"), False),
        (IgnoreRule(kind="StatefulSet", group="apps"), False),
    ],
)
def test_rules_for_matches_group_kind_name_namespace(rule: IgnoreRule, matches: bool) -> None:
    assert rules_for(WEB, None, [rule]) == ([rule] if matches else [])


def test_rules_for_adds_the_objects_own_annotation() -> None:
    desired = {"metadata": {"name": "web", "annotations": {IGNORE_ANNOTATION: "/spec/replicas, /data/generated ,"}}}
    assert rules_for(WEB, desired, []) == [
        IgnoreRule(kind="Deployment", group="apps", name="web", namespace="shop",
                   json_pointers=("/spec/replicas", "/data/generated")),
    ]


def test_rules_for_rejects_a_bad_annotation_naming_the_object() -> None:
    desired = {"metadata": {"annotations": {IGNORE_ANNOTATION: "spec.replicas"}}}
    with pytest.raises(ConfigError, match=r"^Deployment/shop/web: annotation syncer.dev/ignore-differences: "
                                          r"'spec.replicas' is not a JSON pointer"):
        rules_for(WEB, desired, [])


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "labels": {"app": "web", "team": "payments"},
            "annotations": {"example.com/build": "42"},
            "managedFields": [
                {"manager": "syncer", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}},
                              "f:spec": {"f:template": {"f:spec": {"f:containers": {
                                  'k:{"name":"web"}': {".": {}, "f:name": {}, "f:image": {}}}}}}}},
                {"manager": "kubectl-label", "operation": "Update", "apiVersion": "apps/v1",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:team": {}}}}},
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "autoscaling/v1",
                 "subresource": "scale", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                {"manager": "istio-sidecar-injector", "operation": "Update", "apiVersion": "apps/v1",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                     'k:{"name":"istio-proxy"}': {".": {}, "f:name": {}, "f:image": {}}}}}}}},
            ],
        },
        "spec": {
            "replicas": 5,
            "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:1.25"},
                {"name": "istio-proxy", "image": "istio/proxyv2:1.20"},
            ]}},
        },
    }


def without(obj: dict[str, Any], *path: str | int) -> dict[str, Any]:
    result = copy.deepcopy(obj)
    parent: Any = result
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return result


LIVE = deployment()
PROXY = ("spec", "template", "spec", "containers", 1)


@pytest.mark.parametrize(
    ("rule", "want"),
    [
        pytest.param(IgnoreRule(kind="Deployment", json_pointers=("/spec/replicas",)),
                     without(LIVE, "spec", "replicas"), id="pointer"),
        pytest.param(IgnoreRule(kind="Deployment", json_pointers=("/metadata/annotations/example.com~1build",)),
                     without(LIVE, "metadata", "annotations"), id="escaped-pointer-and-emptied-map"),
        pytest.param(IgnoreRule(kind="Deployment", json_pointers=("/spec/template/spec/containers/1",
                                                                  "/spec/template/spec/containers/0/image")),
                     without(without(LIVE, *PROXY), "spec", "template", "spec", "containers", 0, "image"),
                     id="list-indices"),
        pytest.param(IgnoreRule(kind="Deployment", json_pointers=("/spec/paused", "/spec/template/spec/containers/9",
                                                                  "/spec/replicas/x")),
                     LIVE, id="missing-paths-are-fine"),
        pytest.param(IgnoreRule(kind="Deployment", managed_fields_managers=("kube-controller-manager",)),
                     without(LIVE, "spec", "replicas"), id="hpa-replicas-by-manager"),
        pytest.param(IgnoreRule(kind="Deployment", managed_fields_managers=("kubectl-label",)),
                     without(LIVE, "metadata", "labels", "team"), id="manager-owned-label-only"),
        pytest.param(IgnoreRule(kind="Deployment", managed_fields_managers=("istio-sidecar-injector",)),
                     without(LIVE, *PROXY), id="injected-container-as-a-whole"),
    ],
)
def test_apply_ignores(rule: IgnoreRule, want: dict[str, Any]) -> None:
    assert apply_ignores(LIVE, rules=[rule], live=LIVE) == want


def test_manager_fields_are_resolved_in_the_predicted_object_by_key() -> None:
    # In the prediction the injected container comes first; it is found by its name, not index.
    predicted = copy.deepcopy(LIVE)
    containers = predicted["spec"]["template"]["spec"]["containers"]
    containers.reverse()
    containers[1]["image"] = "nginx:1.26"
    rule = IgnoreRule(kind="Deployment", managed_fields_managers=("istio-sidecar-injector",))
    result = apply_ignores(predicted, rules=[rule], live=LIVE)
    assert result["spec"]["template"]["spec"]["containers"] == [{"name": "web", "image": "nginx:1.26"}]


def test_apply_ignores_does_not_modify_its_input() -> None:
    live = deployment()
    apply_ignores(live, rules=[IgnoreRule(kind="*", json_pointers=("/spec/replicas",),
                                          managed_fields_managers=("kubectl-label",))], live=live)
    assert live == deployment()
