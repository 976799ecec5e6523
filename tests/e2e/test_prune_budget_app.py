"""The prune budget in the daemon (issue 22), with `syncer run` as a separate process against
the real API server: a commit that removes most of an App leaves the App Stalled
(`PruneBudget`) with one Event, however often the daemon retries, and writes nothing; raising
the App's `spec.maxPrune` lets the next reconcile through."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client

from tests.e2e.apps import SLACK
from tests.e2e.test_app_bounds import configmaps
from tests.e2e.test_apps import Kubectl, app_yaml, condition
from tests.e2e.test_apps import installed, run_daemon  # noqa: F401 - fixtures
from tests.e2e.test_daemon import commit, configmap_yaml, eventually
from tests.e2e.test_daemon import repo  # noqa: F401 - the fixture: a Git repository with shop/config.yaml


def test_an_app_whose_commit_removes_most_of_it_is_stalled_until_its_budget_is_raised(
    installed: Kubectl, repo: Path, namespace: str, kube_api: client.ApiClient,  # noqa: F811
    run_daemon: Callable[..., subprocess.Popen[str]],  # noqa: F811
) -> None:
    kubectl = installed
    first = commit(repo, {"parts/objects.yaml": configmaps(10)})
    run_daemon("--watch-namespace", namespace)
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "parts", repo=repo, path="parts"))
    kubectl("wait", "--for=condition=Ready", "app/parts", "-n", namespace, "--timeout=60s")
    assert kubectl.status(namespace, "parts")["lastAppliedRevision"] == first
    core = client.CoreV1Api(kube_api)

    def members() -> dict[str, tuple[str, str]]:
        return {c.metadata.name: (c.metadata.uid, c.metadata.resource_version)
                for c in core.list_namespaced_config_map(namespace).items if c.metadata.name.startswith("big-")}

    before = members()
    assert len(before) == 10
    most = commit(repo, {"parts/objects.yaml": configmaps(3)})

    def stalled() -> dict[str, object] | None:
        found = condition(kubectl.status(namespace, "parts"), "Stalled")
        return found if found.get("status") == "True" else None

    found = eventually(stalled, timeout=SLACK, what="the App past its prune budget to be Stalled")
    assert found["reason"] == "PruneBudget"
    assert found["message"] == (
        f"App/{namespace}/parts: revision {most[:12]}: app parts: blocked by the prune budget: this sync would "
        "delete 7 of the app's 10 member(s), more than its budget of 50% of its members (5 object(s); a "
        "percentage never stops fewer than 5); pass --confirm-prune-all to let this sync through, or raise "
        "the budget with --max-prune N|P% (an app: maxPrune in its spec)")
    # Several intervals (2 s each) later: still Stalled, nothing written, one Event.
    time.sleep(8)
    status = kubectl.status(namespace, "parts")
    assert condition(status, "Stalled")["reason"] == "PruneBudget"
    assert (status["lastAttemptedRevision"], status["lastAppliedRevision"]) == (most, first)
    assert members() == before
    events = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json", "--field-selector",
                                "involvedObject.kind=App,involvedObject.name=parts").stdout)["items"]
    budget = [e for e in events if "prune budget" in e["message"]]
    assert len(budget) == 1 and budget[0]["count"] in (1, None), [(e["reason"], e["message"]) for e in events]

    kubectl("patch", "app", "parts", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": {"maxPrune": "70%"}}))
    eventually(lambda: kubectl.status(namespace, "parts").get("lastAppliedRevision") == most, timeout=SLACK,
               what="the App to apply the commit within its raised budget")
    kubectl("wait", "--for=condition=Ready", "app/parts", "-n", namespace, "--timeout=60s")
    assert sorted(members()) == ["big-0", "big-1", "big-2"]
