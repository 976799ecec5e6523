"""prepare_body(): the server-side apply workarounds, on the bodies a user's manifests become."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from syncer.apply.applyset import PART_OF_LABEL
from syncer.apply.prepare import prepare_body
from syncer.model import Object

APPLYSET = "applyset-O2v17q9n07tO6A0W1SUvISQYhYRhFrnCYGRjqDsjlTQ-v1"


def prepare(obj: Object, *, namespaced: bool = True) -> Object:
    return prepare_body(obj, applyset=APPLYSET, namespaced=namespaced)


def pod_spec() -> dict[str, Any]:
    return {
        "initContainers": [{"name": "migrate", "image": "shop:1", "ports": [{"containerPort": 9000}]}],
        "containers": [
            {
                "name": "web",
                "image": "shop:1",
                "ports": [
                    {"name": "http", "containerPort": 8080},
                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                    {"name": "sctp", "containerPort": 9999, "protocol": "SCTP"},
                ],
            },
            {"name": "sidecar", "image": "proxy:1"},
        ],
    }


def with_template(spec: dict[str, Any]) -> dict[str, Any]:
    return {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}}


def workload(api_version: str, kind: str) -> Object:
    spec: dict[str, Any]
    if kind == "Pod":
        spec = pod_spec()
    elif kind == "CronJob":
        spec = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": pod_spec()}}}}
    else:
        spec = with_template(pod_spec())
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "web", "namespace": "shop"}, "spec": spec}


def pod_spec_of(obj: Object) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]
    if obj["kind"] == "Pod":
        return spec
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    result: dict[str, Any] = spec["template"]["spec"]
    return result


def protocols(spec: dict[str, Any]) -> dict[str, list[str | None]]:
    return {
        field: [port.get("protocol") for c in spec.get(field, []) for port in c.get("ports", [])]
        for field in ("initContainers", "containers")
    }


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("apps/v1", "ReplicaSet"),
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
        ("v1", "Pod"),
        ("v1", "ReplicationController"),
        ("extensions/v1beta1", "Deployment"),
    ],
)
def test_container_ports_without_protocol_get_tcp(api_version: str, kind: str) -> None:
    body = prepare(workload(api_version, kind))
    assert protocols(pod_spec_of(body)) == {"initContainers": ["TCP"], "containers": ["TCP", "UDP", "SCTP"]}
    web = pod_spec_of(body)["containers"][0]
    assert web["ports"][0] == {"name": "http", "containerPort": 8080, "protocol": "TCP"}
    assert "ports" not in pod_spec_of(body)["containers"][1], "no ports list is invented"


def test_custom_resources_that_look_like_workloads_are_left_alone() -> None:
    """Only the built-in kinds have `protocol` in a list-map key; a CR's schema is its own."""
    custom = workload("example.com/v1", "Deployment")
    body = prepare(custom)
    assert protocols(pod_spec_of(body)) == protocols(pod_spec_of(custom)) == {
        "initContainers": [None], "containers": [None, "UDP", "SCTP"],
    }


def test_service_ports_without_protocol_get_tcp() -> None:
    service: Object = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "dns", "namespace": "shop"},
        "spec": {"ports": [
            {"name": "dns-tcp", "port": 53},
            {"name": "dns-udp", "port": 53, "protocol": "UDP"},
            {"name": "empty", "port": 54, "protocol": ""},
        ]},
    }
    assert [p["protocol"] for p in prepare(service)["spec"]["ports"]] == ["TCP", "UDP", "TCP"]


def test_service_without_ports_stays_without() -> None:
    headless: Object = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "shop"},
                        "spec": {"clusterIP": "None", "selector": {"app": "db"}}}
    assert prepare(headless)["spec"] == headless["spec"]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("data", "string_data", "want"),
    [
        pytest.param(None, {"password": "s3cret"}, {"password": b64("s3cret")}, id="string-data-only"),
        pytest.param(
            {"user": b64("admin")}, {"password": "s3cret"},
            {"user": b64("admin"), "password": b64("s3cret")},
            id="merged-with-data",
        ),
        pytest.param(
            {"password": b64("old"), "user": b64("admin")}, {"password": "new"},
            {"password": b64("new"), "user": b64("admin")},
            id="string-data-wins-on-same-key",
        ),
        pytest.param(
            None, {"greeting": "grüß dich", "config.yaml": "a: 1\nb: [x]\n"},
            {"greeting": base64.b64encode("grüß dich".encode()).decode(), "config.yaml": b64("a: 1\nb: [x]\n")},
            id="utf8-and-multiline",
        ),
        pytest.param({"user": b64("admin")}, {}, {"user": b64("admin")}, id="empty-string-data"),
    ],
)
def test_secret_string_data_is_folded_into_data(
    data: dict[str, str] | None, string_data: dict[str, str], want: dict[str, str]
) -> None:
    secret: Object = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
                      "type": "Opaque", "stringData": string_data}
    if data is not None:
        secret["data"] = data
    body = prepare(secret)
    assert "stringData" not in body
    assert body.get("data", {}) == want
    assert body["type"] == "Opaque"


def test_string_data_of_other_kinds_is_not_touched() -> None:
    custom: Object = {"apiVersion": "example.com/v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "shop"},
                      "stringData": {"a": "b"}}
    assert prepare(custom)["stringData"] == {"a": "b"}


@pytest.mark.parametrize(
    ("metadata", "want_timestamp"),
    [
        pytest.param({"creationTimestamp": None}, "absent", id="null-dropped"),
        pytest.param({"creationTimestamp": "2024-03-01T10:00:00Z"}, "2024-03-01T10:00:00Z", id="real-value-kept"),
        pytest.param({}, "absent", id="absent-stays-absent"),
    ],
)
def test_status_and_null_creation_timestamp_are_dropped(metadata: dict[str, Any], want_timestamp: str) -> None:
    obj: Object = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", **metadata},
        "spec": {"replicas": 2},
        "status": {"replicas": 0},
    }
    body = prepare(obj)
    assert "status" not in body
    assert body["metadata"].get("creationTimestamp", "absent") == want_timestamp
    assert body["spec"] == {"replicas": 2}


@pytest.mark.parametrize(
    ("obj", "namespaced", "want_namespace"),
    [
        pytest.param({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                      "metadata": {"name": "viewer", "namespace": "shop"}}, False, None, id="cluster-scoped-dropped"),
        pytest.param({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "settings", "namespace": "shop"}}, True, "shop", id="namespaced-kept"),
        pytest.param({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
                     False, None, id="cluster-scoped-without-namespace"),
    ],
)
def test_namespace_follows_the_resource_scope(obj: Object, namespaced: bool, want_namespace: str | None) -> None:
    assert prepare(obj, namespaced=namespaced)["metadata"].get("namespace") == want_namespace


def test_applyset_membership_label_is_added_next_to_existing_labels() -> None:
    obj: Object = {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "settings", "namespace": "shop", "labels": {"app": "shop"}}}
    assert prepare(obj)["metadata"]["labels"] == {"app": "shop", PART_OF_LABEL: APPLYSET}


def test_object_without_metadata_gets_the_label() -> None:
    assert prepare({"apiVersion": "v1", "kind": "ConfigMap"})["metadata"] == {"labels": {PART_OF_LABEL: APPLYSET}}


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(workload("apps/v1", "Deployment") | {"status": {"replicas": 1}}, id="deployment"),
        pytest.param(workload("batch/v1", "CronJob"), id="cronjob"),
        pytest.param({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": "web", "namespace": "shop", "creationTimestamp": None,
                                   "labels": {"app": "web"}},
                      "spec": {"ports": [{"port": 80}]}}, id="service"),
        pytest.param({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
                      "data": {"user": b64("admin")}, "stringData": {"password": "s3cret"}}, id="secret"),
    ],
)
def test_input_is_not_mutated(obj: Object) -> None:
    before = copy.deepcopy(obj)
    body = prepare(obj, namespaced=False)
    assert obj == before
    assert body != before


def test_numeric_resource_quantities_become_strings() -> None:
    """Flux's test2: `cpu: 2` is refused by a 1.20 server-side apply ("expected string")."""
    body = prepare({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{
            "name": "app", "resources": {"limits": {"cpu": 2, "memory": "512Mi"}, "requests": {"cpu": 0.5}},
        }]}}},
    })

    resources = body["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"limits": {"cpu": "2", "memory": "512Mi"}, "requests": {"cpu": "0.5"}}
