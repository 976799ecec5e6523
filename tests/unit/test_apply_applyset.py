"""The ApplySet inventory: KEP-3659 ids, what the parent records, membership labels."""

from __future__ import annotations

import base64
import copy
import hashlib
import re

import pytest

from syncer import __version__
from syncer.apply.applyset import (
    GROUP_KINDS_ANNOTATION,
    ID_LABEL,
    NAMESPACES_ANNOTATION,
    PART_OF_LABEL,
    TOOLING_ANNOTATION,
    Inventory,
    applyset_id,
    is_member,
    split_group_kind,
    with_part_of,
)
from syncer.model import Object, ObjectRef

# A label value: at most 63 characters, alphanumerics at both ends, `-_.` inside.
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def kep_3659_id(unencoded: bytes) -> str:
    """kubectl's formula, spelled out: base64url (no padding) of the SHA-256 of
    `<name>.<namespace>.<kind>.<group>`, wrapped as `applyset-<hash>-v1`."""
    encoded = base64.urlsafe_b64encode(hashlib.sha256(unencoded).digest()).decode().rstrip("=")
    return f"applyset-{encoded}-v1"


def ref(group: str, kind: str, namespace: str | None, name: str) -> ObjectRef:
    return ObjectRef(group=group, kind=kind, namespace=namespace, name=name)


APP_OBJECTS = [
    ref("apps", "Deployment", "shop", "web"),
    ref("", "ConfigMap", "shop", "settings"),
    ref("", "Service", "shop-edge", "web"),
    ref("rbac.authorization.k8s.io", "ClusterRole", None, "shop-viewer"),
    ref("", "Namespace", None, "shop-edge"),
]


@pytest.mark.parametrize(
    ("kwargs", "unencoded", "pinned"),
    [
        pytest.param(
            {"name": "syncer-shop", "namespace": "shop"},
            b"syncer-shop.shop.ConfigMap.",
            "applyset-O2v17q9n07tO6A0W1SUvISQYhYRhFrnCYGRjqDsjlTQ-v1",
            id="configmap-parent",
        ),
        pytest.param(
            {"name": "canary", "namespace": "shop", "kind": "Widget", "group": "example.com"},
            b"canary.shop.Widget.example.com",
            "applyset-XQUEVfkY4KBg9NO8ztgwmeph-t_YBK43RprERO_cgXA-v1",
            id="custom-resource-parent-url-safe-alphabet",
        ),
    ],
)
def test_applyset_id_follows_kep_3659(kwargs: dict[str, str], unencoded: bytes, pinned: str) -> None:
    got = applyset_id(**kwargs)
    assert got == kep_3659_id(unencoded)
    assert got == pinned
    assert len(got) <= 63 and LABEL_VALUE.match(got), "must be usable as a label value"


def test_inventory_for_app_is_a_configmap_parent_in_the_app_namespace() -> None:
    inventory = Inventory.for_app(app="shop", namespace="shop")
    assert inventory.parent == ref("", "ConfigMap", "shop", "syncer-shop")
    assert inventory.id == kep_3659_id(b"syncer-shop.shop.ConfigMap.")
    assert (inventory.group_kinds, inventory.namespaces, inventory.exists) == (frozenset(), frozenset(), False)


def test_ids_differ_between_apps_and_namespaces() -> None:
    ids = {
        Inventory.for_app(app="shop", namespace="shop").id,
        Inventory.for_app(app="shop", namespace="staging").id,
        Inventory.for_app(app="billing", namespace="shop").id,
    }
    assert len(ids) == 3


def live_parent(annotations: dict[str, str] | None) -> Object:
    metadata: dict[str, object] = {"name": "syncer-shop", "namespace": "shop", "resourceVersion": "7"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}


@pytest.mark.parametrize(
    ("parent", "group_kinds", "namespaces", "exists", "tooling"),
    [
        pytest.param(None, set(), set(), False, None, id="no-parent-yet"),
        pytest.param(
            live_parent({
                GROUP_KINDS_ANNOTATION: "ConfigMap,Deployment.apps, Service",
                NAMESPACES_ANNOTATION: "shop-edge, shop-jobs",
                TOOLING_ANNOTATION: "syncer/v0.1.0",
            }),
            {"ConfigMap", "Deployment.apps", "Service"},
            {"shop-edge", "shop-jobs"},
            True,
            "syncer/v0.1.0",
            id="recorded-kinds-and-namespaces",
        ),
        pytest.param(
            live_parent({GROUP_KINDS_ANNOTATION: "", NAMESPACES_ANNOTATION: ",", TOOLING_ANNOTATION: "kubectl/v1.29"}),
            set(), set(), True, "kubectl/v1.29",
            id="empty-lists-other-tooling",
        ),
        pytest.param(live_parent(None), set(), set(), True, None, id="parent-without-annotations"),
    ],
)
def test_read_takes_what_the_live_parent_records(
    parent: Object | None, group_kinds: set[str], namespaces: set[str], exists: bool, tooling: str | None
) -> None:
    base = Inventory.for_app(app="shop", namespace="shop")
    inventory = base.read(parent)
    assert inventory.group_kinds == group_kinds
    assert inventory.namespaces == namespaces
    assert inventory.exists is exists
    assert inventory.tooling == tooling
    assert (inventory.parent, inventory.id) == (base.parent, base.id)


def test_including_widens_and_exactly_narrows() -> None:
    recorded = Inventory.for_app(app="shop", namespace="shop").read(live_parent({
        GROUP_KINDS_ANNOTATION: "CronJob.batch,ConfigMap",
        NAMESPACES_ANNOTATION: "shop-old",
        TOOLING_ANNOTATION: "syncer/v0.1.0",
    }))

    widened = recorded.including(APP_OBJECTS)
    assert widened.group_kinds == {
        "CronJob.batch", "ConfigMap", "Deployment.apps", "Service", "ClusterRole.rbac.authorization.k8s.io",
        "Namespace",
    }
    assert widened.namespaces == {"shop-old", "shop", "shop-edge"}

    exact = recorded.exactly(APP_OBJECTS)
    assert exact.group_kinds == {
        "ConfigMap", "Deployment.apps", "Service", "ClusterRole.rbac.authorization.k8s.io", "Namespace",
    }
    assert exact.namespaces == {"shop", "shop-edge"}

    for derived in (widened, exact):
        assert (derived.parent, derived.id, derived.exists, derived.tooling) == (
            recorded.parent, recorded.id, True, "syncer/v0.1.0",
        )
    assert recorded.group_kinds == {"CronJob.batch", "ConfigMap"}, "the original is unchanged"


def test_parent_body_records_sorted_kinds_and_additional_namespaces() -> None:
    inventory = Inventory.for_app(app="shop", namespace="shop").exactly(APP_OBJECTS)
    body = inventory.parent_body(extra_annotations={"syncer.dev/revision": "main@abc123"})
    assert body["apiVersion"] == "v1"
    assert body["kind"] == "ConfigMap"
    metadata = body["metadata"]
    assert (metadata["name"], metadata["namespace"]) == ("syncer-shop", "shop")
    assert metadata["labels"] == {ID_LABEL: inventory.id}
    assert metadata["annotations"] == {
        TOOLING_ANNOTATION: f"syncer/v{__version__}",
        GROUP_KINDS_ANNOTATION: "ClusterRole.rbac.authorization.k8s.io,ConfigMap,Deployment.apps,Namespace,Service",
        NAMESPACES_ANNOTATION: "shop-edge",
        "syncer.dev/revision": "main@abc123",
    }


def test_empty_inventory_parent_body_has_empty_lists() -> None:
    annotations = Inventory.for_app(app="shop", namespace="shop").parent_body()["metadata"]["annotations"]
    assert annotations[GROUP_KINDS_ANNOTATION] == ""
    assert annotations[NAMESPACES_ANNOTATION] == ""


def test_parent_body_read_back_gives_the_same_search_space() -> None:
    inventory = Inventory.for_app(app="shop", namespace="shop").exactly(APP_OBJECTS)
    again = Inventory.for_app(app="shop", namespace="shop").read(inventory.parent_body())
    assert again.group_kinds == inventory.group_kinds
    assert again.search_namespaces() == inventory.search_namespaces() == ["shop", "shop-edge"]
    assert again.exists and again.tooling == f"syncer/v{__version__}"


def test_search_namespaces_include_the_parent_namespace() -> None:
    only_elsewhere = Inventory.for_app(app="shop", namespace="shop").exactly([ref("", "Secret", "vault", "token")])
    assert only_elsewhere.search_namespaces() == ["shop", "vault"]


@pytest.mark.parametrize(
    ("group_kind", "want"),
    [
        ("Deployment.apps", ("apps", "Deployment")),
        ("ConfigMap", ("", "ConfigMap")),
        ("Certificate.cert-manager.io", ("cert-manager.io", "Certificate")),
        ("ClusterRole.rbac.authorization.k8s.io", ("rbac.authorization.k8s.io", "ClusterRole")),
    ],
)
def test_split_group_kind(group_kind: str, want: tuple[str, str]) -> None:
    assert split_group_kind(group_kind) == want


@pytest.mark.parametrize("obj_ref", APP_OBJECTS, ids=str)
def test_split_group_kind_inverts_object_ref_group_kind(obj_ref: ObjectRef) -> None:
    assert split_group_kind(obj_ref.group_kind) == (obj_ref.group, obj_ref.kind)


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param({"name": "web", "labels": {"app": "web"}}, id="with-labels"),
        pytest.param({"name": "web"}, id="without-labels"),
        pytest.param({"name": "web", "labels": None}, id="null-labels"),
    ],
)
def test_with_part_of_labels_a_copy(metadata: dict[str, object]) -> None:
    obj: Object = {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": {"ports": [{"port": 80}]}}
    before = copy.deepcopy(obj)
    labelled = with_part_of(obj, "applyset-abc-v1")
    assert obj == before, "the input is not mutated"
    assert labelled["metadata"]["labels"][PART_OF_LABEL] == "applyset-abc-v1"
    other_labels = dict(labelled["metadata"]["labels"])
    del other_labels[PART_OF_LABEL]
    assert other_labels == (before["metadata"].get("labels") or {})
    assert labelled["spec"] == before["spec"]
    assert is_member(labelled, "applyset-abc-v1")
    assert not is_member(labelled, "applyset-other-v1")
    assert not is_member(obj, "applyset-abc-v1")


def test_with_part_of_replaces_a_previous_membership() -> None:
    obj: Object = {"kind": "ConfigMap", "metadata": {"name": "a", "labels": {PART_OF_LABEL: "applyset-old-v1"}}}
    labelled = with_part_of(obj, "applyset-new-v1")
    assert labelled["metadata"]["labels"] == {PART_OF_LABEL: "applyset-new-v1"}
    assert obj["metadata"]["labels"] == {PART_OF_LABEL: "applyset-old-v1"}


@pytest.mark.parametrize(
    "obj",
    [{"kind": "ConfigMap"}, {"kind": "ConfigMap", "metadata": None}, {"kind": "ConfigMap", "metadata": {"labels": None}}],
)
def test_objects_without_labels_are_not_members(obj: Object) -> None:
    assert not is_member(obj, "applyset-abc-v1")
