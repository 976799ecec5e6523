"""Discovery follows the server: a kind whose CustomResourceDefinition was deleted by hand is
discovered again, so a long-lived client (the daemon's) heals the app instead of failing with
`404 page not found` on every sync until it restarts (issue 20, report 11)."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client

from syncer.apply import sync
from syncer.errors import SyncerError
from syncer.kube import Kube
from tests.e2e.apps import eventually, options, render_app, write_app
from tests.e2e.test_safety import CRD, crd_group, widget  # noqa: F401 - fixture


def test_a_crd_deleted_by_hand_is_discovered_again_by_the_same_client(
    tmp_path: Path, kube: Kube, namespace: str, crd_group: str, kube_api: client.ApiClient,  # noqa: F811
) -> None:
    app = write_app(tmp_path / "app", {"crd.yaml": CRD.format(group=crd_group), "w.yaml": widget(crd_group, "w1")})
    manifests = render_app(app, namespace=namespace)
    assert sync(kube, manifests, options=options("disc", namespace), revision="r1").ok

    extensions = client.ApiextensionsV1Api(kube_api)
    extensions.delete_custom_resource_definition(f"widgets.{crd_group}")

    def gone() -> bool:
        try:
            extensions.read_custom_resource_definition(f"widgets.{crd_group}")
        except client.ApiException as error:
            return error.status == 404
        return False

    eventually(gone, timeout=60, what="the CustomResourceDefinition to be deleted")

    # The same client, as the daemon keeps it: its first sync may still meet the stale
    # discovery (and forget it); the next one must converge.
    outcomes: list[str] = []
    for _ in range(2):
        try:
            changes = sync(kube, manifests, options=options("disc", namespace), revision="r1")
            outcomes.append("ok" if changes.ok else str(changes.error))
        except SyncerError as error:
            outcomes.append(str(error))
    assert outcomes[-1] == "ok", outcomes
    widget_object = client.CustomObjectsApi(kube_api).get_namespaced_custom_object(
        crd_group, "v1", namespace, "widgets", "w1")
    assert widget_object["spec"] == {"size": 1}
