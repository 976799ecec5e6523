"""An App's sync history, with `syncer run` as a separate process against the real API server:
`status.history` after the first sync, a new commit and a heal, as `syncer history --app`
prints it, and no write of the App while nothing happens; and the daemon killed mid-sync,
reported as Interrupted when it restarts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.conftest import ClusterAccess
from tests.e2e.apps import SLACK, eventually, signal_at_write
from tests.e2e.test_apps import LAB_FLAGS, Kubectl, app_yaml, condition, syncer
from tests.e2e.test_apps import installed, run_daemon  # noqa: F401 - fixtures
from tests.e2e.test_daemon import commit, configmap_yaml, free_port
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


OBJECTS = 6
KILL_AT_WRITE = signal_at_write("SIGKILL")


def test_a_daemon_killed_mid_sync_reports_the_sync_interrupted_when_it_restarts_and_converges(
    installed: Kubectl, cluster: ClusterAccess, repo: Path, namespace: str, kube_api: client.ApiClient,  # noqa: F811
    run_daemon: Callable[..., subprocess.Popen[str]], tmp_path: Path,  # noqa: F811
) -> None:
    """`syncer run` itself killed with SIGKILL between two writes of an App's sync: the
    restarted daemon says so on the App (status.lastInterrupted, a SyncInterrupted Event, an
    Interrupted history entry) and then applies the rest."""
    kubectl = installed
    core = client.CoreV1Api(kube_api)

    def colors() -> list[str]:
        return [(core.read_namespaced_config_map(f"cm{n}", namespace).data or {})["color"] for n in range(OBJECTS)]

    first = commit(repo, {f"web/cm{n}.yaml": configmap_yaml(f"cm{n}", "blue") for n in range(OBJECTS)})
    daemon = run_daemon("--watch-namespace", namespace)
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "web", repo=repo, path="web"))
    eventually(lambda: kubectl.status(namespace, "web").get("lastAppliedRevision") == first, timeout=SLACK,
               what="the first sync")
    daemon.terminate()
    daemon.wait(timeout=SLACK)

    # Killed right before the second object's write: its intent and one object are written.
    second = commit(repo, {f"web/cm{n}.yaml": configmap_yaml(f"cm{n}", "green") for n in range(OBJECTS)})
    with (tmp_path / "killed-daemon.log").open("w") as log:
        killed = subprocess.run(
            [sys.executable, "-c", KILL_AT_WRITE, "run", "--listen", f"127.0.0.1:{free_port()}",
             "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context,
             "--cache-dir", str(tmp_path / "cache"), *LAB_FLAGS, "--watch-namespace", namespace],
            stdout=log, stderr=subprocess.STDOUT, timeout=SLACK, env={**os.environ, "SYNCER_TEST_STOP_AT_WRITE": "3"})
    assert killed.returncode == -9, (tmp_path / "killed-daemon.log").read_text()
    applied = colors().count("green")
    assert 1 <= applied < OBJECTS, f"the daemon was killed mid-sync: {colors()}"
    assert kubectl.status(namespace, "web")["lastAppliedRevision"] == first, "nothing reported the killed sync"

    # Restarted within the dead daemon's lock duration: its first try finds the lock held
    # and fails, which must not erase the dead sync's intent.
    run_daemon("--watch-namespace", namespace)
    eventually(lambda: kubectl.status(namespace, "web").get("lastAppliedRevision") == second, timeout=2 * SLACK,
               what="the restarted daemon's sync")
    assert colors() == ["green"] * OBJECTS
    status = kubectl.status(namespace, "web")
    assert condition(status, "Ready")["status"] == "True"
    interrupted = status["lastInterrupted"]
    assert (interrupted["revision"], interrupted["alreadyApplied"], interrupted["planned"]) == (second, applied, OBJECTS)
    assert interrupted["planDigest"].startswith("sha256:")
    newest, killed_entry, *waited, created = status["history"]
    assert (killed_entry["revision"], killed_entry["result"], killed_entry["alreadyApplied"]) == (
        second, "Interrupted", applied)
    assert (newest["revision"], newest["result"]) == (second, "Succeeded")
    assert newest["summary"] == {"configured": OBJECTS - applied, "unchanged": applied}
    assert waited, "the restarted daemon found the dead one's lock held first"
    assert [(e["result"], "another sync holds" in e["error"]) for e in waited] == [("Failed", True)] * len(waited)
    assert created["revision"] == first
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.kind=App").items
    assert [e.reason for e in events if e.reason == "SyncInterrupted"] == ["SyncInterrupted"]
