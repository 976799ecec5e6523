"""`syncer install` against a real API server: every object of the chart's render exists with
its fields, the daemon's account may do what the daemon needs and nothing more, an install
that changes nothing writes nothing, and options switched on and off change, add and prune
exactly their objects; and `helm install` of the chart itself. (The dev cluster has no
kubelet: the Deployment's pods never run.)"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ClusterAccess
from tests.e2e.test_apps import Kubectl

ROOT = Path(__file__).resolve().parents[2]
SYNCER = Path(sys.executable).parent / "syncer"
Ref = tuple[str, str, str]
"""kind, namespace ("" when cluster-scoped), name."""


@pytest.fixture(scope="module")
def target(cluster: ClusterAccess) -> Iterator[str]:
    """The namespace `syncer install -n` creates (not syncer-system, which other tests use).
    One for every test here: the CRD and the ClusterRoles belong to the first install's
    inventory, and another namespace's install is refused taking them over."""
    name = f"t-install-{secrets.token_hex(3)}"
    yield name
    Kubectl(cluster)("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def install(cluster: ClusterAccess, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(SYNCER), "install", *args, "--kubeconfig", str(cluster.kubeconfig),
                             "--context", cluster.context], capture_output=True, text=True, timeout=180)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def exported(cluster: ClusterAccess, *args: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(install(cluster, "--export", *args).stdout) if doc]


def ref(obj: dict[str, Any]) -> Ref:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def live(kubectl: Kubectl, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    args = ["get", kind, name, "-o", "json", "--ignore-not-found", *(["-n", namespace] if namespace else [])]
    out = kubectl(*args).stdout
    return json.loads(out) if out.strip() else None


def versions(kubectl: Kubectl, refs: list[Ref]) -> dict[Ref, str | None]:
    return {r: (obj["metadata"]["resourceVersion"] if (obj := live(kubectl, *r)) else None) for r in refs}


def contains(live_value: Any, desired: Any, where: str = "") -> list[str]:
    """Where the live object lacks what the desired one says (the server adds defaults)."""
    if isinstance(desired, dict):
        if not isinstance(live_value, dict):
            return [f"{where}: {live_value!r}"]
        return [miss for key, value in desired.items()
                for miss in contains(live_value.get(key), value, f"{where}.{key}")]
    if isinstance(desired, list):
        if not isinstance(live_value, list) or len(live_value) != len(desired):
            return [f"{where}: {live_value!r} is not {desired!r}"]
        return [miss for index, (item, wanted) in enumerate(zip(live_value, desired))
                for miss in contains(item, wanted, f"{where}[{index}]")]
    return [] if live_value == desired else [f"{where}: {live_value!r} is not {desired!r}"]


def can(kubectl: Kubectl, account: str, verb: str, resource: str, *, namespace: str | None = None) -> bool:
    """`kubectl auth can-i --as` (a SubjectAccessReview): exit 0 yes, 1 no."""
    scope = ["-n", namespace] if namespace else ["--all-namespaces"]
    result = kubectl("auth", "can-i", verb, resource, "--as", account, *scope, check=False)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


def test_install_creates_every_object_with_least_privilege_and_reinstalls_nothing(
    cluster: ClusterAccess, target: str,
) -> None:
    kubectl = Kubectl(cluster)
    desired = exported(cluster, "-n", target)
    result = install(cluster, "-n", target, "-o", "json")
    changes = json.loads(result.stdout)
    assert changes["result"] == "Succeeded" and changes["inventory"] == f"ConfigMap/{target}/syncer-syncer"

    for obj in desired:
        got = live(kubectl, *ref(obj))
        assert got is not None, f"{ref(obj)} was not created"
        assert got["metadata"]["labels"]["applyset.kubernetes.io/part-of"]  # the install's inventory owns it
        for field in ("spec", "rules", "subjects", "roleRef"):
            if field in obj:
                assert contains(got.get(field), obj[field], field) == [], ref(obj)
    deployment = live(kubectl, "Deployment", target, "syncer")
    assert deployment is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["run", "--require-service-account", "--leader-elect", "--log-format=json"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    binding = live(kubectl, "ClusterRoleBinding", "", "syncer-apps")
    assert binding is not None and binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "syncer", "namespace": target}]
    assert live(kubectl, "ConfigMap", target, "syncer-syncer") is not None  # the inventory

    account = f"system:serviceaccount:{target}:syncer"
    for verb, resource, namespace in [
        ("list", "apps.syncer.dev", None), ("watch", "apps.syncer.dev", "team-a"),
        ("patch", "apps.syncer.dev/status", "team-a"), ("create", "events", "team-a"),
        ("impersonate", "serviceaccounts", "team-a"), ("create", "subjectaccessreviews", None),
        ("create", "leases.coordination.k8s.io", target), ("watch", "leases.coordination.k8s.io", target),
        ("list", "secrets", None),  # the watch cache (rbac.watchCache): list and watch only
    ]:
        assert can(kubectl, account, verb, resource, namespace=namespace), f"{account} cannot {verb} {resource}"
    for verb, resource, namespace in [
        ("create", "deployments.apps", "team-a"), ("get", "secrets", "team-a"), ("delete", "apps.syncer.dev", None),
        ("create", "leases.coordination.k8s.io", "team-a"), ("create", "clusterrolebindings", None),
        ("update", "apps.syncer.dev", "team-a"), ("delete", "configmaps", target),
    ]:
        assert not can(kubectl, account, verb, resource, namespace=namespace), f"{account} may {verb} {resource}"

    refs = [ref(obj) for obj in desired] + [("ConfigMap", target, "syncer-syncer")]
    before = versions(kubectl, refs)
    again = json.loads(install(cluster, "-n", target, "-o", "json").stdout)
    assert {change["action"] for change in again["changes"]} <= {"unchanged"}
    assert versions(kubectl, refs) == before


def test_options_on_and_off_change_exactly_their_objects(cluster: ClusterAccess, target: str) -> None:
    kubectl = Kubectl(cluster)
    install(cluster, "-n", target)
    desired = exported(cluster, "-n", target)
    refs = [ref(obj) for obj in desired]
    watch_cache = [("ClusterRole", "", "syncer-watch"), ("ClusterRoleBinding", "", "syncer-watch")]
    before = versions(kubectl, refs)

    install(cluster, "-n", target, "--shard", "--replicas", "3", "--watch-namespace", "team-a")
    sharded = versions(kubectl, refs)
    assert [r for r in refs if sharded[r] != before[r]] == [("Deployment", target, "syncer")]
    deployment = live(kubectl, "Deployment", target, "syncer")
    assert deployment is not None and deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "run", "--require-service-account", "--shard", "--log-format=json", "--watch-namespace=team-a"]

    # Fewer options: sharding and the watch namespace go, and so does the watch cache's RBAC.
    install(cluster, "-n", target, "--no-watch-cache")
    after = versions(kubectl, refs)
    assert {r for r in refs if after[r] != sharded[r]} == {("Deployment", target, "syncer"), *watch_cache}
    assert all(after[r] is None for r in watch_cache)
    deployment = live(kubectl, "Deployment", target, "syncer")
    assert deployment is not None and deployment["spec"]["replicas"] == 2
    assert "--leader-elect" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]

    install(cluster, "-n", target)  # the defaults again (and the cluster as other tests expect it)
    assert all(versions(kubectl, watch_cache).values())


def test_install_wait_names_the_deployment_that_is_not_ready(cluster: ClusterAccess, target: str) -> None:
    """No kubelet here: the pods never run, so --wait gives up after --timeout, naming the
    Deployment, with every object applied."""
    result = install(cluster, "-n", target, "--wait", "--timeout", "3s", check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"Deployment/{target}/syncer" in result.stdout + result.stderr
    assert live(Kubectl(cluster), "Deployment", target, "syncer") is not None


def test_helm_installs_the_chart(cluster: ClusterAccess, tmp_path: Path) -> None:
    """The documented `helm install` from the chart path, by the pinned helm, under another
    release name: every object is named after the release, and `helm uninstall` removes them."""
    helm = subprocess.run([str(ROOT / "tools" / "build.sh"), "helm"], capture_output=True, text=True,
                          check=True).stdout.strip()
    kubectl = Kubectl(cluster)
    namespace = f"t-helm-{secrets.token_hex(3)}"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}

    def run(*args: str) -> None:
        result = subprocess.run([helm, *args, "--kubeconfig", str(cluster.kubeconfig), "--kube-context",
                                 cluster.context], capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr

    try:
        run("install", "ops", str(ROOT / "charts" / "syncer"), "-n", namespace, "--create-namespace",
            "--set", "sharding.enabled=true", "--set", "replicas=3")
        deployment = live(kubectl, "Deployment", namespace, "ops-syncer")
        assert deployment is not None and deployment["spec"]["replicas"] == 3
        assert "--shard" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        binding = live(kubectl, "ClusterRoleBinding", "", "ops-syncer-apps")
        assert binding is not None and binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "ops-syncer", "namespace": namespace}]
        assert live(kubectl, "CustomResourceDefinition", "", "apps.syncer.dev") is not None
        run("uninstall", "ops", "-n", namespace)
        assert live(kubectl, "ClusterRoleBinding", "", "ops-syncer-apps") is None
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False)
        for kind in ("ClusterRoleBinding", "ClusterRole"):
            kubectl("delete", kind, "-l", "app.kubernetes.io/instance=ops", "--ignore-not-found", check=False)
