"""compare(): the action per object and the diff text a user sees."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from syncer.diff import Cause, FieldChange, IgnoreRule, ObjectDiff, compare
from syncer.model import Action, ObjectRef

SALT = b"fixed-salt-for-tests"
WEB = ObjectRef(group="apps", kind="Deployment", namespace="shop", name="web")


def deployment(*, image: str = "nginx:1.25", replicas: Any = 3) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image, "ports": [
                    {"containerPort": 8080, "protocol": "TCP"}]}]},
            },
        },
    }


def as_live(obj: dict[str, Any], *, replicas_by: str = "kube-controller-manager") -> dict[str, Any]:
    """What the server returns for `obj`: bookkeeping and status added. syncer owns the
    container; `replicas_by` owns `.spec.replicas` (syncer: the manifest sets it)."""
    live = copy.deepcopy(obj)
    syncer_fields: dict[str, Any] = {"f:template": {"f:spec": {"f:containers": {
        'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}}}}}
    if replicas_by == "syncer":
        syncer_fields["f:replicas"] = {}
    live["metadata"].update(
        uid="6d0c3f7e-2a4b-4f0e-9d3c-1b2a3c4d5e6f", resourceVersion="48213", generation=2,
        creationTimestamp="2024-03-01T10:00:00Z",
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}"},
        managedFields=[
            {"manager": "syncer", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": syncer_fields}},
            *([{"manager": replicas_by, "operation": "Update", "apiVersion": "autoscaling/v1",
                "subresource": "scale", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
              if replicas_by != "syncer" else []),
        ],
    )
    live["status"] = {"replicas": 3, "availableReplicas": 3}
    return live


def test_create_shows_the_whole_desired_object_added() -> None:
    result = compare(ref=WEB, api_version="apps/v1", live=None, predicted=deployment(), salt=SALT)
    assert (result.action, result.ref, result.api_version) == ("created", WEB, "apps/v1")
    lines = result.diff.splitlines()
    assert lines[:2] == ["--- Deployment.apps/shop/web (live)", "+++ Deployment.apps/shop/web (desired)"]
    assert all(line.startswith("+") for line in lines[3:])
    assert "+      - name: web" in lines


def test_delete_shows_the_live_object_removed_without_server_noise() -> None:
    result = compare(ref=WEB, api_version="apps/v1", live=as_live(deployment()), predicted=None, salt=SALT)
    assert result.action == "deleted"
    assert all(line.startswith("-") for line in result.diff.splitlines()[3:])
    for noise in ("resourceVersion", "managedFields", "uid:", "status:", "last-applied"):
        assert noise not in result.diff


@pytest.mark.parametrize(
    ("predicted", "ignore", "action"),
    [
        pytest.param(as_live(deployment()), (), "unchanged", id="server-noise-only"),
        pytest.param(deployment(), (), "unchanged", id="prediction-without-status"),
        pytest.param(as_live(deployment(replicas=3.0)), (), "unchanged", id="int-float-equal"),
        pytest.param(as_live(deployment(replicas="3"), replicas_by="syncer"), (), "configured", id="string-is-not-int"),
        pytest.param(as_live(deployment(replicas="3")), (), "unchanged", id="only-a-field-the-source-does-not-set"),
        pytest.param(as_live(deployment(image="nginx:1.26")), (), "configured", id="image-changed"),
        pytest.param(as_live(deployment(replicas=5)),
                     (IgnoreRule(kind="Deployment", group="apps", json_pointers=("/spec/replicas",)),),
                     "unchanged", id="ignored-by-pointer"),
        pytest.param(as_live(deployment(replicas=5)),
                     (IgnoreRule(kind="Deployment", group="apps", managed_fields_managers=("kube-controller-manager",)),),
                     "unchanged", id="ignored-by-manager"),
        pytest.param(as_live(deployment(replicas=5, image="nginx:1.26")),
                     (IgnoreRule(kind="Deployment", group="apps", json_pointers=("/spec/replicas",)),),
                     "configured", id="ignore-hides-only-its-field"),
    ],
)
def test_update_or_unchanged(predicted: dict[str, Any], ignore: tuple[IgnoreRule, ...], action: str) -> None:
    result = compare(ref=WEB, api_version="apps/v1", live=as_live(deployment()), predicted=predicted,
                     ignore=ignore, salt=SALT)
    assert result.action == action
    assert (result.diff == "") is (action == "unchanged")


def test_update_diff_shows_the_changed_line_in_context() -> None:
    removed = [".spec.template.spec.containers[name=web].env[name=DEBUG]"]
    result = compare(ref=WEB, api_version="apps/v1", live=as_live(deployment()),
                     predicted=as_live(deployment(image="nginx:1.26")), salt=SALT, removed=removed)
    assert result == ObjectDiff(
        ref=WEB,
        api_version="apps/v1",
        action=Action.CONFIGURED,
        diff=(
            "--- Deployment.apps/shop/web (live)\n"
            "+++ Deployment.apps/shop/web (desired)\n"
            "@@ -17,7 +17,7 @@\n"
            "     spec:\n"
            "       containers:\n"
            "       - name: web\n"
            "-        image: nginx:1.25\n"
            "+        image: nginx:1.26\n"
            "         ports:\n"
            "         - containerPort: 8080\n"
            "           protocol: TCP\n"
        ),
        removed=tuple(removed),
        fields=(
            FieldChange(".spec.template.spec.containers[0].image", Cause.GIT),
            FieldChange(".metadata.labels", Cause.DEFAULT),
            FieldChange(".spec.replicas", Cause.FOREIGN, manager="kube-controller-manager"),
            FieldChange(".spec.selector", Cause.DEFAULT),
            FieldChange(".spec.template.metadata", Cause.DEFAULT),
            FieldChange(".spec.template.spec.containers[0].ports", Cause.DEFAULT),
        ),
    )
    assert result.changed == (".spec.template.spec.containers[0].image",)


def test_removed_is_only_reported_for_updates() -> None:
    live = as_live(deployment())
    result = compare(ref=WEB, api_version="apps/v1", live=live, predicted=live, salt=SALT, removed=[".spec.x"])
    assert (result.action, result.removed) == ("unchanged", ())


def test_compare_needs_one_side() -> None:
    with pytest.raises(ValueError, match="^Deployment/shop/web: "):
        compare(ref=WEB, api_version="apps/v1", live=None, predicted=None)


SECRET_REF = ObjectRef(group="", kind="Secret", namespace="shop", name="db")
OLD, NEW = "s3cr3t-old-password", "s3cr3t-new-password"


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def secret(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
            "type": "Opaque", **fields}


def live_secret(value: str) -> dict[str, Any]:
    obj = secret(data={"password": b64(value), "user": b64("admin")})
    obj["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration":
                                      f'{{"stringData":{{"password":"{value}"}}}}'}
    obj["metadata"]["resourceVersion"] = "7"
    return obj


@pytest.mark.parametrize(
    ("live", "predicted", "action"),
    [
        pytest.param(live_secret(OLD), secret(data={"password": b64(NEW), "user": b64("admin")}), "configured",
                     id="update"),
        pytest.param(None, secret(stringData={"password": NEW, "user": "admin"}), "created", id="create-stringData"),
        pytest.param(live_secret(OLD), None, "deleted", id="delete"),
        pytest.param(live_secret(OLD), secret(stringData={"password": OLD, "user": "admin"}), "unchanged",
                     id="stringData-equals-data"),
    ],
)
def test_secret_values_never_reach_the_diff(live: dict[str, Any] | None, predicted: dict[str, Any] | None,
                                            action: str) -> None:
    result = compare(ref=SECRET_REF, api_version="v1", live=live, predicted=predicted, salt=SALT)
    assert result.action == action
    text = result.diff + repr(result)
    for value in (OLD, NEW, "admin"):
        assert value not in text
        assert b64(value) not in text
    if action == "configured":
        changed = [line for line in result.diff.splitlines() if line.startswith(("-  ", "+  "))]
        assert len(changed) == 2 and all("password: <secret sha256:" in line for line in changed)
        assert changed[0].endswith(f"{len(OLD)} bytes>")
