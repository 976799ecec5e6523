"""A control plane of the daemon model's own, with an audit log, set up as an operator and two
teams would set up a cluster: `kubectl apply -k examples/deploy` (the App CRD and the
least-privilege daemon with its service account), a Widget CRD the teams' apps use, and per
team a namespace with a `deployer` service account bound to the documented tenant recipe
(`edit` + `syncer-tenant`, charts/syncer/templates/tenant-role.yaml) plus the Widgets of its namespace.

The daemon and the teams' CLI run with their own service accounts' tokens, never the admin's,
so the audit log tells who did what: the daemon, a team (also when the daemon impersonates
it), or the test acting as the cluster's admin."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from syncer.devcluster import ControlPlane, find_assets

DEPLOY = Path(__file__).resolve().parents[3] / "examples" / "deploy"
DAEMON_NAMESPACE = "syncer-system"
DAEMON_USER = f"system:serviceaccount:{DAEMON_NAMESPACE}:syncer"
DEPLOYER = "deployer"
WIDGET_GROUP, WIDGET_VERSION, WIDGET_PLURAL, WIDGET_KIND = "model.syncer.dev", "v1", "widgets", "Widget"
WIDGET_CRD_NAME = f"{WIDGET_PLURAL}.{WIDGET_GROUP}"
TOKEN_SECONDS = 4 * 3600


def widget_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": WIDGET_CRD_NAME},
        "spec": {"group": WIDGET_GROUP, "scope": "Namespaced",
                 "names": {"kind": WIDGET_KIND, "plural": WIDGET_PLURAL, "singular": "widget", "listKind": "WidgetList"},
                 "versions": [{"name": WIDGET_VERSION, "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object", "properties": {
                         "size": {"type": "string"}}}}}}}]},
    }


def tenant_user(namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:{DEPLOYER}"


@dataclass(frozen=True)
class Lab:
    workdir: Path
    admin_kubeconfig: Path
    daemon_kubeconfig: Path
    audit_log: Path
    api: client.ApiClient
    """The admin's client: the test acting as the cluster's administrator."""

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(["kubectl", "--kubeconfig", str(self.admin_kubeconfig), *args], input=stdin,
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result.stdout

    def token_kubeconfig(self, *, namespace: str, service_account: str, name: str) -> Path:
        """A kubeconfig that authenticates as the service account (a TokenRequest token)."""
        core: Any = client.CoreV1Api(self.api)
        answer: Any = core.create_namespaced_service_account_token(
            service_account, namespace, {"spec": {"expirationSeconds": TOKEN_SECONDS}})
        admin = yaml.safe_load(self.admin_kubeconfig.read_text())
        cluster = next(c for c in admin["clusters"])
        path = self.workdir / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
            "users": [{"name": name, "user": {"token": answer.status.token}}],
            "contexts": [{"name": name, "context": {"cluster": cluster["name"], "user": name}}],
            "current-context": name,
        }))
        path.chmod(0o600)
        return path

    def add_tenant(self, namespace: str) -> Path:
        """A team's namespace and its deployer (the documented recipe, plus Widgets, plus the
        team's own Apps); returns a kubeconfig of the deployer for the team's own CLI runs."""
        core: Any = client.CoreV1Api(self.api)
        rbac: Any = client.RbacAuthorizationV1Api(self.api)
        core.create_namespace({"metadata": {"name": namespace}})
        core.create_namespaced_service_account(namespace, {"metadata": {"name": DEPLOYER}})
        subject = [{"kind": "ServiceAccount", "name": DEPLOYER, "namespace": namespace}]
        rbac.create_namespaced_role(namespace, {"metadata": {"name": "widgets"}, "rules": [
            {"apiGroups": [WIDGET_GROUP], "resources": [WIDGET_PLURAL], "verbs": ["*"]}]})
        # The team acts on its Apps from the CLI (syncer rollback) with the same credentials.
        rbac.create_namespaced_role(namespace, {"metadata": {"name": "apps"}, "rules": [
            {"apiGroups": ["syncer.dev"], "resources": ["apps"], "verbs": ["get", "list", "watch", "patch"]}]})
        for name, kind, role in (("deployer-edit", "ClusterRole", "edit"),
                                 ("deployer-syncer", "ClusterRole", "syncer-tenant"),
                                 ("deployer-widgets", "Role", "widgets"),
                                 ("deployer-apps", "Role", "apps")):
            rbac.create_namespaced_role_binding(namespace, {
                "metadata": {"name": name}, "subjects": subject,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role}})
        return self.token_kubeconfig(namespace=namespace, service_account=DEPLOYER, name=f"deployer-{namespace}")

    def install_widgets(self) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps(widget_crd()))
        self.kubectl("wait", "--for=condition=Established", f"crd/{WIDGET_CRD_NAME}", "--timeout=60s")


@contextmanager
def started_lab(workdir: Path) -> Iterator[Lab]:
    """The control plane with its audit log, the CRDs and the daemon's service account."""
    control_plane = ControlPlane(workdir=workdir / "control-plane", assets=find_assets(), audit_log=True)
    running = control_plane.start()
    failed = True
    try:
        assert running.audit_log is not None
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(running.kubeconfig))
        with api:
            bootstrap = Lab(workdir=workdir, admin_kubeconfig=running.kubeconfig, daemon_kubeconfig=running.kubeconfig,
                            audit_log=running.audit_log, api=api)
            bootstrap.kubectl("apply", "-k", str(DEPLOY))
            bootstrap.kubectl("wait", "--for=condition=Established", "crd/apps.syncer.dev", "--timeout=60s")
            bootstrap.install_widgets()
            wait_for_service_account(api, DAEMON_NAMESPACE, "syncer")
            daemon = bootstrap.token_kubeconfig(namespace=DAEMON_NAMESPACE, service_account="syncer", name="daemon")
            yield Lab(workdir=workdir, admin_kubeconfig=running.kubeconfig, daemon_kubeconfig=daemon,
                      audit_log=running.audit_log, api=api)
        failed = False
    finally:
        control_plane.stop(keep_logs=failed)
        if failed:
            print(f"daemon model: control plane logs kept in {running.logs}")


def wait_for_service_account(api: client.ApiClient, namespace: str, name: str, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.CoreV1Api(api).read_namespaced_service_account(name, namespace)
            return
        except client.ApiException as error:
            if error.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def fresh_suffix() -> str:
    return secrets.token_hex(3)
