"""The Dockerfile and the example deployment fit the code: what the image copies exists, it
runs the installed console script, and the deployment's command line, probes, port and
configuration are what `syncer run` accepts and serves. (No Docker engine is needed.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncer.cli.run import run_command
from syncer.config import parse_config
from syncer.daemon import DaemonOptions

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "examples" / "deploy"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def deploy_objects() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    objects = []
    for name in kustomization["resources"]:
        objects += [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]
    return objects


def file_mode_objects(overlay: str = "deploy-file-mode") -> list[dict[str, Any]]:
    """examples/deploy-file-mode (or another overlay with patches): built by kustomize itself."""
    if shutil.which("kubectl") is None:
        pytest.skip("needs kubectl (its kustomize) to build the overlays")
    built = subprocess.run(["kubectl", "kustomize", str(ROOT / "examples" / overlay)], check=True,
                           capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(built) if doc]


def find(kind: str, name: str, objects: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return next(o for o in (objects or deploy_objects()) if o["kind"] == kind and o["metadata"]["name"] == name)


def grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def test_the_image_copies_files_that_exist_and_runs_the_console_script() -> None:
    instructions = dockerfile_instructions()
    copies = [args.split() for op, args in instructions if op == "COPY" and "--from" not in args]
    for *sources, _ in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the repository"
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert {"!pyproject.toml", "!README.md", "!syncer", "!requirements/runtime.txt"} <= set(dockerignore)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert dict(instructions)["ENTRYPOINT"] == '["syncer"]' and "syncer" in scripts
    assert dict(instructions)["CMD"] == '["run"]'
    assert dict(instructions)["USER"] == "10001:10001"
    installs = [" ".join(args.split()) for op, args in instructions if op == "RUN" and "pip install" in args]
    assert installs == [
        "pip install --no-cache-dir --require-hashes --no-deps -r requirements/runtime.txt",
        "pip install --no-cache-dir --no-deps --no-build-isolation . && cd / && rm -rf /src",
    ]
    assert "/healthz" in dict(instructions)["HEALTHCHECK"]


def test_the_deployment_runs_what_syncer_run_accepts() -> None:
    deployment = find("Deployment", "syncer")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    run_command.make_context("run", list(container["args"][1:]))  # raises on an unknown option
    assert container["args"][0] == "run" and "--leader-elect" in container["args"]
    assert "--require-service-account" in container["args"]
    assert not any(arg.startswith("--config") for arg in container["args"])
    assert deployment["spec"]["replicas"] == 2
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"][0]["containerPort"] == DaemonOptions().listen[1]
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["terminationGracePeriodSeconds"] > 60  # more than --shutdown-timeout


def test_the_file_mode_deployment_reads_its_configuration() -> None:
    objects = file_mode_objects()
    deployment = find("Deployment", "syncer", objects)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    run_command.make_context("run", list(container["args"][1:]))
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    volume = next(v for v in pod["volumes"] if v["name"] == "config")
    config_arg = next(a for a in container["args"] if a.startswith("--config="))
    assert config_arg == f"--config={mount['mountPath']}/apps.yaml"
    assert "--require-service-account" not in container["args"]
    configmap = find("ConfigMap", volume["configMap"]["name"], objects)
    config = parse_config(configmap["data"]["apps.yaml"], source="config.yaml", base_dir=Path("/etc/syncer"))
    assert [app.name for app in config.apps] == ["shop"]
    needed = {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update", "delete")}
    needed |= {("", "configmaps", v) for v in ("get", "list", "patch")} | {("", "events", "create")}
    assert needed <= grants(find("ClusterRole", "syncer-core", objects))
    for binding in ("syncer-core", "syncer-apply"):
        assert find("ClusterRoleBinding", binding, objects)["subjects"] == [
            {"kind": "ServiceAccount", "name": "syncer", "namespace": "syncer-system"}]


def test_rbac_is_least_privilege_for_apps() -> None:
    """Cluster-wide: Apps (read, watch, patch to remove the finalizer), their status, Events and
    impersonating service accounts, and read-only list/watch for the watch cache, nothing
    else; the leader Lease only in syncer-system."""
    assert grants(find("ClusterRole", "syncer-apps")) == {
        *(("syncer.dev", "apps", v) for v in ("get", "list", "watch", "patch")),
        *(("syncer.dev", "apps/status", v) for v in ("get", "patch", "update")),
        ("", "events", "create"), ("", "events", "patch"), ("", "serviceaccounts", "impersonate"),
        ("authorization.k8s.io", "subjectaccessreviews", "create"),
    }
    assert grants(find("ClusterRole", "syncer-watch")) == {("*", "*", "list"), ("*", "*", "watch")}
    assert sorted(o["metadata"]["name"] for o in deploy_objects() if o["kind"] == "ClusterRoleBinding") == [
        "syncer-apps", "syncer-watch"]
    # syncer-tenant is for the teams' deployers, bound in their own namespaces, never to the daemon.
    assert sorted(o["metadata"]["name"] for o in deploy_objects() if o["kind"] == "ClusterRole") == [
        "syncer-apps", "syncer-tenant", "syncer-watch"]
    assert grants(find("ClusterRole", "syncer-tenant")) == {
        *(("coordination.k8s.io", "leases", v) for v in ("get", "list", "watch", "create", "update", "delete")),
        ("", "events", "create"), ("", "events", "patch")}
    leader = find("Role", "syncer-leader")
    assert leader["metadata"]["namespace"] == "syncer-system"
    assert {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update", "delete")} <= grants(leader)
    account = find("ServiceAccount", "syncer")
    subject = [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                "namespace": account["metadata"]["namespace"]}]
    assert find("ClusterRoleBinding", "syncer-apps")["subjects"] == subject
    assert find("RoleBinding", "syncer-leader")["subjects"] == subject
    assert find("Deployment", "syncer")["spec"]["template"]["spec"]["serviceAccountName"] == "syncer"


def test_the_service_exposes_metrics() -> None:
    service = find("Service", "syncer")
    annotations = service["metadata"]["annotations"]
    assert (annotations["prometheus.io/scrape"], annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (
        "true", "8080", "/metrics")
    labels = find("Deployment", "syncer")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert re.fullmatch(r"\d+", str(service["spec"]["ports"][0]["port"]))


def test_the_sharded_deployment_runs_three_members_that_may_watch_their_leases() -> None:
    objects = file_mode_objects("deploy-sharded")
    deployment = find("Deployment", "syncer", objects)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    run_command.make_context("run", list(container["args"][1:]))
    assert "--shard" in container["args"] and "--leader-elect" not in container["args"]
    assert deployment["spec"]["replicas"] == 3
    role = find("Role", "syncer-leader", objects)
    assert {("coordination.k8s.io", "leases", verb) for verb in ("list", "watch", "create", "update", "delete")} \
        <= grants(role)
