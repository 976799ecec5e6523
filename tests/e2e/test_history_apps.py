"""An App's sync history, with `syncer run` as a separate process against the real API server:
`status.history` after the first sync, a new commit and a heal, as `syncer history --app`
prints it, and no write of the App while nothing happens."""

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
from tests.e2e.test_apps import Kubectl, app_yaml, syncer
from tests.e2e.test_apps import installed, run_daemon  # noqa: F401 - fixtures
from tests.e2e.test_daemon import commit, configmap_yaml, eventually
from tests.e2e.test_daemon import repo  # noqa: F401 - the fixture: a Git repository
from tests.schema import assert_valid


def test_an_apps_history_is_in_its_status_and_syncer_history_prints_it(
    installed: Kubectl, cluster: ClusterAccess, repo: Path, namespace: str, kube_api: client.ApiClient,  # noqa: F811
    run_daemon: Callable[..., subprocess.Popen[str]],  # noqa: F811
) -> None:
    kubectl = installed
    core = client.CoreV1Api(kube_api)
    first = commit(repo, {"web/color.yaml": configmap_yaml("color", "blue")})
    run_daemon("--watch-namespace", namespace)
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "web", repo=repo, path="web"))

    def history() -> list[dict[str, Any]]:
        return list(kubectl.status(namespace, "web").get("history") or [])

    eventually(lambda: [e["revision"] for e in history()] == [first], timeout=SLACK, what="the first sync's entry")
    second = commit(repo, {"web/color.yaml": configmap_yaml("color", "green")})
    eventually(lambda: [e["revision"] for e in history()] == [second, first], timeout=SLACK,
               what="the second revision's entry")
    core.patch_namespaced_config_map("color", namespace, {"data": {"color": "red"}})
    eventually(lambda: len(history()) == 3, timeout=SLACK, what="the heal's entry")
    assert core.read_namespaced_config_map("color", namespace).data == {"color": "green"}

    heal, synced, created = history()
    assert (created["result"], created["trigger"]["kind"], created["summary"]) == (
        "Succeeded", "interval", {"created": 1})
    assert synced["summary"] == {"configured": 1} and synced["planDigest"].startswith("sha256:")
    assert heal["trigger"] == {"kind": "heal", "objects": [f"ConfigMap/{namespace}/color"]}
    assert (heal["revision"], heal["count"], heal["summary"]["configured"]) == (second, 1, 1)

    printed = syncer(cluster, "history", "--app", "web", "-n", namespace, "-o", "json")
    assert printed.returncode == 0, printed.stderr
    document = json.loads(printed.stdout)
    assert_valid(document, kind="History")
    assert document["items"] == [heal, synced, created] and document["source"] == f"App/{namespace}/web"
    text = syncer(cluster, "history", "--app", "web", "-n", namespace)
    assert text.returncode == 0 and text.stderr == ""
    assert [line.split()[3] for line in text.stdout.splitlines()[1:]] == [second[:12], second[:12], first[:12]]

    # Intervals (2s) pass with nothing to do: the App is not written.
    version = kubectl.app(namespace, "web")["metadata"]["resourceVersion"]
    time.sleep(6)
    assert kubectl.app(namespace, "web")["metadata"]["resourceVersion"] == version
