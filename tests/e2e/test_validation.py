"""What the API server refuses, as a sync reports it: a CRD's `x-kubernetes-validations` (CEL)
rule, and unknown or duplicate fields (`fieldValidation=Strict` where the server has it).

Each refusal names the object, the manifest's file:line, the field and the server's message for
it (from the Status `causes`), and a sync that is refused at plan time changes nothing: not the
objects, not the app's inventory. A custom resource whose CRD the same sync creates can only be
checked once the CRD exists: then the CRD is applied and the custom resource fails, with its
file:line, before it or anything after it is written.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kubernetes import client

from syncer.apply import sync
from syncer.cli import cli
from syncer.errors import ClusterError, RenderError, ValidationFailed
from syncer.kube import Kube
from syncer.model import Action
from tests.conftest import ClusterAccess
from tests.e2e.apps import configmap, options, render_app, write_app
from tests.e2e.versions import before, needs

pytestmark = pytest.mark.oldest
"""Also run on Kubernetes 1.20, the oldest leg of scripts/test: what differs there is tested there."""

RULE_MESSAGE = "size must not exceed maxSize"


def crd_yaml(group: str, *, rule: bool = True) -> str:
    validations = f"""
            x-kubernetes-validations:
            - rule: "self.size <= self.maxSize"
              message: "{RULE_MESSAGE}"
              fieldPath: ".size"
""" if rule else "\n"
    return f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object{validations.rstrip()}
            properties:
              size: {{type: integer}}
              maxSize: {{type: integer}}
"""


def widget_yaml(group: str, *, size: int, extra: str = "") -> str:
    return f"""\
# a comment, so that the object does not start on line 1
apiVersion: {group}/v1
kind: Widget
metadata: {{name: w1}}
spec:
  maxSize: 10
  size: {size}{extra}
"""


CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {colour: blue}\n"


@pytest.fixture
def group(kube_api: client.ApiClient) -> Iterator[str]:
    """A fresh API group for the test's Widget CRD, which is deleted afterwards."""
    name = f"v{secrets.token_hex(3)}.example.com"
    yield name
    try:
        client.ApiextensionsV1Api(kube_api).delete_custom_resource_definition(f"widgets.{name}")
    except client.ApiException as error:
        if error.status != 404:
            raise


def widget(kube_api: client.ApiClient, group: str, namespace: str) -> Any | None:
    try:
        return client.CustomObjectsApi(kube_api).get_namespaced_custom_object(group, "v1", namespace, "widgets", "w1")
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def crd_exists(kube_api: client.ApiClient, group: str) -> bool:
    try:
        client.ApiextensionsV1Api(kube_api).read_custom_resource_definition(f"widgets.{group}")
    except client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def install_crd(kube: Kube, tmp_path: Path, group: str, namespace: str, *, rule: bool = True) -> None:
    """The CRD, synced as an app of its own, and served before the test's sync."""
    crds = write_app(tmp_path / "crds", {"crd.yaml": crd_yaml(group, rule=rule)})
    sync(kube, render_app(crds, namespace=namespace), options=options("crds", namespace), revision="r1")


def test_a_cel_rule_refuses_the_sync_naming_object_file_line_field_and_rule(
    tmp_path: Path, kube: Kube, kube_api: client.ApiClient, namespace: str, group: str, cluster: ClusterAccess,
) -> None:
    needs(kube, (1, 28), "x-kubernetes-validations with fieldPath")
    install_crd(kube, tmp_path, group, namespace)
    app = write_app(tmp_path / "app", {"settings.yaml": CONFIGMAP, "widget.yaml": widget_yaml(group, size=12)})

    with pytest.raises(ValidationFailed) as refused:
        sync(kube, render_app(app, namespace=namespace), options=options("cel", namespace), revision="r1")
    [failure] = refused.value.failures
    assert failure.subject == f"Widget/{namespace}/w1"
    assert [(c.get("field"), RULE_MESSAGE in str(c.get("message"))) for c in failure.causes] == [("spec.size", True)]
    assert str(failure) == (f"Widget/{namespace}/w1: rejected by the API server (widget.yaml:2): "
                            f"{failure.causes[0]['field']}: {failure.causes[0]['message']}")
    assert "nothing was changed" in str(refused.value)
    assert widget(kube_api, group, namespace) is None
    assert configmap(kube_api, namespace, "settings") is None, "the valid object in the same sync is not written"
    assert configmap(kube_api, namespace, "syncer-cel") is None, "not even the inventory is written"

    # The user's view: one `error:` on stderr with the same words, exit 2.
    result = CliRunner().invoke(cli, ["sync", "--repo", str(app), "--name", "cel", "-n", namespace,
                                      "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context])
    assert result.exit_code == 2, result.output
    assert f"Widget/{namespace}/w1: rejected by the API server (widget.yaml:2): spec.size: " in result.stderr
    assert RULE_MESSAGE in result.stderr
    assert configmap(kube_api, namespace, "settings") is None


def test_a_crd_and_its_invalid_custom_resource_in_one_sync(
    tmp_path: Path, kube: Kube, kube_api: client.ApiClient, namespace: str, group: str,
) -> None:
    """The custom resource cannot be checked before its CRD exists: the CRD is applied, then
    the custom resource is checked and fails with its file:line and the rule; it is not
    written, nor is anything that comes after it."""
    needs(kube, (1, 28), "x-kubernetes-validations with fieldPath")
    app = write_app(tmp_path / "app", {"crd.yaml": crd_yaml(group), "widget.yaml": widget_yaml(group, size=12)})
    changes = sync(kube, render_app(app, namespace=namespace), options=options("together", namespace), revision="r1")

    by_ref = {str(c.ref): c for c in changes.changes}
    assert by_ref[f"CustomResourceDefinition/widgets.{group}"].action is Action.CREATED
    failed = by_ref[f"Widget/{namespace}/w1"]
    assert failed.action is Action.FAILED
    assert failed.message.startswith("rejected by the API server (widget.yaml:2): spec.size: ")
    assert RULE_MESSAGE in failed.message
    assert changes.error and "nothing was pruned" in changes.error
    assert crd_exists(kube_api, group), "the CRD was applied"
    assert widget(kube_api, group, namespace) is None, "the custom resource was not"

    # Fixed in Git, the next sync converges.
    write_app(app, {"crd.yaml": crd_yaml(group), "widget.yaml": widget_yaml(group, size=3)})
    fixed = sync(kube, render_app(app, namespace=namespace), options=options("together", namespace), revision="r2")
    assert fixed.error is None
    assert widget(kube_api, group, namespace)["spec"] == {"size": 3, "maxSize": 10}


def test_an_unknown_field_of_a_custom_resource_is_an_error(
    tmp_path: Path, kube: Kube, kube_api: client.ApiClient, namespace: str, group: str,
) -> None:
    """On every release, 1.20 and 1.37 alike: server-side apply refuses a field the CRD's
    structural schema lacks instead of pruning it (with or without fieldValidation; a 500
    whose Status has no causes and names the field in its message)."""
    install_crd(kube, tmp_path, group, namespace, rule=False)
    app = write_app(tmp_path / "app", {
        "settings.yaml": CONFIGMAP,
        "widget.yaml": widget_yaml(group, size=3, extra="\n  colour: red"),
    })
    with pytest.raises(ValidationFailed) as refused:
        sync(kube, render_app(app, namespace=namespace), options=options("strict", namespace), revision="r1")
    [failure] = refused.value.failures
    assert failure.subject == f"Widget/{namespace}/w1"
    assert "(widget.yaml:2)" in failure.message and "spec.colour" in failure.message
    assert widget(kube_api, group, namespace) is None
    assert configmap(kube_api, namespace, "settings") is None
    assert configmap(kube_api, namespace, "syncer-strict") is None


def test_an_unknown_field_of_a_built_in_kind_is_an_error(
    tmp_path: Path, kube: Kube, kube_api: client.ApiClient, namespace: str,
) -> None:
    """On every release: server-side apply refuses a field the built-in schema lacks (1.20
    as a conversion failure, a current server through fieldValidation=Strict)."""
    app = write_app(tmp_path / "app", {
        "a.yaml": CONFIGMAP,
        "b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo}\ndatta: {colour: red}\n",
    })
    with pytest.raises(ValidationFailed) as refused:
        sync(kube, render_app(app, namespace=namespace), options=options("builtin", namespace), revision="r1")
    [failure] = refused.value.failures
    assert failure.subject == f"ConfigMap/{namespace}/typo"
    assert "(b.yaml:1)" in failure.message and "datta" in failure.message
    assert configmap(kube_api, namespace, "settings") is None
    assert configmap(kube_api, namespace, "typo") is None
    assert configmap(kube_api, namespace, "syncer-builtin") is None


DUPLICATED = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"twice","namespace":"%s"},' \
             b'"data":{"k":"one","k":"two"}}'


def test_the_adapter_asks_a_current_server_to_refuse_a_duplicate_field(
    kube: Kube, kube_api: client.ApiClient, namespace: str,
) -> None:
    """Every write asks for fieldValidation=Strict where the server has it: a body that
    repeats a key (which syncer's own encoder never sends) is refused instead of the last
    value winning with a warning."""
    needs(kube, (1, 27), "fieldValidation=Strict")
    configmaps = kube.resource_for("v1", "ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "twice", "namespace": namespace}}
    with pytest.raises(ClusterError) as refused:
        kube.apply(configmaps, body, subject=f"ConfigMap/{namespace}/twice", field_manager="syncer", force=True,
                   dry_run=False, encoded=DUPLICATED % namespace.encode())
    assert refused.value.status == 400 and refused.value.reason == "BadRequest"
    assert configmap(kube_api, namespace, "twice") is None


def test_before_field_validation_a_duplicate_field_is_applied_as_it_always_was(
    kube: Kube, kube_api: client.ApiClient, namespace: str,
) -> None:
    """Kubernetes 1.20 has no fieldValidation: the last of two values is applied, as before
    (pinned, so that the difference to a current server is known)."""
    before(kube, (1, 27), "no fieldValidation parameter")
    configmaps = kube.resource_for("v1", "ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "twice", "namespace": namespace}}
    kube.apply(configmaps, body, subject=f"ConfigMap/{namespace}/twice", field_manager="syncer", force=True,
               dry_run=False, encoded=DUPLICATED % namespace.encode())
    assert configmap(kube_api, namespace, "twice").data == {"k": "two"}


def test_a_duplicate_field_is_an_error_naming_its_line_and_nothing_is_written(
    tmp_path: Path, kube: Kube, kube_api: client.ApiClient, namespace: str,
) -> None:
    """Duplicate keys never reach the server (syncer sends JSON, which cannot repeat a key):
    the manifest reader refuses them, with both lines, on every release."""
    app = write_app(tmp_path / "app", {
        "a.yaml": CONFIGMAP,
        "b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: twice}\ndata:\n  k: one\n  k: two\n",
    })
    with pytest.raises(RenderError) as refused:
        sync(kube, render_app(app, namespace=namespace), options=options("dupes", namespace), revision="r1")
    assert [str(p) for p in refused.value.problems] == [
        "b.yaml:6: duplicate key 'k' (first at line 5); remove one of them"]
    assert configmap(kube_api, namespace, "settings") is None
    assert configmap(kube_api, namespace, "twice") is None
