"""Which changes the watch cache reports as possible drift (and so start a heal): a change to
nothing but an object's status does not, nor does a sync's own record of its outcome on the
ApplySet parent (a failed sync's record once started a heal that reported the app Ready)."""

from __future__ import annotations

from typing import Any

import pytest

from syncer.apply.membercache import records_only, status_only
from syncer.apply.status import APPLIED_REVISION_ANNOTATION, ERROR_ANNOTATION, RESULT_ANNOTATION
from syncer.model import Object


def parent(**annotations: str) -> Object:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "syncer-shop", "namespace": "shop", "resourceVersion": "1",
                         "labels": {"applyset.kubernetes.io/id": "applyset-x-v1"},
                         "annotations": {"applyset.kubernetes.io/contains-group-kinds": "ConfigMap", **annotations}}}


def changed(obj: Object, **metadata: Any) -> Object:
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": "2", **metadata}}


@pytest.mark.parametrize(("after", "only_records"), [
    pytest.param(changed(parent(), annotations={**parent()["metadata"]["annotations"], RESULT_ANNOTATION: "Failed",
                                                ERROR_ANNOTATION: "yaml error"}), True, id="a sync's record"),
    pytest.param(changed(parent(**{APPLIED_REVISION_ANNOTATION: "v1"}), annotations={
        **parent()["metadata"]["annotations"], APPLIED_REVISION_ANNOTATION: "v2", RESULT_ANNOTATION: "Succeeded"}),
                 False, id="a record that moves the applied revision"),
    pytest.param(changed(parent(), annotations={"applyset.kubernetes.io/contains-group-kinds": "ConfigMap,Secret"}),
                 False, id="the inventory"),
    pytest.param(changed(parent(), labels={}), False, id="its id label"),
])
def test_a_parent_change_that_only_records_an_outcome_is_not_drift(after: Object, only_records: bool) -> None:
    assert records_only(parent(), after) is only_records
    assert records_only(None, after) is False


def test_status_only_needs_a_generation() -> None:
    deployment = {"metadata": {"generation": 3, "labels": {"a": "b"}}, "status": {"replicas": 1}}
    assert status_only(deployment, {**deployment, "status": {"replicas": 2}})
    assert not status_only(deployment, {**deployment, "metadata": {"generation": 4, "labels": {"a": "b"}}})
    configmap = {"metadata": {"labels": {}}, "data": {"k": "v"}}
    assert not status_only(configmap, configmap)
