"""The Helm chart charts/syncer, the one source of syncer's install, and what derives from it:
`syncer install` (its package data and its options), examples/deploy and the App CRD. Every
render here is the pinned helm's (tools/build.sh helm), not a reimplementation."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from syncer import __version__
from syncer.cli import cli
from syncer.cli.run import run_command
from syncer.daemon import DaemonOptions

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "syncer"
Objects = list[dict[str, Any]]


@pytest.fixture(scope="module")
def helm() -> str:
    built = subprocess.run([str(ROOT / "tools" / "build.sh"), "helm"], capture_output=True, text=True)
    assert built.returncode == 0, f"tools/build.sh helm failed:\n{built.stderr}"
    return built.stdout.strip()


def template(helm: str, *values: str, namespace: str = "syncer-system", crds: bool = False) -> Objects:
    args = [helm, "template", "syncer", str(CHART), "--namespace", namespace, *(["--include-crds"] if crds else [])]
    for value in values:
        args += ["--set", value]
    rendered = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def find(objects: Objects, kind: str, name: str = "syncer") -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def container(objects: Objects) -> dict[str, Any]:
    return dict(find(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0])


def exported(*args: str) -> Objects:
    result = CliRunner().invoke(cli, ["install", "--export", *args])
    assert result.exit_code == 0, result.output
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


# -- the chart --------------------------------------------------------------------------------

def test_the_chart_lints_and_carries_syncers_version(helm: str) -> None:
    linted = subprocess.run([helm, "lint", "--strict", str(CHART)], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == (__version__, __version__)


def test_the_charts_crd_is_the_app_crd() -> None:
    """examples/deploy/crd.yaml is the App CRD's source (the daemon's App spec owns it); the
    chart carries a copy that scripts/render-install writes."""
    copy = CHART / "crds" / "apps.syncer.dev.yaml"
    assert copy.read_bytes() == (ROOT / "examples" / "deploy" / "crd.yaml").read_bytes(), (
        f"{copy.relative_to(ROOT)} differs from examples/deploy/crd.yaml: run scripts/render-install")


def test_what_derives_from_the_chart_is_its_render(helm: str) -> None:
    """syncer install's package data and examples/deploy/syncer.yaml are byte for byte what
    the pinned helm renders now."""
    checked = subprocess.run([str(ROOT / "scripts" / "render-install"), "--check"], capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "SYNCER_HELM": helm})
    assert checked.returncode == 0, checked.stderr


def test_the_default_render_runs_the_daemon_as_documented(helm: str) -> None:
    objects = template(helm)
    deployment = find(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    daemon = container(objects)
    assert daemon["args"] == ["run", "--require-service-account", "--leader-elect", "--log-format=json"]
    run_command.make_context("run", daemon["args"][1:])  # raises on an option syncer run lacks
    assert daemon["image"] == f"syncer:{__version__}" and deployment["spec"]["replicas"] == 2
    assert daemon["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert daemon["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert daemon["ports"] == [{"name": "http", "containerPort": DaemonOptions().listen[1], "protocol": "TCP"}]
    assert daemon["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    assert daemon["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                         "capabilities": {"drop": ["ALL"]}}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["serviceAccountName"] == find(objects, "ServiceAccount")["metadata"]["name"] == "syncer"
    assert pod["terminationGracePeriodSeconds"] > 60  # more than --shutdown-timeout
    service = find(objects, "Service")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert {o["kind"] for o in objects} == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                                           "RoleBinding", "Deployment", "Service"}


def test_the_rbac_is_least_privilege(helm: str) -> None:
    objects = template(helm)
    assert grants(find(objects, "ClusterRole", "syncer-apps")) == {
        *(("syncer.dev", "apps", v) for v in ("get", "list", "watch", "patch")),
        *(("syncer.dev", "apps/status", v) for v in ("get", "patch", "update")),
        ("", "events", "create"), ("", "events", "patch"), ("", "serviceaccounts", "impersonate"),
        ("authorization.k8s.io", "subjectaccessreviews", "create"),
    }
    assert grants(find(objects, "ClusterRole", "syncer-watch")) == {("*", "*", "list"), ("*", "*", "watch")}
    assert grants(find(objects, "ClusterRole", "syncer-tenant")) == {
        *(("coordination.k8s.io", "leases", v) for v in ("get", "list", "watch", "create", "update", "delete")),
        ("", "events", "create"), ("", "events", "patch")}
    # syncer-tenant is bound by each team in its own namespace, never to the daemon.
    assert sorted(o["roleRef"]["name"] for o in objects if o["kind"].endswith("Binding")) == [
        "syncer-apps", "syncer-leader", "syncer-watch"]
    subject = [{"kind": "ServiceAccount", "name": "syncer", "namespace": "syncer-system"}]
    assert all(o["subjects"] == subject for o in objects if o["kind"].endswith("Binding"))
    assert find(objects, "Role", "syncer-leader")["metadata"]["namespace"] == "syncer-system"
    without = template(helm, "rbac.watchCache=false", "rbac.tenantRole=false")
    assert sorted(o["metadata"]["name"] for o in without if o["kind"] == "ClusterRole") == ["syncer-apps"]


NODE_AFFINITY = "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"


def test_sharding_and_the_pods_placement(helm: str) -> None:
    objects = template(helm, "sharding.enabled=true", "replicas=3", "watchNamespaces={team-a,team-b}",
                       "extraArgs={--lease-duration=30s}", "podAnnotations.a=b", "nodeSelector.pool=ops",
                       "tolerations[0].key=ops", "tolerations[0].operator=Exists",
                       f"{NODE_AFFINITY}.matchExpressions[0].key=pool",
                       f"{NODE_AFFINITY}.matchExpressions[0].operator=Exists")
    deployment = find(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    args = container(objects)["args"]
    assert args == ["run", "--require-service-account", "--shard", "--log-format=json",
                    "--watch-namespace=team-a", "--watch-namespace=team-b", "--lease-duration=30s"]
    run_command.make_context("run", args[1:])
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {"a": "b"}
    assert pod["nodeSelector"] == {"pool": "ops"}
    assert pod["tolerations"] == [{"key": "ops", "operator": "Exists"}]
    assert pod["affinity"] == {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "Exists"}]}]}}}  # not the default
    assert "podAntiAffinity" in find(template(helm), "Deployment")["spec"]["template"]["spec"]["affinity"]
    leases = grants(find(objects, "Role", "syncer-leader"))
    assert {("coordination.k8s.io", "leases", v) for v in ("list", "watch", "create", "update", "delete")} <= leases


def test_the_sharded_example_is_the_charts_sharded_render(helm: str) -> None:
    built = subprocess.run(["kubectl", "kustomize", str(ROOT / "examples" / "deploy-sharded")], check=True,
                           capture_output=True, text=True).stdout
    example = [doc for doc in yaml.safe_load_all(built) if doc]
    assert find(example, "Deployment") == find(template(helm, "sharding.enabled=true", "replicas=3"), "Deployment")


@pytest.mark.parametrize(("value", "message"), [
    ("replicas=0", "at '/replicas': minimum: got 0, want 1"),
    ("sharding=true", "at '/sharding': got boolean, want object"),
    ("imag.tag=x", "additional properties 'imag' not allowed"),
    ("watchNamespaces={Team_A}", "at '/watchNamespaces/0': 'Team_A' does not match pattern"),
    ("logFormat=xml", "at '/logFormat'"),
    ("extraArgs={shard}", "at '/extraArgs/0': 'shard' does not match pattern"),
    ("image.repository=", "at '/image/repository'"),
    ("service.port=99999", "at '/service/port': maximum"),
    ("rbac.watchCache=maybe", "at '/rbac/watchCache': got string, want boolean"),
])
def test_bad_values_are_refused_naming_the_value(helm: str, value: str, message: str) -> None:
    for command in (["template", "syncer"], ["lint"]):
        result = subprocess.run([helm, *command, str(CHART), "--set", value], capture_output=True, text=True)
        assert result.returncode != 0 and message in result.stdout + result.stderr, (command, result.stderr)


# -- syncer install: the chart's render and the chart's values --------------------------------

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "syncer-system"}}


@pytest.mark.parametrize(("options", "values", "namespace"), [
    ((), (), "syncer-system"),
    (("--shard", "--replicas", "3"), ("sharding.enabled=true", "replicas=3"), "syncer-system"),
    (("--image", "registry.example.com:5000/ops/syncer:1.2.3", "--watch-namespace", "team-a",
      "--watch-namespace", "team-b", "--arg=--lease-duration=30s", "--arg=--no-watch"),
     ("image.repository=registry.example.com:5000/ops/syncer", "image.tag=1.2.3",
      "watchNamespaces={team-a,team-b}", "extraArgs={--lease-duration=30s,--no-watch}"), "syncer-system"),
    (("-n", "gitops", "--no-watch-cache"), ("rbac.watchCache=false",), "gitops"),
])
def test_install_exports_the_charts_render_with_the_same_values(
    helm: str, options: tuple[str, ...], values: tuple[str, ...], namespace: str,
) -> None:
    """The Namespace, then exactly what `helm template` renders with the values the options
    stand for (the CRD included)."""
    expected = [{**NAMESPACE, "metadata": {"name": namespace}},
                *template(helm, *values, namespace=namespace, crds=True)]
    assert exported(*options) == expected


def test_install_refuses_what_the_daemon_would_refuse() -> None:
    for args, message in [
        (["--arg=--nope"], "syncer run would refuse --nope: No such option"),
        (["--arg=--help"], "help is not an argument of the daemon"),
        (["-n", "Syncer"], "is not a valid name"),
        (["--watch-namespace", "a_b"], "is not a valid name"),
        (["--image", "my image"], "is not an image reference"),
        (["--replicas", "0"], "0 is not in the range x>=1"),
        (["-o", "json"], "--export prints the objects as YAML"),
    ]:
        result = CliRunner().invoke(cli, ["install", "--export", *args])
        assert result.exit_code == 2 and message in result.stderr, (args, result.stderr)
        assert result.stdout == ""
