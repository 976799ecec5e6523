"""health(): what `--wait` decides from an object's status. Pure: objects in, verdicts out.
(When a lock may be taken over is the Lease protocol's, tests/unit/test_lease.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from syncer.apply.wait import health
from syncer.model import Object


def obj(
    api_version: str,
    kind: str,
    *,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    generation: int | None = None,
) -> Object:
    metadata: dict[str, Any] = {"name": "web", "namespace": "shop"}
    if generation is not None:
        metadata["generation"] = generation
    result: Object = {"apiVersion": api_version, "kind": kind, "metadata": metadata}
    if spec is not None:
        result["spec"] = spec
    if status is not None:
        result["status"] = status
    return result


def condition(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def deployment(status: dict[str, Any] | None, *, replicas: int | None = 3, generation: int = 2) -> Object:
    return obj("apps/v1", "Deployment", spec={} if replicas is None else {"replicas": replicas},
               status=status, generation=generation)


DEPLOYMENT_DONE = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
                   "readyReplicas": 3}


def statefulset(status: dict[str, Any], *, spec: dict[str, Any] | None = None, generation: int = 2) -> Object:
    return obj("apps/v1", "StatefulSet", spec=spec or {"replicas": 3}, status=status, generation=generation)


STATEFULSET_DONE = {"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "currentReplicas": 3,
                    "updatedReplicas": 3, "currentRevision": "web-7d9f", "updateRevision": "web-7d9f"}


def daemonset(status: dict[str, Any], *, generation: int = 2) -> Object:
    return obj("apps/v1", "DaemonSet", spec={}, status=status, generation=generation)


DAEMONSET_DONE = {"observedGeneration": 2, "desiredNumberScheduled": 4, "currentNumberScheduled": 4,
                  "updatedNumberScheduled": 4, "numberAvailable": 4, "numberReady": 4}


def job(*conditions: dict[str, str]) -> Object:
    return obj("batch/v1", "Job", spec={"template": {}}, status={"conditions": list(conditions)} if conditions else {})


def crd(*conditions: dict[str, str]) -> Object:
    return obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", spec={}, status={"conditions": list(conditions)})


HEALTH_TABLE = [
    # Deployment
    pytest.param(deployment(DEPLOYMENT_DONE), "healthy", id="deployment-rolled-out"),
    pytest.param(deployment({**DEPLOYMENT_DONE, "observedGeneration": 1}), "progressing",
                 id="deployment-new-generation-not-observed"),
    pytest.param(deployment(None, generation=1), "progressing", id="deployment-just-created-no-status"),
    pytest.param(deployment({**DEPLOYMENT_DONE, "updatedReplicas": 1}), "progressing", id="deployment-updating"),
    pytest.param(deployment({**DEPLOYMENT_DONE, "availableReplicas": 2}), "progressing",
                 id="deployment-not-all-available"),
    pytest.param(deployment({**DEPLOYMENT_DONE, "replicas": 4}), "progressing", id="deployment-old-pods-terminating"),
    pytest.param(deployment({**DEPLOYMENT_DONE, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1},
                            replicas=None), "healthy", id="deployment-default-one-replica"),
    pytest.param(deployment({"observedGeneration": 2}, replicas=0), "healthy", id="deployment-scaled-to-zero"),
    pytest.param(
        deployment({**DEPLOYMENT_DONE, "updatedReplicas": 1, "conditions": [
            condition("Progressing", "False", "ProgressDeadlineExceeded",
                      'ReplicaSet "web-5d4f" has timed out progressing.'),
        ]}),
        "failed", id="deployment-progress-deadline-exceeded",
    ),
    pytest.param(
        deployment({**DEPLOYMENT_DONE, "updatedReplicas": 1, "conditions": [
            condition("Progressing", "True", "ReplicaSetUpdated"),
        ]}),
        "progressing", id="deployment-progressing-condition-fine",
    ),
    # StatefulSet
    pytest.param(statefulset(STATEFULSET_DONE), "healthy", id="statefulset-rolled-out"),
    pytest.param(statefulset({**STATEFULSET_DONE, "observedGeneration": 1}), "progressing",
                 id="statefulset-not-observed"),
    pytest.param(statefulset({**STATEFULSET_DONE, "readyReplicas": 2}), "progressing", id="statefulset-not-all-ready"),
    pytest.param(statefulset({**STATEFULSET_DONE, "updateRevision": "web-8a1c"}), "progressing",
                 id="statefulset-rolling-update"),
    # DaemonSet
    pytest.param(daemonset(DAEMONSET_DONE), "healthy", id="daemonset-rolled-out"),
    pytest.param(daemonset({**DAEMONSET_DONE, "observedGeneration": 1}), "progressing", id="daemonset-not-observed"),
    pytest.param(daemonset({**DAEMONSET_DONE, "updatedNumberScheduled": 3}), "progressing", id="daemonset-updating"),
    pytest.param(daemonset({**DAEMONSET_DONE, "numberAvailable": 2}), "progressing", id="daemonset-not-available"),
    # Job
    pytest.param(job(condition("Complete", "True")), "healthy", id="job-complete"),
    pytest.param(job(condition("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")),
                 "failed", id="job-failed"),
    pytest.param(job(), "progressing", id="job-running"),
    pytest.param(job(condition("Complete", "False")), "progressing", id="job-complete-false"),
    pytest.param(job(condition("Failed", "False"), condition("Complete", "True")), "healthy",
                 id="job-failed-false-complete-true"),
    # CustomResourceDefinition
    pytest.param(crd(condition("NamesAccepted", "True"), condition("Established", "True")), "healthy",
                 id="crd-established"),
    pytest.param(crd(condition("NamesAccepted", "True"), condition("Established", "False")), "progressing",
                 id="crd-not-established"),
    pytest.param(crd(), "progressing", id="crd-no-conditions-yet"),
    # PersistentVolumeClaim
    pytest.param(obj("v1", "PersistentVolumeClaim", spec={}, status={"phase": "Bound"}), "healthy", id="pvc-bound"),
    pytest.param(obj("v1", "PersistentVolumeClaim", spec={}, status={"phase": "Pending"}), "progressing",
                 id="pvc-pending"),
    # Anything else: a Ready condition when there is one
    pytest.param(obj("cert-manager.io/v1", "Certificate", status={"conditions": [condition("Ready", "True")]}),
                 "healthy", id="generic-ready-true"),
    pytest.param(obj("cert-manager.io/v1", "Certificate",
                     status={"conditions": [condition("Ready", "False", "Issuing", "Issuing certificate")]}),
                 "progressing", id="generic-ready-false"),
    pytest.param(obj("cert-manager.io/v1", "Certificate", status={"conditions": [condition("Ready", "Unknown")]}),
                 "progressing", id="generic-ready-unknown"),
    pytest.param(obj("v1", "ConfigMap"), "healthy", id="configmap-without-status"),
    pytest.param(obj("v1", "Service", spec={"ports": [{"port": 80}]}, status={"loadBalancer": {}}), "healthy",
                 id="service-without-conditions"),
    pytest.param(obj("example.com/v1", "Widget", status={"conditions": [condition("Synced", "False")]}), "healthy",
                 id="generic-without-ready-condition"),
]


@pytest.mark.parametrize(("live", "want"), HEALTH_TABLE)
def test_health(live: Object, want: str) -> None:
    assert health(live).state == want


@pytest.mark.parametrize(
    ("live", "message_part"),
    [
        pytest.param(
            deployment({**DEPLOYMENT_DONE, "conditions": [condition(
                "Progressing", "False", "ProgressDeadlineExceeded", 'ReplicaSet "web-5d4f" has timed out progressing.',
            )]}),
            'ReplicaSet "web-5d4f" has timed out progressing.',
            id="deployment-deadline",
        ),
        pytest.param(job(condition("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")),
                     "backoff limit", id="job"),
        pytest.param(deployment({**DEPLOYMENT_DONE, "availableReplicas": 1}), "1/3", id="deployment-counts"),
        pytest.param(obj("cert-manager.io/v1", "Certificate",
                         status={"conditions": [condition("Ready", "False", "Issuing", "Issuing certificate")]}),
                     "Issuing certificate", id="generic-ready-message"),
        pytest.param(obj("cert-manager.io/v1", "Certificate",
                         status={"conditions": [condition("Ready", "False", "Pending")]}),
                     "Pending", id="generic-ready-reason-without-message"),
    ],
)
def test_unhealthy_states_say_why(live: Object, message_part: str) -> None:
    assert message_part in health(live).message


# Cases where kstatus (cli-utils pkg/kstatus/status/core.go) is the reference.
def test_daemonset_not_yet_seen_by_its_controller_is_progressing() -> None:
    fresh = daemonset({"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                       "numberReady": 0}, generation=1)
    assert health(fresh).state == "progressing"


def test_stale_ready_condition_of_a_changed_object_is_progressing() -> None:
    stale = obj("helm.toolkit.fluxcd.io/v2", "HelmRelease", spec={"chart": {}}, generation=2,
                status={"observedGeneration": 1, "conditions": [condition("Ready", "True")]})
    assert health(stale).state == "progressing"


def test_partitioned_statefulset_rollout_is_healthy_once_its_partition_is_updated() -> None:
    staged = statefulset(
        {**STATEFULSET_DONE, "updatedReplicas": 1, "currentReplicas": 2, "updateRevision": "web-8a1c"},
        spec={"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}},
    )
    assert health(staged).state == "healthy"


def test_on_delete_statefulset_is_healthy_when_its_pods_are_ready() -> None:
    on_delete = statefulset({**STATEFULSET_DONE, "updateRevision": "web-8a1c"},
                            spec={"replicas": 3, "updateStrategy": {"type": "OnDelete"}})
    assert health(on_delete).state == "healthy"
