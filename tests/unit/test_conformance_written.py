"""`conformance.cluster.written_by`: what counts as syncer writing an object between two
reads, on objects captured from a local Kubernetes 1.20.2 control plane.

kapp-examples/cassandra once failed "resync: exit 0, 1 object(s) written" on a quiet machine.
The resync wrote nothing: about a second after the StatefulSet was created, the StatefulSet
controller's status update took `spec.volumeClaimTemplates` out of syncer's managed fields,
and when that landed between the reads before and after the resync, the old fingerprint
(syncer's whole managedFields entry) changed.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from conformance.cluster import write_seen
from conformance.cluster import written_by as written_by_syncer

CAPTURED = json.loads((Path(__file__).parent / "data" / "statefulset-status-takes-volumeclaimtemplates.json").read_text())


def entry(obj: dict[str, Any], manager: str) -> dict[str, Any]:
    return next(e for e in obj["metadata"]["managedFields"] if e["manager"] == manager)


def test_the_capture_is_what_the_controller_did() -> None:
    before, after = CAPTURED["before"], CAPTURED["after"]
    assert "f:volumeClaimTemplates" in entry(before, "syncer")["fieldsV1"]["f:spec"]
    assert "f:volumeClaimTemplates" not in entry(after, "syncer")["fieldsV1"]["f:spec"]
    assert "f:volumeClaimTemplates" in entry(after, "kube-controller-manager")["fieldsV1"]["f:spec"]
    assert entry(before, "syncer")["time"] == entry(after, "syncer")["time"]
    assert before["spec"] == after["spec"]


def test_a_controller_taking_fields_from_syncer_is_not_a_write_of_syncer() -> None:
    assert not written_by_syncer(CAPTURED["before"], CAPTURED["after"])
    assert not written_by_syncer(CAPTURED["after"], CAPTURED["after"])


def test_what_only_syncer_changes_is_a_write() -> None:
    before, after = CAPTURED["before"], CAPTURED["after"]
    later = copy.deepcopy(after)
    entry(later, "syncer")["time"] = "2030-01-01T00:00:00Z"
    assert written_by_syncer(after, later), "syncer applied a change (its entry's time)"

    regained = copy.deepcopy(after)
    entry(regained, "syncer")["fieldsV1"]["f:spec"]["f:volumeClaimTemplates"] = {}
    assert written_by_syncer(after, regained), "syncer applied a field it did not own"

    dropped = copy.deepcopy(before)
    del entry(dropped, "syncer")["fieldsV1"]["f:spec"]["f:serviceName"]
    assert written_by_syncer(before, dropped), "a field left syncer's entry for no one else's"

    bumped = copy.deepcopy(after)
    bumped["metadata"]["generation"] += 1
    assert written_by_syncer(after, bumped)

    recreated = copy.deepcopy(after)
    recreated["metadata"]["uid"] = "another"
    assert written_by_syncer(after, recreated)
    assert written_by_syncer(None, after) and written_by_syncer(after, None)
    assert not written_by_syncer(None, None)


def test_configmap_data_is_a_write() -> None:
    configmap: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"uid": "u", "managedFields": []},
                 "data": {"color": "blue"}}
    changed = copy.deepcopy(configmap)
    changed["data"]["color"] = "green"
    assert written_by_syncer(configmap, changed)
    assert not written_by_syncer(configmap, copy.deepcopy(configmap))


HPA_CAPTURE = json.loads((Path(__file__).parent / "data" / "hpa-scales-deployment.json").read_text())


def test_an_autoscaler_scaling_a_deployment_is_not_a_write_of_syncer() -> None:
    """podinfo/kustomize once failed "resync: 1 object(s) written (Deployment/podinfo)": its
    HorizontalPodAutoscaler (minReplicas 2) scaled the Deployment about a second after it was
    created, moving its generation, and that landed between the reads around the resync."""
    before, after = HPA_CAPTURE["before"], HPA_CAPTURE["after"]
    assert (before["metadata"]["generation"], after["metadata"]["generation"]) == (1, 2)
    assert (before["spec"]["replicas"], after["spec"]["replicas"]) == (1, 2)
    assert before["metadata"]["managedFields"] == after["metadata"]["managedFields"]
    assert not written_by_syncer(before, after)


def test_a_spec_change_in_fields_syncer_owns_is_a_write_even_with_its_entry_unmoved() -> None:
    before = HPA_CAPTURE["before"]
    changed = copy.deepcopy(before)
    changed["metadata"]["generation"] += 1
    changed["spec"]["minReadySeconds"] = 30
    assert written_by_syncer(before, changed)
    write_seen_why = write_seen(before, changed)
    assert write_seen_why is not None and "f:minReadySeconds" in write_seen_why
