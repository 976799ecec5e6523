"""The local control plane behaves like a real cluster where syncer depends on it:
server-side apply with field managers, RBAC, namespace deletion and garbage collection by
kube-controller-manager, and `syncer dev-cluster up/status/down` leaving nothing behind.

Objects are written and read with the Kubernetes client's dynamic client (plain dicts, as in
manifests), never through syncer's own cluster code."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.conftest import USE_EXISTING_CLUSTER, ClusterAccess
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

import syncer.cli.devcluster  # noqa: F401  (registers `dev-cluster` on the group)
from syncer.cli import cli
from syncer.devcluster import read_state
from syncer.devcluster.assets import current_version, resolve_version


class Resources:
    """Typed-enough access to the dynamic client: `resources("v1", "ConfigMap")`."""

    def __init__(self, api: client.ApiClient) -> None:
        self._dynamic = DynamicClient(api)  # type: ignore[no-untyped-call]

    def __call__(self, api_version: str, kind: str) -> Any:
        return self._dynamic.resources.get(api_version=api_version, kind=kind)


@pytest.fixture(scope="module")
def resources(kube_api: client.ApiClient) -> Resources:
    return Resources(kube_api)


def _client(kubeconfig: Path, context: str | None = None) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), context=context
    )
    return api


def _eventually(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def _gone(resource: Any, *, name: str, namespace: str | None = None) -> bool:
    try:
        resource.get(name=name, namespace=namespace)
    except client.ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def test_server_side_apply_records_the_field_manager(
    resources: Resources, namespace: str
) -> None:
    configmaps = resources("v1", "ConfigMap")
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": namespace},
        "data": {"color": "blue", "size": "L"},
    }

    configmaps.server_side_apply(body=body, field_manager="syncer", namespace=namespace)

    live = configmaps.get(name="settings", namespace=namespace).to_dict()
    assert live["data"] == {"color": "blue", "size": "L"}
    managers = [(e["manager"], e["operation"]) for e in live["metadata"]["managedFields"]]
    assert ("syncer", "Apply") in managers


def test_unprivileged_user_is_forbidden_until_granted(
    cluster: ClusterAccess, restricted_context: str, resources: Resources, namespace: str
) -> None:
    restricted = client.CoreV1Api(_client(cluster.kubeconfig, restricted_context))

    with pytest.raises(client.ApiException) as refused:
        restricted.list_namespaced_secret(namespace)
    assert refused.value.status == 403

    resources("rbac.authorization.k8s.io/v1", "Role").create(
        namespace=namespace,
        body={
            "metadata": {"name": "read-secrets"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}],
        },
    )
    resources("rbac.authorization.k8s.io/v1", "RoleBinding").create(
        namespace=namespace,
        body={
            "metadata": {"name": "read-secrets"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "read-secrets",
            },
            "subjects": [
                {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "User",
                    "name": "syncer-restricted",
                }
            ],
        },
    )

    def allowed() -> bool:
        try:
            restricted.list_namespaced_secret(namespace)
        except client.ApiException as error:
            if error.status == 403:
                return False
            raise
        return True

    # The authorizer reads roles from its informer cache, a moment behind the write.
    _eventually(allowed, timeout=10, what="the granted role to take effect")


def test_deleting_a_namespace_completes(
    cluster: ClusterAccess, resources: Resources, namespace: str
) -> None:
    if not cluster.controller_manager:
        pytest.skip("runs without kube-controller-manager: namespaces are never finalized")
    resources("v1", "ConfigMap").create(
        namespace=namespace, body={"metadata": {"name": "content"}, "data": {"a": "1"}}
    )
    namespaces = resources("v1", "Namespace")

    namespaces.delete(name=namespace)

    _eventually(
        lambda: _gone(namespaces, name=namespace),
        timeout=60,
        what=f"Namespace/{namespace} to be gone",
    )


def test_garbage_collector_deletes_dependents(
    cluster: ClusterAccess, resources: Resources, namespace: str
) -> None:
    if not cluster.controller_manager:
        pytest.skip("runs without kube-controller-manager: nothing is garbage collected")
    configmaps = resources("v1", "ConfigMap")
    owner = configmaps.create(namespace=namespace, body={"metadata": {"name": "owner"}})
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner.metadata.uid,
    }
    configmaps.create(
        namespace=namespace,
        body={"metadata": {"name": "dependent", "ownerReferences": [reference]}},
    )

    configmaps.delete(name="owner", namespace=namespace)

    _eventually(
        lambda: _gone(configmaps, name="dependent", namespace=namespace),
        timeout=60,
        what=f"ConfigMap/{namespace}/dependent to be garbage collected",
    )


@pytest.mark.skipif(
    USE_EXISTING_CLUSTER, reason="starts a control plane of its own; not on an existing cluster"
)
def test_dev_cluster_up_status_down(tmp_path: Path) -> None:
    workdir = tmp_path / "dev-cluster"
    runner = CliRunner()

    started = runner.invoke(cli, ["dev-cluster", "up", "--dir", str(workdir), "--audit-log"])
    try:
        assert started.exit_code == 0, started.output
        kubeconfig = Path(started.stdout.strip())
        assert kubeconfig == workdir / "kubeconfig"
        with _client(kubeconfig) as api:
            listed = client.CoreV1Api(api).list_namespace().items
        assert any(ns.metadata and ns.metadata.name == "default" for ns in listed)
        state = read_state(workdir)
        assert state is not None
        with _client(kubeconfig) as api:
            served = client.VersionApi(api).get_code().git_version
        assert state.server_version == served
        assert f"Kubernetes {served}" in started.stderr
        assert state.audit_log is not None
        assert _audited_stages(state.audit_log, user="syncer-admin", verb="list") == [
            "ResponseComplete"
        ]

        again = runner.invoke(cli, ["dev-cluster", "up", "--dir", str(workdir)])
        assert again.exit_code == 0, again.output
        assert "already running" in again.stderr
        assert f"Kubernetes {served}" in again.stderr
        assert read_state(workdir) == state

        other = "1.20" if served.startswith("v1.3") else current_version().rsplit(".", 1)[0]
        refused = runner.invoke(
            cli, ["dev-cluster", "up", "--dir", str(workdir), "--kubernetes-version", other]
        )
        assert refused.exit_code != 0
        assert f"is Kubernetes {served}, not {resolve_version(other)}" in refused.stderr
        assert read_state(workdir) == state

        status = runner.invoke(cli, ["dev-cluster", "status", "--dir", str(workdir)])
        assert status.exit_code == 0, status.output
        assert status.stdout.strip() == str(kubeconfig)
    finally:
        stopped = runner.invoke(cli, ["dev-cluster", "down", "--dir", str(workdir)])

    assert stopped.exit_code == 0, stopped.output
    for pid in state.pids().values():
        assert not _runs(pid), f"process {pid} still runs after `dev-cluster down`"
    assert not workdir.exists()

    after = runner.invoke(cli, ["dev-cluster", "status", "--dir", str(workdir)])
    assert after.exit_code == 1
    assert "no dev cluster" in after.stderr


def _audited_stages(audit_log: Path, *, user: str, verb: str) -> list[str]:
    """The stages of the audit events of `user`'s `verb` requests on namespaces."""
    events = [json.loads(line) for line in audit_log.read_text().splitlines()]
    return [
        event["stage"]
        for event in events
        if event["user"]["username"] == user
        and event["verb"] == verb
        and event.get("objectRef", {}).get("resource") == "namespaces"
    ]


def _runs(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie awaiting its parent's wait() is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
