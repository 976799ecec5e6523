"""SOPS-encrypted manifests synced by an App (`spec.decryption`) against a real API server:
the age identities come from a Secret of the App's namespace, read with the App's service
account; a key that opens nothing, or a Secret the account may not read, fails the App
naming why, and nothing encrypted reaches the cluster."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml
from kubernetes import client

from tests.conftest import ClusterAccess
from tests.e2e.apps import SLACK
from tests.e2e.test_apps import Kubectl, app_yaml, condition, grant_service_account, syncer
from tests.e2e.test_apps import installed, run_daemon  # noqa: F401 - fixtures
from tests.e2e.test_daemon import commit, eventually, git
from tests.e2e.test_daemon import repo  # noqa: F401 - the fixture: a Git repository
from tests.unit.test_sops import KEY_FILE, OTHER_KEY, SECRET, encrypt
from tests.unit.test_sops import sops_binary  # noqa: F401 - the fixture: the pinned sops


def key_secret(api: client.ApiClient, namespace: str, name: str, identity: str) -> None:
    client.CoreV1Api(api).create_namespaced_secret(namespace, {
        "metadata": {"name": name}, "stringData": {"identity.agekey": identity}})


def test_an_app_decrypts_its_secrets_with_age_keys_read_as_its_service_account(
    installed: Kubectl, cluster: ClusterAccess, kube_api: client.ApiClient, namespace: str, repo: Path,  # noqa: F811
    run_daemon: Callable[..., subprocess.Popen[str]], tmp_path: Path, sops_binary: str,  # noqa: F811
) -> None:
    kubectl = installed
    plain = {**SECRET, "metadata": {"name": "db"}}
    commit(repo, {"secret/db.yaml": yaml.safe_dump(encrypt(sops_binary, plain, tmp_path), sort_keys=False)}, "encrypted")
    head = git(repo, "rev-parse", "HEAD")
    core = client.CoreV1Api(kube_api)
    grant_service_account(kube_api, namespace, "deployer")
    key_secret(kube_api, namespace, "sops-age", KEY_FILE.read_text())
    key_secret(kube_api, namespace, "wrong-age", OTHER_KEY)
    # "nobody" may do all an App needs but read Secrets: its age keys included.
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    rbac = client.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "nobody"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps", "events"], "verbs": ["*"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "nobody"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                    "name": "nobody"},
        "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}]})
    run_daemon("--watch-namespace", namespace, "--require-service-account")

    def apply(name: str, account: str, secret: str) -> None:
        kubectl("apply", "-f", "-", stdin=app_yaml(
            namespace, name, repo=repo, path="secret", serviceAccountName=account, targetNamespace=namespace,
            decryption={"provider": "sops", "secretRef": {"name": secret}}))

    def failure(name: str) -> str | None:
        ready = condition(kubectl.status(namespace, name), "Ready")
        return ready.get("message") if ready.get("status") == "False" else None

    apply("wrong", "deployer", "wrong-age")
    apply("refused", "nobody", "sops-age")
    message = eventually(lambda: failure("wrong"), timeout=SLACK, what="the App with the wrong key to fail")
    assert "secret/db.yaml:1: Secret/" in message and "none of the age keys from Secret/" in message, message
    message = eventually(lambda: failure("refused"), timeout=SLACK, what="the App that may not read its key to fail")
    assert f"Secret/{namespace}/sops-age" in message and "forbidden" in message, message
    assert f"system:serviceaccount:{namespace}:nobody" in message, message
    assert [s.metadata.name for s in core.list_namespaced_secret(namespace).items
            if s.metadata.name == "db"] == [], "an App that could not decrypt applied something"
    for name in ("wrong", "refused"):
        kubectl("delete", "app", name, "-n", namespace)

    apply("shop", "deployer", "sops-age")
    eventually(lambda: kubectl.status(namespace, "shop").get("lastAppliedRevision") == head, timeout=SLACK,
               what="the decrypted Secret to be synced")
    synced = core.read_namespaced_secret("db", namespace)
    assert synced.data == {"password": "aHVudGVyMg=="}  # hunter2
    assert "sops" not in (synced.metadata.annotations or {})
    diff = syncer(cluster, "diff", "--app", "shop", "-n", namespace)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "hunter2" not in diff.stdout + diff.stderr
