"""Bounded resources per App (issue 20, report 8), with `syncer run` as a separate process
against the real API server: an App past the object bound is Stalled, names the bound and the
flag that raises it, writes nothing, and the daemon keeps serving every other App."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from kubernetes import client

from tests.e2e.apps import SLACK, configmap
from tests.e2e.test_apps import Kubectl, app_yaml, condition
from tests.e2e.test_apps import installed, run_daemon  # noqa: F401 - fixtures
from tests.e2e.test_daemon import commit, configmap_yaml, eventually, git
from tests.e2e.test_daemon import repo  # noqa: F401 - the fixture: a Git repository with shop/config.yaml

BOUND = 20


def configmaps(count: int) -> str:
    return "".join("---\n" + configmap_yaml(f"big-{n}", "blue") for n in range(count))


def test_an_app_past_the_object_bound_is_stalled_and_the_daemon_serves_the_others(
    installed: Kubectl, repo: Path, namespace: str, kube_api: client.ApiClient,  # noqa: F811
    run_daemon: Callable[..., subprocess.Popen[str]],  # noqa: F811
) -> None:
    kubectl = installed
    too_many = commit(repo, {"big/objects.yaml": configmaps(BOUND + 5)})
    daemon = run_daemon("--watch-namespace", namespace, "--max-objects", str(BOUND))
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "big", repo=repo, path="big"))
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "shop", repo=repo, path="shop"))

    def stalled() -> dict[str, object] | None:
        found = condition(kubectl.status(namespace, "big"), "Stalled")
        return found if found.get("status") == "True" else None

    found = eventually(stalled, timeout=SLACK, what="the App past the bound to be Stalled")
    assert found["reason"] == "RenderTooLarge"
    assert found["message"] == (
        f"App/{namespace}/big: revision {too_many[:12]}: big/objects.yaml:{7 * BOUND + 2}: more than "
        f"{BOUND} objects; the limit per app is {BOUND} objects (raise it with --max-objects, or render a "
        "narrower path)")
    status = kubectl.status(namespace, "big")
    assert {kind: condition(status, kind).get("status") for kind in ("Ready", "Reconciling")} == {
        "Ready": "False", "Reconciling": "False"}
    assert status["lastAttemptedRevision"] == too_many and "lastAppliedRevision" not in status
    assert all(configmap(kube_api, namespace, f"big-{n}") is None for n in range(BOUND + 5))

    # The other App is served meanwhile, and keeps being served.
    kubectl("wait", "--for=condition=Ready", "app/shop", "-n", namespace, "--timeout=60s")
    changed = commit(repo, {"shop/config.yaml": configmap_yaml("web-config", "green")})
    eventually(lambda: kubectl.status(namespace, "shop").get("lastAppliedRevision") == changed, timeout=SLACK,
               what="the other App's next commit to be applied")
    assert configmap(kube_api, namespace, "web-config").data == {"color": "green"}

    # A commit within the bound is what unblocks it; the daemon never restarted.
    within = commit(repo, {"big/objects.yaml": configmaps(BOUND)})
    kubectl("wait", "--for=condition=Ready", "app/big", "-n", namespace, "--timeout=60s")
    assert kubectl.status(namespace, "big")["lastAppliedRevision"] == within == git(repo, "rev-parse", "HEAD")
    assert configmap(kube_api, namespace, f"big-{BOUND - 1}") is not None
    assert daemon.poll() is None
