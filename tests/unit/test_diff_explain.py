"""explain(): the cause of each field that differs, from managedFields and the last apply."""

from __future__ import annotations

import json
from typing import Any

import pytest

from syncer.diff import Cause, FieldChange, explain
from syncer.diff.compare import changed_paths
from syncer.diff.structural import differing
from syncer.diff.explain import Owner, owned_paths, ownership, render_path
from syncer.diff.normalize import normalize

EDIT_TIME, SCALE_TIME, SYNC_TIME = "2026-12-02T13:05:00Z", "2026-12-02T13:10:00Z", "2026-12-02T13:00:00Z"
WEB = 'k:{"name":"web"}'


def entry(manager: str, fields: dict[str, Any], *, operation: str = "Update", time: str | None = SYNC_TIME,
          subresource: str = "") -> dict[str, Any]:
    data: dict[str, Any] = {"manager": manager, "operation": operation, "apiVersion": "apps/v1",
                            "fieldsType": "FieldsV1", "fieldsV1": fields}
    if time is not None:
        data["time"] = time
    if subresource:
        data["subresource"] = subresource
    return data


def syncer_fields(*, replicas: bool = True, image: bool = True, tier: bool = True) -> dict[str, Any]:
    container: dict[str, Any] = {".": {}, "f:name": {}, **({"f:image": {}} if image else {})}
    spec: dict[str, Any] = {"f:selector": {}, "f:template": {"f:spec": {"f:containers": {WEB: container}}}}
    if replicas:
        spec["f:replicas"] = {}
    return {"f:metadata": {"f:labels": {"f:app": {}, **({"f:tier": {}} if tier else {})}}, "f:spec": spec}


def deployment(*, replicas: int = 1, image: str = "nginx:1.25", tier: bool = True,
               managed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    labels = {"app": "web", **({"tier": "frontend"} if tier else {})}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": labels, "uid": "u1", "resourceVersion": "7",
                     "annotations": {"deployment.kubernetes.io/revision": "1"},
                     "managedFields": managed if managed is not None else [
                         entry("syncer", syncer_fields(), operation="Apply"),
                         entry("kube-controller-manager", {"f:metadata": {"f:annotations": {
                             ".": {}, "f:deployment.kubernetes.io/revision": {}}}}, subresource="status")]},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                 "template": {"spec": {"containers": [{"name": "web", "image": image,
                                                       "imagePullPolicy": "IfNotPresent"}]}}},
        "status": {"replicas": replicas},
    }


def explained(live: dict[str, Any], predicted: dict[str, Any], **kwargs: Any) -> tuple[FieldChange, ...]:
    before, after = normalize(live), normalize(predicted)
    return explain(live=live, predicted=predicted, after=after, changed=differing(before, after),
                   manager="syncer", **kwargs)


def changes(fields: tuple[FieldChange, ...]) -> list[FieldChange]:
    return [f for f in fields if f.is_change]


KCM = entry("kube-controller-manager", {"f:metadata": {"f:annotations": {
    ".": {}, "f:deployment.kubernetes.io/revision": {}}}}, subresource="status")


def test_git_changed_a_field_syncer_owns() -> None:
    live = deployment()
    predicted = deployment(image="nginx:1.27")
    assert changes(explained(live, predicted)) == [FieldChange(".spec.template.spec.containers[0].image", Cause.GIT)]


def test_an_edit_of_a_field_syncer_set_is_drift_naming_the_editor_and_when() -> None:
    # an Update that changes a field syncer applied moves its ownership to the editor
    live = deployment(image="nginx:hacked", managed=[
        entry("syncer", syncer_fields(image=False), operation="Apply"),
        entry("kubectl-edit", {"f:spec": {"f:template": {"f:spec": {"f:containers": {WEB: {"f:image": {}}}}}}},
              time=EDIT_TIME), KCM])
    predicted = deployment(managed=[entry("syncer", syncer_fields(), operation="Apply"), KCM])
    [change] = changes(explained(live, predicted))
    assert change == FieldChange(".spec.template.spec.containers[0].image", Cause.DRIFT, manager="kubectl-edit",
                                 time=EDIT_TIME, takes_over=True)
    assert change.describe() == ("drift: kubectl-edit at 2026-12-02T13:05:00Z, takes over "
                                 ".spec.template.spec.containers[0].image from kubectl-edit")


def test_a_scale_is_drift_by_the_manager_of_the_scale_subresource_even_without_a_time() -> None:
    live = deployment(replicas=3, managed=[
        entry("syncer", syncer_fields(replicas=False), operation="Apply"),
        entry("kubectl", {"f:spec": {"f:replicas": {}}}, time=None, subresource="scale"), KCM])
    predicted = deployment(managed=[entry("syncer", syncer_fields(), operation="Apply"), KCM])
    [change] = changes(explained(live, predicted))
    assert change == FieldChange(".spec.replicas", Cause.DRIFT, manager="kubectl", takes_over=True)
    assert change.to_dict() == {"path": ".spec.replicas", "cause": "drift", "manager": "kubectl", "takesOver": True}
    assert change.describe() == "drift: kubectl, takes over .spec.replicas from kubectl"


def test_the_latest_of_several_other_owners_is_named() -> None:
    live = deployment(replicas=3, managed=[
        entry("syncer", syncer_fields(replicas=False), operation="Apply"),
        entry("hpa", {"f:spec": {"f:replicas": {}}}, time=EDIT_TIME, subresource="scale"),
        entry("kubectl-scale", {"f:spec": {"f:replicas": {}}}, time=SCALE_TIME, subresource="scale")])
    predicted = deployment(managed=[entry("syncer", syncer_fields(), operation="Apply")])
    [change] = changes(explained(live, predicted))
    assert (change.manager, change.time) == ("kubectl-scale", SCALE_TIME)


def test_taking_over_a_field_from_before_syncer_is_git_and_says_so() -> None:
    # the object was created by kubectl: syncer has never applied it
    live = deployment(replicas=2, managed=[entry("kubectl-create", syncer_fields()), KCM])
    predicted = deployment(managed=[entry("syncer", syncer_fields(), operation="Apply"), KCM])
    assert changes(explained(live, predicted)) == [
        FieldChange(".spec.replicas", Cause.GIT, manager="kubectl-create", time=SYNC_TIME, takes_over=True)]


def test_a_field_dropped_from_git_is_removed() -> None:
    live = deployment()
    predicted = deployment(tier=False, managed=[entry("syncer", syncer_fields(tier=False), operation="Apply"), KCM])
    assert changes(explained(live, predicted)) == [FieldChange(".metadata.labels.tier", Cause.REMOVED)]


def test_what_the_source_does_not_set_is_a_default_or_another_managers_and_not_a_change() -> None:
    fields = explained(deployment(), deployment(image="nginx:1.27"))
    assert [f for f in fields if not f.is_change] == [
        FieldChange(".metadata.annotations", Cause.FOREIGN, manager="kube-controller-manager", time=SYNC_TIME),
        FieldChange(".spec.strategy", Cause.DEFAULT),
        FieldChange(".spec.template.spec.containers[0].imagePullPolicy", Cause.DEFAULT),
    ], "a subtree of one cause is named once, at its root"
    assert fields[0].is_change and not any(f.is_change for f in fields[1:]), "changes first"
    assert FieldChange(".spec.strategy", Cause.DEFAULT).describe() == "default (not a change)"


def test_a_difference_only_the_server_made_is_a_default() -> None:
    predicted = deployment()
    predicted["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = "50%"  # e.g. a mutating webhook
    assert explained(deployment(), predicted)[0] == FieldChange(".spec.strategy.rollingUpdate.maxSurge", Cause.DEFAULT)


def test_update_fallback_reads_the_last_applied_annotation() -> None:
    def apiservice(*, priority: int, applied: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                "metadata": {"name": "v1beta1.metrics.k8s.io",
                             "annotations": {"syncer.dev/last-applied": json.dumps(applied)}},
                "spec": {"groupPriorityMinimum": priority, "versionPriority": 100, "insecureSkipTLSVerify": True}}

    last = {"spec": {"groupPriorityMinimum": 100, "insecureSkipTLSVerify": True}}
    desired = {"spec": {"groupPriorityMinimum": 200}}
    live, predicted = apiservice(priority=100, applied=last), apiservice(priority=200, applied=desired)
    predicted["spec"].pop("insecureSkipTLSVerify")
    fields = explained(live, predicted)
    assert changes(fields) == [FieldChange(".spec.groupPriorityMinimum", Cause.GIT),
                               FieldChange(".spec.insecureSkipTLSVerify", Cause.REMOVED)]
    assert FieldChange(".spec.versionPriority", Cause.DEFAULT) in fields


def test_without_ownership_or_manifest_every_difference_counts() -> None:
    live, predicted = deployment(managed=[]), deployment(managed=[], replicas=4)
    assert changes(explained(live, predicted)) == [FieldChange(".spec.replicas", Cause.GIT)]


# -- managedFields resolved to concrete paths ------------------------------------------------------

POD_SPEC = {"containers": [
    {"name": "init", "image": "busybox", "ports": [{"containerPort": 53, "protocol": "UDP"}]},
    {"name": "web", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}],
     "args": ["--a", "--b"]},
], "finalizers": ["x", "y"], "tolerations": [{"key": "a"}, {"key": "b"}]}


@pytest.mark.parametrize(("fields", "whole", "items"), [
    pytest.param({"f:containers": {WEB: {".": {}, "f:image": {}}}},
                 [("containers", 1, "image")], [("containers", 1)], id="k-list-map-key"),
    pytest.param({"f:containers": {WEB: {"f:ports": {'k:{"containerPort":80}': {".": {}, "f:containerPort": {}}}}}},
                 [("containers", 1, "ports", 0, "containerPort")], [("containers", 1, "ports", 0)],
                 id="k-key-with-a-defaulted-protocol"),
    pytest.param({"f:containers": {'k:{"name":"gone"}': {".": {}, "f:image": {}}}}, [], [], id="k-absent"),
    pytest.param({"f:finalizers": {'v:"y"': {}}}, [("finalizers", 1)], [], id="v-set-item"),
    pytest.param({"f:tolerations": {"i:1": {".": {}, "f:key": {}}}},
                 [("tolerations", 1, "key")], [("tolerations", 1)], id="i-index"),
    pytest.param({"f:containers": {WEB: {"f:args": {}}}}, [("containers", 1, "args")], [], id="atomic-list"),
    pytest.param({"f:missing": {}}, [], [], id="f-absent"),
])
def test_owned_paths(fields: dict[str, Any], whole: list[tuple[Any, ...]], items: list[tuple[Any, ...]]) -> None:
    assert owned_paths(POD_SPEC, fields) == (whole, items)


def test_a_map_a_manager_created_is_not_owned_below() -> None:
    obj = {"metadata": {"labels": {"a": "1", "b": "2"}}}
    owners = ownership({**obj, "metadata": {**obj["metadata"], "managedFields": [
        entry("kubectl-label", {"f:metadata": {"f:labels": {".": {}, "f:b": {}}}})]}})
    label = Owner(manager="kubectl-label", operation="Update", time=SYNC_TIME)
    assert owners.owners(("metadata", "labels", "b")) == {label}
    assert owners.owners(("metadata", "labels", "a")) == frozenset()
    assert owners.owners(("metadata", "labels")) == {label}, "a map removed whole: whoever owned inside it"


def test_a_field_owned_outright_owns_what_is_below() -> None:
    obj = deployment()
    owners = ownership(obj)
    assert {o.manager for o in owners.owners(("spec", "selector", "matchLabels", "app"))} == {"syncer"}
    assert owners.owners(("spec", "strategy", "type")) == frozenset()


@pytest.mark.parametrize(("path", "readable"), [
    (("spec", "replicas"), ".spec.replicas"),
    (("spec", "containers", 0, "image"), ".spec.containers[0].image"),
    (("metadata", "labels", "app.kubernetes.io/name"), '.metadata.labels["app.kubernetes.io/name"]'),
    (("data", "tls.crt"), '.data["tls.crt"]'),
    (("metadata", "labels", "tier"), ".metadata.labels.tier"),
])
def test_paths_read_as_changed_paths_renders_them(path: tuple[Any, ...], readable: str) -> None:
    def nest(value: Any) -> Any:
        for step in reversed(path):
            value = [value] if isinstance(step, int) else {step: value}  # index 0 only
        return value

    assert render_path(path) == readable
    assert changed_paths(nest("old"), nest("new")) == (readable,)
