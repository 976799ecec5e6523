"""APIServices on an API server that cannot server-side apply them (Kubernetes 1.20).

The local control plane is 1.20.2, whose kube-aggregator panics on a server-side apply of
an APIService. syncer updates such objects with get + put instead and keeps three-way
semantics through its own last-applied record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from syncer.errors import ClusterError
from syncer.kube import Kube
from syncer.apply.updateapply import LAST_APPLIED_ANNOTATION, apply_or_update, fallback_reason

NAME = "v1beta1.fallback.syncer.test"


def apiservice(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": NAME, "labels": {"app": "fallback"}},
        "spec": {"group": "fallback.syncer.test", "version": "v1beta1", "groupPriorityMinimum": 100,
                 "versionPriority": 100, "insecureSkipTLSVerify": True,
                 "service": {"name": "backend", "namespace": "default"}, **spec},
    }


@pytest.fixture
def apiservices(kube: Kube, kube_api: client.ApiClient) -> Iterator[Any]:
    resource = kube.resource_for("apiregistration.k8s.io/v1", "APIService")
    if fallback_reason(resource.group_kind, kube.server_version()) is None:
        pytest.skip("this API server can server-side apply APIServices")
    yield resource
    api = client.ApiregistrationV1Api(kube_api)
    try:
        api.delete_api_service(NAME)
    except client.ApiException as error:
        if error.status != 404:
            raise


def live(kube_api: client.ApiClient) -> Any:
    return client.ApiregistrationV1Api(kube_api).read_api_service(NAME)


def test_the_server_really_cannot_server_side_apply_it(kube: Kube, apiservices: Any) -> None:
    """The fault this fallback exists for: checked, so the tests below cannot pass by accident.
    A failure of the server's own is reported as such at once, not retried as transient."""
    before = kube.stats.by_verb["dry-run"]
    with pytest.raises(ClusterError) as excinfo:
        kube.request("PATCH", apiservices.path(name=NAME), subject=f"APIService/{NAME}", verb="dry-run",
                     query={"fieldManager": "syncer", "dryRun": "All"},
                     body=json.dumps(apiservice()), content_type="application/apply-patch+yaml")
    # 1.20.2 answers nothing at all: the panic closes the connection, while /version still
    # answers. Two such drops in a row are the server's fault, not the network's.
    assert type(excinfo.value) is ClusterError and excinfo.value.reason == "ConnectionDropped"
    assert "cannot reach" not in str(excinfo.value) and "gave up" not in str(excinfo.value)
    assert kube.stats.by_verb["dry-run"] - before == 2, "not retried as a transient failure"


def test_create_resync_change_and_removal(kube: Kube, kube_api: client.ApiClient, apiservices: Any) -> None:
    # As the executor writes a planned object whose plan found the kind needs the fallback.
    why = fallback_reason(apiservices.group_kind, kube.server_version())
    apply = lambda obj, dry_run=False: apply_or_update(  # noqa: E731
        kube, apiservices, obj, subject=f"APIService/{NAME}", field_manager="syncer", force=True, dry_run=dry_run,
        update_instead=why)

    predicted = apply(apiservice(), dry_run=True)
    assert predicted["spec"]["groupPriorityMinimum"] == 100
    with pytest.raises(client.ApiException):
        live(kube_api)  # a dry run created nothing

    created = apply(apiservice())
    # The aggregator's availability controller writes the new APIService's status once, on
    # its own schedule: wait for it, so the resync below is judged on syncer's writes alone.
    deadline = time.monotonic() + 30
    while not (live(kube_api).status and live(kube_api).status.conditions) and time.monotonic() < deadline:
        time.sleep(0.1)
    first = live(kube_api)
    assert first.metadata.uid == created["metadata"]["uid"]
    assert json.loads(first.metadata.annotations[LAST_APPLIED_ANNOTATION])["spec"]["versionPriority"] == 100

    apply(apiservice())
    assert live(kube_api).metadata.resource_version == first.metadata.resource_version, "a resync writes nothing"

    # Another manager adds a label; Git drops `insecureSkipTLSVerify` and changes a priority.
    client.ApiregistrationV1Api(kube_api).patch_api_service(NAME, {"metadata": {"labels": {"team": "infra"}}})
    changed = apiservice(versionPriority=20)
    del changed["spec"]["insecureSkipTLSVerify"]
    before = live(kube_api).metadata.resource_version
    predicted = apply(changed, dry_run=True)
    assert predicted["spec"]["versionPriority"] == 20 and "insecureSkipTLSVerify" not in predicted["spec"]
    assert live(kube_api).metadata.resource_version == before, "dry run means dry"

    apply(changed)
    after = live(kube_api)
    assert after.metadata.uid == first.metadata.uid
    assert after.spec.version_priority == 20
    assert not after.spec.insecure_skip_tls_verify, "a field syncer applied and Git dropped is removed"
    assert after.metadata.labels == {"app": "fallback", "team": "infra"}, "another manager's label stays"
