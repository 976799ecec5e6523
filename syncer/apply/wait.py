"""Health of applied objects, for `--wait` and for CRDs before their custom resources.

`health(obj)` is pure: it reads an object's status the way kstatus does for the common kinds.
`wait_healthy` polls the cluster until every object is healthy or the timeout passes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from syncer.kube import Kube, Resource
from syncer.model import Object, ObjectRef

Health = Literal["healthy", "progressing", "failed"]


@dataclass(frozen=True)
class HealthStatus:
    state: Health
    message: str = ""


def _condition(obj: Object, kind: str) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == kind:
            return condition
    return None


_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")


def _observed(obj: Object) -> bool:
    """The controller has seen the latest spec. Workload controllers always report
    observedGeneration, so its absence means not yet; for other kinds (kstatus's rule) it only
    counts when present."""
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is None:
        return True
    if observed is None:
        return obj.get("kind") not in _WORKLOADS
    return bool(observed >= generation)


def health(obj: Object) -> HealthStatus:
    """Whether an object has reached the state its spec asks for."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if kind == "CustomResourceDefinition":
        established = _condition(obj, "Established")
        if established and established.get("status") == "True":
            return HealthStatus("healthy")
        return HealthStatus("progressing", "not yet Established")
    if not _observed(obj):
        return HealthStatus("progressing", "the controller has not yet observed the latest generation")
    if kind == "Deployment":
        progressing = _condition(obj, "Progressing")
        if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
            return HealthStatus("failed", progressing.get("message", "progress deadline exceeded"))
        want = spec.get("replicas", 1)
        for field in ("updatedReplicas", "availableReplicas"):
            if status.get(field, 0) < want:
                return HealthStatus("progressing", f"{status.get(field, 0)}/{want} {field}")
        if status.get("replicas", 0) > want:
            return HealthStatus("progressing", "old replicas are still terminating")
        return HealthStatus("healthy")
    if kind == "StatefulSet":
        want = spec.get("replicas", 1)
        if status.get("readyReplicas", 0) < want:
            return HealthStatus("progressing", f"{status.get('readyReplicas', 0)}/{want} ready")
        strategy = spec.get("updateStrategy") or {}
        if strategy.get("type") == "OnDelete":
            return HealthStatus("healthy")  # pods are only replaced when a user deletes them
        partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
        if partition:
            updated = status.get("updatedReplicas", 0)
            if updated < want - partition:
                return HealthStatus("progressing", f"{updated}/{want - partition} updated above the partition")
            return HealthStatus("healthy")
        if status.get("updateRevision") and status.get("currentRevision") != status.get("updateRevision"):
            return HealthStatus("progressing", "rolling update in progress")
        return HealthStatus("healthy")
    if kind == "DaemonSet":
        want = status.get("desiredNumberScheduled", 0)
        for field in ("updatedNumberScheduled", "numberAvailable"):
            if status.get(field, 0) < want:
                return HealthStatus("progressing", f"{status.get(field, 0)}/{want} {field}")
        return HealthStatus("healthy")
    if kind == "Job":
        failed = _condition(obj, "Failed")
        if failed and failed.get("status") == "True":
            return HealthStatus("failed", failed.get("message", "job failed"))
        complete = _condition(obj, "Complete")
        if complete and complete.get("status") == "True":
            return HealthStatus("healthy")
        return HealthStatus("progressing", "not complete")
    if kind == "PersistentVolumeClaim":
        phase = status.get("phase")
        return HealthStatus("healthy") if phase == "Bound" else HealthStatus("progressing", f"phase {phase}")
    ready = _condition(obj, "Ready")
    if ready is not None:
        if ready.get("status") == "True":
            return HealthStatus("healthy")
        return HealthStatus("progressing", ready.get("message") or ready.get("reason") or "not Ready")
    return HealthStatus("healthy")


@dataclass(frozen=True)
class WaitTarget:
    ref: ObjectRef
    resource: Resource


def wait_healthy(
    kube: Kube, targets: Sequence[WaitTarget], *, timeout: float, poll_interval: float = 1.0
) -> dict[ObjectRef, HealthStatus]:
    """Poll until every target is healthy (or failed), or the timeout passes.

    Returns the last status of the targets that are not healthy (empty when all are).
    """
    pending = {t.ref: t for t in targets}
    last: dict[ObjectRef, HealthStatus] = {}
    deadline = time.monotonic() + timeout
    while pending:
        for ref, target in list(pending.items()):
            obj = kube.get(target.resource, ref.name, namespace=ref.namespace)
            status = HealthStatus("failed", "not found") if obj is None else health(obj)
            if status.state == "healthy":
                del pending[ref]
                last.pop(ref, None)
            else:
                last[ref] = status
                if status.state == "failed":
                    del pending[ref]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(poll_interval)
    return last
