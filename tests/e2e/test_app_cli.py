"""`syncer diff|sync|status --app NAME -n NS`: the CLI acting on what an App object syncs, with
the App's repo, revision, path, targetNamespace, ignoreDifferences, Git credentials and
service account, against a real API server (and `syncer run` where the daemon's view is the
point)."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from syncer.apply.status import read_app_status
from syncer.kube import Kube
from tests.conftest import ClusterAccess
from tests.e2e.apps import configmap
from tests.e2e.test_apps import (  # noqa: F401 - fixtures
    Kubectl,
    app_yaml,
    grant_service_account,
    installed,
    other_namespace,
    run_daemon,
    syncer,
)
from tests.e2e.test_daemon import commit, git
from tests.e2e.test_daemon import repo  # noqa: F401 - the fixture: a Git repository with shop/config.yaml

READ = ["get", "list", "watch"]


def grant(api: client.ApiClient, namespace: str, *, role: str, service_account: tuple[str, str], verbs: list[str],
          resources: tuple[str, ...] = ("configmaps", "leases", "events")) -> None:
    """Give a service account (namespace, name) these verbs on these resources in `namespace`."""
    sa_namespace, sa_name = service_account
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": role}, "rules": [
        {"apiGroups": ["", "coordination.k8s.io"], "resources": list(resources), "verbs": verbs}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": sa_namespace}],
    })


def web_config(**data: str) -> str:
    return textwrap.dedent("""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: web-config
        data:
        """) + "".join(f"  {key}: \"{value}\"\n" for key, value in data.items())


def apply_app(kubectl: Kubectl, namespace: str, name: str, *, repo: Path, **spec: Any) -> None:
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, name, repo=repo, path="shop", interval="1h", **spec))


def test_diff_of_an_app_shows_what_the_daemon_would_do(
    installed: Kubectl, cluster: ClusterAccess, repo: Path, namespace: str, other_namespace: str,
    kube_api: client.ApiClient, run_daemon: Callable[..., subprocess.Popen[str]],
) -> None:
    kubectl, home, target = installed, namespace, other_namespace
    grant_service_account(kube_api, home, "deployer")
    grant(kube_api, target, role="deployer-all", service_account=(home, "deployer"), verbs=["*"])
    first = commit(repo, {"shop/config.yaml": web_config(color="blue", size="1")})
    apply_app(kubectl, home, "shop", repo=repo, targetNamespace=target, serviceAccountName="deployer",
              ignoreDifferences=[{"group": "", "kind": "ConfigMap", "jsonPointers": ["/data/size"]}])

    # Before the daemon: the object goes to the target namespace, the inventory to the App's.
    before = syncer(cluster, "diff", "--app", "shop", "-n", home)
    assert before.returncode == 1, before.stdout + before.stderr
    assert f"ConfigMap/{target}/web-config" in before.stdout
    assert f"inventory ConfigMap/{home}/syncer-shop" in before.stdout
    assert f"App/{home}/shop" in before.stderr and f"system:serviceaccount:{home}:deployer" in before.stderr
    assert configmap(kube_api, target, "web-config") is None, "a diff wrote"

    # Once the daemon synced it, the diff has nothing to show.
    run_daemon("--watch-namespace", home)
    kubectl("wait", "--for=condition=Ready", "app/shop", "-n", home, "--timeout=60s")
    assert configmap(kube_api, target, "web-config").data == {"color": "blue", "size": "1"}
    synced = syncer(cluster, "diff", "--app", "shop", "-n", home)
    assert synced.returncode == 0, synced.stdout + synced.stderr

    # A field the App ignores is no change, for the diff as for the daemon (which leaves it).
    client.CoreV1Api(kube_api).patch_namespaced_config_map("web-config", target, {"data": {"size": "3"}})
    ignored = syncer(cluster, "diff", "--app", "shop", "-n", home)
    assert ignored.returncode == 0, ignored.stdout + ignored.stderr
    assert configmap(kube_api, target, "web-config").data == {"color": "blue", "size": "3"}

    # A commit the daemon has not seen yet (interval 1h) is a change; --revision looks elsewhere.
    commit(repo, {"shop/config.yaml": web_config(color="green", size="1")})
    ahead = syncer(cluster, "diff", "--app", "shop", "-n", home)
    assert ahead.returncode == 1, ahead.stdout + ahead.stderr
    assert "green" in ahead.stdout
    at_first = syncer(cluster, "diff", "--app", "shop", "-n", home, "--revision", first)
    assert at_first.returncode == 0, at_first.stdout + at_first.stderr


def test_sync_of_an_app_is_made_as_its_service_account_and_recorded_on_its_inventory(
    installed: Kubectl, cluster: ClusterAccess, repo: Path, namespace: str, other_namespace: str,
    kube_api: client.ApiClient, kube: Kube,
) -> None:
    kubectl, home, target = installed, namespace, other_namespace
    grant_service_account(kube_api, home, "deployer")
    grant(kube_api, target, role="deployer-read", service_account=(home, "deployer"), verbs=READ)
    apply_app(kubectl, home, "shop", repo=repo, targetNamespace=target, serviceAccountName="deployer")

    # The service account may read the target namespace but not write it; the admin running
    # the command may: the write is refused, naming the service account.
    refused = syncer(cluster, "sync", "--app", "shop", "-n", home)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f'"system:serviceaccount:{home}:deployer"' in refused.stderr, refused.stderr
    assert configmap(kube_api, target, "web-config") is None

    grant(kube_api, target, role="deployer-all", service_account=(home, "deployer"), verbs=["*"])
    synced = syncer(cluster, "sync", "--app", "shop", "-n", home)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    head = git(repo, "rev-parse", "HEAD")
    assert configmap(kube_api, target, "web-config").data == {"color": "blue"}
    managers = {entry.manager for entry in configmap(kube_api, target, "web-config").metadata.managed_fields}
    assert managers == {"syncer"}, "not the daemon's field manager"
    # Recorded where the daemon records its own syncs: the App's inventory, in its namespace.
    recorded = read_app_status(kube, app="shop", namespace=home)
    assert recorded is not None and recorded.result == "Succeeded" and recorded.applied_revision == head
    assert configmap(kube_api, target, "syncer-shop") is None

    status = syncer(cluster, "status", "--app", "shop", "-n", home)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert f"Inventory:        ConfigMap/{home}/syncer-shop" in lines
    assert "Result:           Succeeded" in lines and f"Last applied:     {head}" in lines
    assert f"Target namespace: {target}" in lines
    assert f"Identity:         system:serviceaccount:{home}:deployer" in lines
    document = json.loads(syncer(cluster, "status", "--app", "shop", "-n", home, "-o", "json").stdout)
    assert document["inventory"] == f"ConfigMap/{home}/syncer-shop" and document["appliedRevision"] == head


def test_git_credentials_come_from_the_apps_secret_read_as_its_service_account(
    installed: Kubectl, cluster: ClusterAccess, repo: Path, namespace: str, kube_api: client.ApiClient,
) -> None:
    """No https Git server here: a Secret the service account may not read is refused naming
    it (the admin running the command could read it), and once it may, the token reaches Git,
    which refuses credentials for a local repository."""
    kubectl = installed
    client.CoreV1Api(kube_api).create_namespaced_service_account(namespace, {"metadata": {"name": "deployer"}})
    grant(kube_api, namespace, role="deployer-all", service_account=(namespace, "deployer"), verbs=["*"])
    client.CoreV1Api(kube_api).create_namespaced_secret(namespace, {
        "metadata": {"name": "git-creds"}, "stringData": {"username": "bot", "password": "t0ken"}})
    apply_app(kubectl, namespace, "private", repo=repo, serviceAccountName="deployer",
              secretRef={"name": "git-creds"})

    refused = syncer(cluster, "diff", "--app", "private", "-n", namespace)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f'"system:serviceaccount:{namespace}:deployer"' in refused.stderr and "secrets" in refused.stderr

    grant(kube_api, namespace, role="deployer-secrets", service_account=(namespace, "deployer"), verbs=["get"],
          resources=("secrets",))
    handed = syncer(cluster, "sync", "--app", "private", "-n", namespace)
    assert handed.returncode == 2
    assert "credentials do not apply to a local repository" in handed.stderr, handed.stderr
    assert "t0ken" not in handed.stdout + handed.stderr
    assert configmap(kube_api, namespace, "web-config") is None


def test_a_missing_or_invalid_app_or_a_flag_it_replaces_is_an_error_naming_it(
    installed: Kubectl, cluster: ClusterAccess, repo: Path, namespace: str, kube_api: client.ApiClient,
) -> None:
    kubectl = installed
    for command in ("diff", "sync", "status"):
        missing = syncer(cluster, command, "--app", "nope", "-n", namespace)
        assert missing.returncode == 2, (command, missing.stdout, missing.stderr)
        assert f"App/{namespace}/nope: not found" in missing.stderr and missing.stdout == ""

    apply_app(kubectl, namespace, "bad", repo=repo, timeout="100000000h", targetNamespace="Not_A_Name")
    invalid = syncer(cluster, "sync", "--app", "bad", "-n", namespace)
    assert invalid.returncode == 2
    assert f"App/{namespace}/bad" in invalid.stderr
    assert "spec.timeout" in invalid.stderr and "spec.targetNamespace" in invalid.stderr, invalid.stderr

    apply_app(kubectl, namespace, "shop", repo=repo)
    for flags in (("--repo", str(repo)), ("--path", "shop"), ("--name", "shop")):
        clash = syncer(cluster, "diff", "--app", "shop", "-n", namespace, *flags)
        assert clash.returncode == 2 and flags[0] in clash.stderr and "--app" in clash.stderr, clash.stderr
    written = [cm.metadata.name for cm in client.CoreV1Api(kube_api).list_namespaced_config_map(namespace).items]
    assert [name for name in written if name != "kube-root-ca.crt"] == [], "an error wrote"
