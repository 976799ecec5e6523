"""Rollback that holds (issue 23), against the real API server: `syncer rollback` goes back to a
revision from the app's history and the app stays there, through commits elsewhere in the
repository, `syncer reconcile` and a restarted daemon, until a commit that changes the app or
`--release`; a plain sync does not undo it. For an App the daemon syncs with the App's rights
and the user sets the hold with theirs; for a CLI app the hold is on its parent."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client

from tests.conftest import ClusterAccess
from tests.e2e.apps import SLACK
from tests.e2e.test_apps import Kubectl, app_yaml, condition, syncer
from tests.e2e.test_apps import installed, run_daemon  # noqa: F401 - fixtures
from tests.e2e.test_daemon import commit, configmap_yaml, eventually, git
from tests.e2e.test_daemon import repo  # noqa: F401 - the fixture: a Git repository


def color(api: client.ApiClient, namespace: str) -> str:
    found = client.CoreV1Api(api).list_namespaced_config_map(namespace, field_selector="metadata.name=web-config")
    return str((found.items[0].data or {}).get("color")) if found.items else ""


def app_events(kubectl: Kubectl, namespace: str, reason: str) -> list[str]:
    events = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json", "--field-selector",
                                f"involvedObject.kind=App,reason={reason}").stdout)["items"]
    return [str(e["message"]) for e in events]


def test_an_app_rolled_back_stays_there_until_a_commit_changes_it(
    installed: Kubectl, cluster: ClusterAccess, repo: Path, namespace: str, kube_api: client.ApiClient,  # noqa: F811
    run_daemon: Callable[..., subprocess.Popen[str]],  # noqa: F811
) -> None:
    kubectl = installed
    first = git(repo, "rev-parse", "HEAD")
    daemon = run_daemon("--watch-namespace", namespace)
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "shop", repo=repo, path="shop"))
    eventually(lambda: kubectl.status(namespace, "shop").get("lastAppliedRevision") == first, timeout=SLACK,
               what="the first commit to be applied")
    second = commit(repo, {"shop/config.yaml": configmap_yaml("web-config", "green")})
    eventually(lambda: kubectl.status(namespace, "shop").get("lastAppliedRevision") == second, timeout=SLACK,
               what="the second commit to be applied")

    rolled = syncer(cluster, "rollback", "shop", "-n", namespace, "--to", first[:8], "--wait", "--timeout", "60")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "Ready=True" in rolled.stdout and f"revision {first[:12]} applied" in rolled.stdout
    assert color(kube_api, namespace) == "blue"
    app = kubectl.app(namespace, "shop")
    assert app["spec"]["hold"]["revision"] == first and app["spec"]["hold"]["from"] == second
    status = app["status"]
    assert status["lastAppliedRevision"] == first and status["hold"]["holding"] is True
    assert condition(status, "RolledBack")["status"] == "True" and condition(status, "Ready")["status"] == "True"
    eventually(lambda: app_events(kubectl, namespace, "RolledBack"), timeout=SLACK, what="a RolledBack Event")
    table = kubectl("get", "apps", "shop", "-n", namespace).stdout.splitlines()
    assert "ROLLEDBACK" in table[0].split() and "True" in table[1].split()

    # A sync by hand would undo the rollback: refused, nothing written.
    version = client.CoreV1Api(kube_api).read_namespaced_config_map("web-config", namespace).metadata.resource_version
    refused = syncer(cluster, "sync", "--app", "shop", "-n", namespace)
    assert refused.returncode == 2 and "syncer rollback --release --app shop" in refused.stderr, refused.stderr
    assert client.CoreV1Api(kube_api).read_namespaced_config_map(
        "web-config", namespace).metadata.resource_version == version

    # Held through a commit elsewhere in the repository, a reconcile request and a restart.
    elsewhere = commit(repo, {"other/config.yaml": configmap_yaml("other", "x")})
    time.sleep(6)  # three intervals
    reconciled = syncer(cluster, "reconcile", "shop", "-n", namespace, "--wait", "--timeout", "60")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    daemon.terminate()
    daemon.wait(timeout=30)
    run_daemon("--watch-namespace", namespace)
    time.sleep(6)
    status = kubectl.status(namespace, "shop")
    assert color(kube_api, namespace) == "blue" and status["lastAppliedRevision"] == first, status
    assert condition(status, "RolledBack")["status"] == "True"
    assert elsewhere not in json.dumps(status.get("history"))

    # A commit that changes the App ends the hold.
    fourth = commit(repo, {"shop/config.yaml": configmap_yaml("web-config", "yellow")})
    eventually(lambda: kubectl.status(namespace, "shop").get("lastAppliedRevision") == fourth, timeout=SLACK,
               what="the commit that changes the App to end the hold")
    assert color(kube_api, namespace) == "yellow"
    status = kubectl.status(namespace, "shop")
    released = condition(status, "RolledBack")
    assert (released["status"], released["reason"]) == ("False", "Released") and fourth[:12] in released["message"]
    eventually(lambda: app_events(kubectl, namespace, "HoldReleased"), timeout=SLACK, what="a HoldReleased Event")

    # --steps counts distinct revisions back in the history; --release returns to the head.
    back = syncer(cluster, "rollback", "--app", "shop", "-n", namespace, "--steps", "2", "--wait")
    assert back.returncode == 0, back.stdout + back.stderr
    assert color(kube_api, namespace) == "green"
    assert kubectl.app(namespace, "shop")["spec"]["hold"]["from"] == fourth
    release = syncer(cluster, "rollback", "shop", "-n", namespace, "--release", "--wait")
    assert release.returncode == 0, release.stdout + release.stderr
    assert color(kube_api, namespace) == "yellow"
    status = kubectl.status(namespace, "shop")
    assert "hold" not in status and not condition(status, "RolledBack")
    assert "hold" not in kubectl.app(namespace, "shop")["spec"]

    unknown = syncer(cluster, "rollback", "shop", "-n", namespace, "--to", "0000000")
    assert unknown.returncode == 2 and "not a revision the app's history applied" in unknown.stderr


def test_a_cli_app_rolled_back_refuses_a_plain_sync_until_released(
    cluster: ClusterAccess, repo: Path, namespace: str, kube_api: client.ApiClient,  # noqa: F811
) -> None:
    source = ("--repo", str(repo), "--path", "shop", "--name", "web", "-n", namespace)
    first = git(repo, "rev-parse", "HEAD")
    assert syncer(cluster, "sync", *source).returncode == 0
    commit(repo, {"shop/config.yaml": configmap_yaml("web-config", "green")})
    assert syncer(cluster, "sync", *source).returncode == 0 and color(kube_api, namespace) == "green"

    rolled = syncer(cluster, "rollback", *source, "--to", first, "-o", "json")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert json.loads(rolled.stdout)["revision"] == first and color(kube_api, namespace) == "blue"
    core = client.CoreV1Api(kube_api)
    hold = json.loads(core.read_namespaced_config_map("syncer-web", namespace).metadata.annotations["syncer.dev/hold"])
    assert hold["revision"] == first

    version = core.read_namespaced_config_map("web-config", namespace).metadata.resource_version
    refused = syncer(cluster, "sync", *source)
    assert refused.returncode == 2 and "--release-hold" in refused.stderr, refused.stderr
    assert core.read_namespaced_config_map("web-config", namespace).metadata.resource_version == version

    assert syncer(cluster, "sync", *source, "--release-hold").returncode == 0
    assert color(kube_api, namespace) == "green"
    assert "syncer.dev/hold" not in (core.read_namespaced_config_map("syncer-web", namespace).metadata.annotations or {})

    assert syncer(cluster, "rollback", *source, "--steps", "1").returncode == 0 and color(kube_api, namespace) == "blue"
    released = syncer(cluster, "rollback", "--name", "web", "-n", namespace, "--release")
    assert released.returncode == 0, released.stderr
    assert syncer(cluster, "sync", *source).returncode == 0 and color(kube_api, namespace) == "green"
