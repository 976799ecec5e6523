"""An App is (namespace, name): its ApplySet parent and lock live in its own namespace, named
after it, whatever its `targetNamespace` says (issue 20, reports 6 and 7); and the first sync
after the upgrade takes over the inventory an App kept in its target namespace before."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client

from syncer.apply.applyset import ID_LABEL, PART_OF_LABEL, Inventory
from syncer.apply.status import RESULT_ANNOTATION
from syncer.apply.sync import sync
from syncer.kube import Kube
from tests.e2e.apps import SLACK, configmap, options, render_app
from tests.e2e.test_apps import (  # noqa: F401 - fixtures
    Kubectl,
    app_yaml,
    condition,
    grant_service_account,
    installed,
    other_namespace,
    run_daemon,
)
from tests.e2e.test_daemon import commit, configmap_yaml, eventually, git
from tests.e2e.test_daemon import repo  # noqa: F401 - the fixture: a Git repository with shop/config.yaml


def labels(api: client.ApiClient, namespace: str, name: str) -> dict[str, str]:
    found = configmap(api, namespace, name)
    assert found is not None, f"ConfigMap/{namespace}/{name} is missing"
    return dict(found.metadata.labels or {})


def test_two_apps_of_one_name_aiming_at_one_namespace_are_two_apps(
    installed: Kubectl, repo: Path, namespace: str, other_namespace: str, kube_api: client.ApiClient,  # noqa: F811
    run_daemon: Callable[..., subprocess.Popen[str]],  # noqa: F811
) -> None:
    """Before, team-a's App `web` with `targetNamespace: team-b` shared team-b/web's parent and
    ApplySet id: each pruned the other's objects, and team-b's hand edits were routed to
    team-a's App. Now each has its own parent, id and heal route."""
    kubectl, team_a, team_b = installed, namespace, other_namespace
    commit(repo, {"a/config.yaml": configmap_yaml("a-config", "blue"),
                  "b/config.yaml": configmap_yaml("b-config", "blue")})
    run_daemon("--watch-namespace", team_a, "--watch-namespace", team_b)
    kubectl("apply", "-f", "-", stdin=app_yaml(team_a, "web", repo=repo, path="a", targetNamespace=team_b,
                                               interval="1h"))
    kubectl("apply", "-f", "-", stdin=app_yaml(team_b, "web", repo=repo, path="b", interval="1h"))
    kubectl("wait", "--for=condition=Ready", "app/web", "-n", team_a, "--timeout=60s")
    kubectl("wait", "--for=condition=Ready", "app/web", "-n", team_b, "--timeout=60s")

    ids = {ns: labels(kube_api, ns, "syncer-web")[ID_LABEL] for ns in (team_a, team_b)}
    assert ids[team_a] == Inventory.for_app(app="web", namespace=team_a).id != ids[team_b]
    time.sleep(3)  # what a shared id would do: one App's sync prunes the other's object
    assert labels(kube_api, team_b, "a-config")[PART_OF_LABEL] == ids[team_a]
    assert labels(kube_api, team_b, "b-config")[PART_OF_LABEL] == ids[team_b]

    # With an interval of an hour, only a heal routed to the right App reverts a hand edit.
    core = client.CoreV1Api(kube_api)
    for name in ("b-config", "a-config"):
        core.patch_namespaced_config_map(name, team_b, {"data": {"color": "red"}})
        eventually(lambda: configmap(kube_api, team_b, name).data == {"color": "blue"}, timeout=SLACK,
                   what=f"the hand edit of {name} to be healed")


def test_the_first_sync_after_the_upgrade_takes_over_the_old_inventory(
    installed: Kubectl, repo: Path, namespace: str, other_namespace: str, kube_api: client.ApiClient,  # noqa: F811
    kube: Kube, run_daemon: Callable[..., subprocess.Popen[str]],  # noqa: F811
) -> None:
    """An App team-a/web synced team-b's objects with its parent in team-b, as every release
    before this one did. After the upgrade its objects are relabelled once (not recreated),
    what Git removed meanwhile is still pruned, and the old parent goes."""
    kubectl, team_a, team_b = installed, namespace, other_namespace
    commit(repo, {"a/config.yaml": configmap_yaml("a-config", "blue"),
                  "a/old.yaml": configmap_yaml("old-config", "gone")})
    # Today's layout, as the engine wrote it: parent ConfigMap syncer-web in the target namespace.
    legacy = Inventory.for_app(app="web", namespace=team_b)
    changes = sync(kube, render_app(repo / "a", namespace=team_b), options=options("web", team_b), revision="v0")
    assert changes.ok, changes.error
    assert labels(kube_api, team_b, "syncer-web")[ID_LABEL] == legacy.id
    uid = configmap(kube_api, team_b, "a-config").metadata.uid
    git(repo, "rm", "-q", "a/old.yaml")
    git(repo, "commit", "-q", "-m", "old-config goes")

    run_daemon("--watch-namespace", team_a, "--watch-namespace", team_b)
    kubectl("apply", "-f", "-", stdin=app_yaml(team_a, "web", repo=repo, path="a", targetNamespace=team_b))
    kubectl("wait", "--for=condition=Ready", "app/web", "-n", team_a, "--timeout=60s")

    new = Inventory.for_app(app="web", namespace=team_a)
    assert labels(kube_api, team_b, "a-config")[PART_OF_LABEL] == new.id
    assert configmap(kube_api, team_b, "a-config").metadata.uid == uid, "recreated, not relabelled"
    eventually(lambda: configmap(kube_api, team_b, "old-config") is None, timeout=SLACK,
               what="what Git removed to be pruned")
    assert configmap(kube_api, team_b, "syncer-web") is None, "the old parent is still there"
    parent = configmap(kube_api, team_a, "syncer-web")
    assert parent.metadata.labels[ID_LABEL] == new.id
    assert parent.metadata.annotations[RESULT_ANNOTATION] == "Succeeded"


def test_the_watch_cache_answers_an_app_only_what_its_service_account_may_read(
    installed: Kubectl, repo: Path, namespace: str, kube_api: client.ApiClient,  # noqa: F811
    run_daemon: Callable[..., subprocess.Popen[str]],  # noqa: F811
) -> None:
    """The cache is filled with the daemon's rights. Once the App's service account may no
    longer list ConfigMaps, the App's plan must not be served its ConfigMaps from the cache:
    it reads with the account's credentials, is refused, and says so."""
    kubectl = installed
    grant_service_account(kube_api, namespace, "deployer")
    run_daemon("--watch-namespace", namespace, "--require-service-account")
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "shop", repo=repo, path="shop",
                                               serviceAccountName="deployer"))
    kubectl("wait", "--for=condition=Ready", "app/shop", "-n", namespace, "--timeout=60s")

    # Everything as before, except listing ConfigMaps.
    client.RbacAuthorizationV1Api(kube_api).replace_namespaced_role("deployer", namespace, {
        "metadata": {"name": "deployer"}, "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update", "patch", "delete"]},
            {"apiGroups": [""], "resources": ["events", "secrets"], "verbs": ["*"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]}]})
    kubectl("patch", "app", "shop", "-n", namespace, "--type=merge", "-p", '{"spec": {"interval": "3s"}}')

    def refused() -> str | None:
        ready = condition(kubectl.status(namespace, "shop"), "Ready")
        return ready.get("message") if ready.get("status") == "False" else None

    message = eventually(refused, timeout=SLACK, what="the App to fail reading its ConfigMaps")
    assert "forbidden" in message and f"system:serviceaccount:{namespace}:deployer" in message, message
