"""Approval for Apps (issue 22), with `syncer run` as a separate process against the real API
server: an App with `spec.approval: manual` plans each new revision and waits, showing the
plan's summary and digest; `syncer approve` applies exactly that plan, and a plan that moved
since it was reviewed is refused with nothing written."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.conftest import ClusterAccess
from tests.e2e.apps import SLACK
from tests.e2e.test_apps import Kubectl, app_yaml, condition, syncer
from tests.e2e.test_apps import installed, run_daemon  # noqa: F401 - fixtures
from tests.e2e.test_daemon import commit, configmap_yaml, eventually
from tests.e2e.test_daemon import repo  # noqa: F401 - the fixture: a Git repository


def test_a_manual_app_waits_for_approval_and_applies_exactly_the_approved_plan(
    installed: Kubectl, cluster: ClusterAccess, repo: Path, namespace: str, kube_api: client.ApiClient,  # noqa: F811
    run_daemon: Callable[..., subprocess.Popen[str]],  # noqa: F811
) -> None:
    kubectl = installed
    core = client.CoreV1Api(kube_api)
    first = commit(repo, {"web/color.yaml": configmap_yaml("color", "blue")})
    run_daemon("--watch-namespace", namespace)
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "web", repo=repo, path="web", approval="manual",
                                               selfHeal=False))

    def pending(revision: str) -> dict[str, Any] | None:
        found = kubectl.status(namespace, "web").get("pendingPlan") or {}
        return found if found.get("revision") == revision else None

    def colors() -> dict[str, str]:
        return {c.metadata.name: (c.data or {}).get("color", "") for c in core.list_namespaced_config_map(namespace).items
                if c.metadata.name == "color"}

    # The first revision is planned, shown, and not applied.
    plan = eventually(lambda: pending(first), timeout=SLACK, what="the first revision to wait for approval")
    assert plan["summary"] == {"created": 1}
    ready = condition(kubectl.status(namespace, "web"), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "AwaitingApproval")
    assert f"syncer approve --app web -n {namespace} --digest {plan['digest']}" in ready["message"]
    time.sleep(5)  # intervals pass: still waiting, still nothing applied
    assert colors() == {} and pending(first) == plan

    approved = syncer(cluster, "approve", "web", "-n", namespace, "--digest", plan["digest"], "--wait")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert colors() == {"color": "blue"}
    status = kubectl.status(namespace, "web")
    assert status["lastAppliedRevision"] == first and "pendingPlan" not in status

    # A new revision waits; a hand edit of the planned object after the review moves the plan:
    # approving the reviewed digest is refused (exit 3) and nothing is written.
    second = commit(repo, {"web/color.yaml": configmap_yaml("color", "green")})
    reviewed = eventually(lambda: pending(second), timeout=SLACK, what="the second revision to wait for approval")
    assert reviewed["summary"] == {"configured": 1} and colors() == {"color": "blue"}
    core.patch_namespaced_config_map("color", namespace, {"data": {"color": "red"}})
    eventually(lambda: (pending(second) or reviewed)["digest"] != reviewed["digest"], timeout=SLACK,
               what="the daemon to plan the moved revision again")
    stale = syncer(cluster, "approve", "web", "-n", namespace, "--digest", reviewed["digest"], "--wait")
    assert stale.returncode == 3, stale.stdout + stale.stderr
    assert "review it again" in stale.stderr
    assert colors() == {"color": "red"}
    assert kubectl.status(namespace, "web")["lastAppliedRevision"] == first

    fresh = pending(second)
    assert fresh is not None
    again = syncer(cluster, "approve", "--app", "web", "-n", namespace, "--digest", fresh["digest"], "--wait")
    assert again.returncode == 0, again.stdout + again.stderr
    assert colors() == {"color": "green"}
    events = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json", "--field-selector",
                                "involvedObject.kind=App,involvedObject.name=web").stdout)["items"]
    awaiting = [e for e in events if e["reason"] == "AwaitingApproval"]
    assert len(awaiting) == 3, [(e["reason"], e["message"]) for e in events]  # one per plan: first, second, moved
