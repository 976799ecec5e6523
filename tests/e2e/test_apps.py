"""Apps as Kubernetes objects, driven the way users drive them: `kubectl` and the `syncer` CLI
against a real API server, with `syncer run` (no --config) as a separate process."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from syncer.daemon.appclient import app_resource, patch_status
from syncer.kube import Kube
from tests.conftest import ClusterAccess
from tests.e2e.apps import SLACK, configmap
from tests.e2e.test_daemon import SYNCER, commit, configmap_yaml, eventually, free_port, get, git
from tests.e2e.test_daemon import repo  # noqa: F401 - the fixture: a Git repository with shop/config.yaml

DEPLOY = Path(__file__).resolve().parents[2] / "examples" / "deploy"
LAB_FLAGS = ("--allow-local-repos", "--notify-allow", "127.0.0.1")
"""The tests' Git repositories are directories and their receivers listen on 127.0.0.1: both
are refused to Apps unless the operator allows them."""
NOTIFY_SECRET = "notify-s3cret"


# -- helpers -------------------------------------------------------------------------------

class Kubectl:
    def __init__(self, cluster: ClusterAccess) -> None:
        self.base = ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context]

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self.base, *args], input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result

    def app(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(json.loads(self("get", "app", name, "-n", namespace, "-o", "json").stdout))

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self.app(namespace, name).get("status") or {})


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def app_yaml(namespace: str, name: str, *, repo: Path, path: str, **spec: Any) -> str:
    body = {"apiVersion": "syncer.dev/v1alpha1", "kind": "App",
            "metadata": {"name": name, "namespace": namespace, **spec.pop("metadata", {})},
            "spec": {"repo": str(repo), "revision": "main", "path": path, "interval": "2s", **spec}}
    return json.dumps(body)


def grant_service_account(api: client.ApiClient, namespace: str, name: str) -> None:
    """A service account with every right inside its own namespace, and none outside."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": [
        {"apiGroups": ["", "apps", "coordination.k8s.io"], "resources": ["*"], "verbs": ["*"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    })


class Receiver(ThreadingHTTPServer):
    """A notification receiver on 127.0.0.1 that keeps every message with its headers."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, str], bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler) -> None:  # noqa: N805 - the handler, not the server
                body = handler.rfile.read(int(handler.headers["Content-Length"]))
                self.messages.append((handler.path, {k.lower(): v for k, v in handler.headers.items()}, body))
                handler.send_response(204)
                handler.end_headers()

            def log_message(handler, *args: Any) -> None:  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def events(self, path: str, app: str) -> list[dict[str, Any]]:
        return [json.loads(body) for p, _, body in list(self.messages)
                if p == path and json.loads(body)["app"]["name"] == app]


# -- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def installed(cluster: ClusterAccess) -> Iterator[Kubectl]:
    """`kubectl apply -k examples/deploy`: the CRD and the least-privilege daemon."""
    kubectl = Kubectl(cluster)
    kubectl("apply", "-k", str(DEPLOY))
    kubectl("wait", "--for=condition=Established", "crd/apps.syncer.dev", "--timeout=60s")
    yield kubectl
    kubectl("delete", "namespace", "syncer-system", "--wait=false", check=False)


@pytest.fixture
def other_namespace(namespace: str, kube_api: client.ApiClient) -> Iterator[str]:
    name = namespace[:-6] + "b-" + namespace[-6:]
    core = client.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.shutdown()


@pytest.fixture
def run_daemon(cluster: ClusterAccess, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[tuple[subprocess.Popen[str], Any]] = []

    def start(*args: str, operator_flags: tuple[str, ...] = LAB_FLAGS) -> subprocess.Popen[str]:
        port = free_port()
        log = (tmp_path / f"syncer-run-{len(started)}.log").open("w")
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "SYNCER_WEBHOOK_SECRET")}
        process = subprocess.Popen(
            [str(SYNCER), "run", "--listen", f"127.0.0.1:{port}", "--kubeconfig", str(cluster.kubeconfig),
             "--context", cluster.context, "--cache-dir", str(tmp_path / "cache"), *operator_flags, *args],
            stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
        )
        started.append((process, log))
        eventually(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200 or process.poll() is not None,
                   timeout=SLACK, what="syncer run to be ready")
        assert process.poll() is None, (tmp_path / f"syncer-run-{len(started) - 1}.log").read_text()
        return process

    yield start
    for process, log in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def syncer(kubeconfig: ClusterAccess, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SYNCER), *args, "--kubeconfig", str(kubeconfig.kubeconfig),
                           "--context", kubeconfig.context], capture_output=True, text=True, timeout=timeout)


# -- tests ---------------------------------------------------------------------------------

def test_app_lifecycle_with_kubectl_and_the_cli(
    installed: Kubectl, cluster: ClusterAccess, repo: Path, namespace: str, kube_api: client.ApiClient,
    run_daemon: Callable[..., subprocess.Popen[str]],
) -> None:
    kubectl = installed
    grant_service_account(kube_api, namespace, "deployer")
    run_daemon("--watch-namespace", namespace, "--require-service-account")
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "shop", repo=repo, path="shop",
                                               serviceAccountName="deployer"))

    # Created, then Ready: kubectl wait understands the status.
    kubectl("wait", "--for=condition=Ready", "app/shop", "-n", namespace, "--timeout=60s")
    first = git(repo, "rev-parse", "HEAD")
    status = kubectl.status(namespace, "shop")
    assert status["lastAppliedRevision"] == status["lastAttemptedRevision"] == first
    assert status["health"] == "Healthy"
    assert status["inventory"] == {"size": 1}
    assert status["observedGeneration"] == kubectl.app(namespace, "shop")["metadata"]["generation"]
    assert status["lastSync"]["result"] == "Succeeded" and status["lastSync"]["summary"] == {"created": 1}
    assert configmap(kube_api, namespace, "web-config").data == {"color": "blue"}
    table = kubectl("get", "apps", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "REVISION", "HEALTH", "DRIFT", "ROLLEDBACK", "AGE"]
    assert table[1].split()[:5] == ["shop", "True", first, "Healthy", "0"]

    # A commit is picked up on the interval.
    second = commit(repo, {"shop/config.yaml": configmap_yaml("web-config", "green")})
    eventually(lambda: kubectl.status(namespace, "shop").get("lastAppliedRevision") == second, timeout=SLACK,
               what="the new commit to be applied")
    assert configmap(kube_api, namespace, "web-config").data == {"color": "green"}

    # Reconcile now: with an interval of an hour, only the request syncs the next commit.
    kubectl("patch", "app", "shop", "-n", namespace, "--type=merge", "-p", '{"spec": {"interval": "1h"}}')
    eventually(lambda: kubectl.status(namespace, "shop").get("observedGeneration") == 2, timeout=SLACK,
               what="the new interval to be observed")
    third = commit(repo, {"shop/config.yaml": configmap_yaml("web-config", "red")})
    time.sleep(4)
    assert configmap(kube_api, namespace, "web-config").data == {"color": "green"}, "synced without a request"
    started = time.monotonic()
    result = syncer(cluster, "reconcile", "shop", "-n", namespace, "--wait", "--timeout", "60")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 15
    assert configmap(kube_api, namespace, "web-config").data == {"color": "red"}
    assert kubectl.status(namespace, "shop")["lastAppliedRevision"] == third
    assert "Ready=True" in result.stdout

    # Suspend: no syncs, and the status says so; resume syncs again.
    kubectl("patch", "app", "shop", "-n", namespace, "--type=merge", "-p", '{"spec": {"interval": "2s"}}')
    assert syncer(cluster, "suspend", "shop", "-n", namespace).returncode == 0
    eventually(lambda: condition(kubectl.status(namespace, "shop"), "Reconciling").get("reason") == "Suspended",
               timeout=SLACK, what="the status to say the App is suspended")
    assert condition(kubectl.status(namespace, "shop"), "Ready")["reason"] == "Suspended"
    refused = syncer(cluster, "reconcile", "shop", "-n", namespace)
    assert refused.returncode == 2 and "suspended" in refused.stderr
    fourth = commit(repo, {"shop/config.yaml": configmap_yaml("web-config", "purple")})
    time.sleep(5)
    assert configmap(kube_api, namespace, "web-config").data == {"color": "red"}, "synced while suspended"
    assert syncer(cluster, "resume", "shop", "-n", namespace).returncode == 0
    eventually(lambda: kubectl.status(namespace, "shop").get("lastAppliedRevision") == fourth, timeout=SLACK,
               what="the resumed App to sync")
    kubectl("wait", "--for=condition=Ready", "app/shop", "-n", namespace, "--timeout=30s")

    # Deleting the App leaves its objects.
    uid = configmap(kube_api, namespace, "web-config").metadata.uid
    kubectl("delete", "app", "shop", "-n", namespace, "--timeout=30s")
    time.sleep(3)
    assert configmap(kube_api, namespace, "web-config").metadata.uid == uid


def test_a_team_cannot_write_into_another_teams_namespace(
    installed: Kubectl, cluster: ClusterAccess, repo: Path, namespace: str, other_namespace: str, kube_api: client.ApiClient,
    run_daemon: Callable[..., subprocess.Popen[str]], receiver: Receiver, tmp_path: Path,
) -> None:
    kubectl = installed
    team_a, team_b = namespace, other_namespace
    grant_service_account(kube_api, team_a, "deployer")
    grant_service_account(kube_api, team_b, "deployer")
    commit(repo, {"intrude/config.yaml": textwrap.dedent(f"""\
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: planted, namespace: {team_a}}}
        data: {{owner: team-b}}
        """)})
    secret_file = tmp_path / "notify-secret"
    secret_file.write_text(NOTIFY_SECRET + "\n")
    run_daemon("--watch-namespace", team_a, "--watch-namespace", team_b, "--require-service-account",
               "--notify-url", receiver.url + "/daemon", "--notify-secret-file", str(secret_file))
    kubectl("apply", "-f", "-", stdin=app_yaml(team_a, "shop", repo=repo, path="shop", serviceAccountName="deployer"))
    kubectl("apply", "-f", "-", stdin=app_yaml(team_b, "intruder", repo=repo, path="intrude",
                                               serviceAccountName="deployer"))
    kubectl("apply", "-f", "-", stdin=app_yaml(team_b, "nobody", repo=repo, path="shop"))

    kubectl("wait", "--for=condition=Ready", "app/shop", "-n", team_a, "--timeout=60s")
    eventually(lambda: condition(kubectl.status(team_b, "intruder"), "Ready").get("reason") == "SyncFailed",
               timeout=SLACK, what="the intruder's sync to fail")
    status = kubectl.status(team_b, "intruder")
    message = condition(status, "Ready")["message"]
    assert "forbidden" in message and f"system:serviceaccount:{team_b}:deployer" in message, message
    assert status["lastSync"]["result"] == "Failed" and "lastAppliedRevision" not in status
    assert configmap(kube_api, team_a, "planted") is None

    kubectl("wait", "--for=condition=Stalled", "app/nobody", "-n", team_b, "--timeout=30s")
    stalled = condition(kubectl.status(team_b, "nobody"), "Stalled")
    assert stalled["reason"] == "ServiceAccountRequired"
    assert configmap(kube_api, team_b, "web-config") is None

    # The daemon's receiver was told of the failure, signed with the shared secret.
    eventually(lambda: receiver.events("/daemon", "intruder"), timeout=SLACK, what="a notification")
    path, headers, body = next(m for m in receiver.messages if json.loads(m[2])["app"]["name"] == "intruder")
    assert headers["x-syncer-signature-256"] == "sha256=" + hmac.new(
        NOTIFY_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert json.loads(body)["event"] == "failed" and headers["x-syncer-event"] == "failed"
    events = json.loads(kubectl("get", "events", "-n", team_b, "-o", "json", "--field-selector",
                                "involvedObject.kind=App,involvedObject.name=intruder").stdout)["items"]
    assert [(e["reason"], e["type"]) for e in events] == [("SyncFailed", "Warning")]

    # reconcile --wait reports the failure with its exit code.
    result = syncer(cluster, "reconcile", "intruder", "-n", team_b, "--wait", "--timeout", "60")
    assert result.returncode == 2, result.stderr
    assert "Ready=False (SyncFailed)" in result.stdout and "forbidden" in result.stdout


def test_a_broken_commit_stays_failed_while_the_last_good_render_is_kept(
    installed: Kubectl, repo: Path, namespace: str, kube_api: client.ApiClient,
    run_daemon: Callable[..., subprocess.Popen[str]],
) -> None:
    """Issue 20, report 1: a YAML error on the tracked branch is Ready=False for as long as it
    is the branch's head. The failed sync's own record must not start a heal that reports the
    previous revision Ready, nor make Events flip between SyncFailed and SyncRecovered."""
    kubectl = installed
    grant_service_account(kube_api, namespace, "deployer")
    run_daemon("--watch-namespace", namespace, "--require-service-account")
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "shop", repo=repo, path="shop",
                                               serviceAccountName="deployer"))
    kubectl("wait", "--for=condition=Ready", "app/shop", "-n", namespace, "--timeout=60s")
    good = git(repo, "rev-parse", "HEAD")
    broken = commit(repo, {"shop/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n"})

    def failed() -> bool:
        status = kubectl.status(namespace, "shop")
        return status.get("lastAttemptedRevision") == broken and condition(status, "Ready").get("status") == "False"

    eventually(failed, timeout=SLACK, what="the broken commit to fail")
    # Several intervals (2 s each) and heals later, it still says so.
    for _ in range(16):
        time.sleep(0.5)
        status = kubectl.status(namespace, "shop")
        ready = condition(status, "Ready")
        assert (ready.get("status"), status.get("lastAttemptedRevision")) == ("False", broken), status
        assert status.get("lastAppliedRevision") == good
    assert configmap(kube_api, namespace, "web-config").data == {"color": "blue"}
    events = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json", "--field-selector",
                                "involvedObject.kind=App,involvedObject.name=shop").stdout)["items"]
    assert sorted(e["reason"] for e in events) == ["SyncFailed"], [(e["reason"], e["message"]) for e in events]


def test_the_status_written_replaces_the_one_before(installed: Kubectl, repo: Path, namespace: str, kube: Kube) -> None:
    """What the daemon writes is the App's whole status: a success after a failure leaves no
    error behind, and counts of two syncs never add up (issue 20, report 2)."""
    installed("apply", "-f", "-", stdin=app_yaml(namespace, "shop", repo=repo, path="shop"))
    resource = app_resource(kube)
    app = kube.get(resource, "shop", namespace=namespace)
    assert app is not None
    failed = {"lastSync": {"result": "Failed", "error": "boom", "summary": {"created": 1, "unchanged": 3}}}
    succeeded = {"lastSync": {"result": "Succeeded", "summary": {"configured": 1}}}
    patch_status(kube, resource, app, failed)
    written = patch_status(kube, resource, app, succeeded)
    assert written["status"] == succeeded
    assert installed.status(namespace, "shop") == succeeded


def test_the_documented_tenant_recipe_syncs_an_app(
    installed: Kubectl, repo: Path, namespace: str, kube_api: client.ApiClient,
    run_daemon: Callable[..., subprocess.Popen[str]],
) -> None:
    """The recipe of the ClusterRole syncer-tenant (charts/syncer/templates/tenant-role.yaml),
    word for word: a deployer bound to the built-in `edit` and to `syncer-tenant` in its
    namespace, and nothing else."""
    kubectl = installed
    kubectl("-n", namespace, "create", "serviceaccount", "deployer")
    kubectl("-n", namespace, "create", "rolebinding", "deployer-edit", "--clusterrole=edit",
            f"--serviceaccount={namespace}:deployer")
    kubectl("-n", namespace, "create", "rolebinding", "deployer-syncer", "--clusterrole=syncer-tenant",
            f"--serviceaccount={namespace}:deployer")
    run_daemon("--watch-namespace", namespace, "--require-service-account")
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "shop", repo=repo, path="shop",
                                               serviceAccountName="deployer"))

    kubectl("wait", "--for=condition=Ready", "app/shop", "-n", namespace, "--timeout=60s")
    assert configmap(kube_api, namespace, "web-config").data == {"color": "blue"}
    events = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json", "--field-selector",
                                "involvedObject.kind=ConfigMap,involvedObject.name=syncer-shop").stdout)["items"]
    assert [e["reason"] for e in events] == ["SyncSucceeded"]


def test_health_turns_degraded_and_a_finalizer_prunes_on_delete(
    installed: Kubectl, repo: Path, namespace: str, kube_api: client.ApiClient, cluster: ClusterAccess,
    run_daemon: Callable[..., subprocess.Popen[str]], receiver: Receiver,
) -> None:
    if not cluster.controller_manager:
        pytest.skip("needs kube-controller-manager to mark the Deployment's progress deadline as exceeded")
    kubectl = installed
    grant_service_account(kube_api, namespace, "deployer")
    client.CoreV1Api(kube_api).create_namespaced_secret(namespace, {
        "metadata": {"name": "hook"}, "stringData": {"token": "app-s3cret"}})
    commit(repo, {"web/deployment.yaml": textwrap.dedent("""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          replicas: 1
          progressDeadlineSeconds: 6
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers: [{name: web, image: registry.invalid/web:1}]
        """)})
    run_daemon("--watch-namespace", namespace)
    kubectl("apply", "-f", "-", stdin=app_yaml(
        namespace, "web", repo=repo, path="web", serviceAccountName="deployer",
        metadata={"finalizers": ["syncer.dev/prune"]},
        notification={"url": receiver.url + "/app", "secretRef": {"name": "hook", "key": "token"}}))

    # No kubelet runs here: the pod never starts, and the controller-manager marks the
    # rollout failed after its progress deadline.
    eventually(lambda: kubectl.status(namespace, "web").get("health") == "Progressing", timeout=SLACK,
               what="the app to be Progressing while the Deployment rolls out")
    kubectl("wait", "--for=condition=Stalled", "app/web", "-n", namespace, "--timeout=90s")
    status = kubectl.status(namespace, "web")
    assert status["health"] == "Degraded"
    assert condition(status, "Ready")["status"] == "False"
    assert status["healthMessage"].startswith(f"Deployment.apps/{namespace}/web") or \
        status["healthMessage"].startswith(f"Deployment/{namespace}/web"), status["healthMessage"]
    conditions = client.AppsV1Api(kube_api).read_namespaced_deployment("web", namespace).status.conditions
    assert any(c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded" for c in conditions)

    # The App's own receiver heard of the health change, signed with the App's Secret.
    messages = eventually(lambda: [e for e in receiver.events("/app", "web") if e["health"] == "Degraded"],
                          timeout=SLACK, what="the health notification")
    assert messages[0]["event"] == "health" and messages[0]["previousHealth"] == "Progressing"
    _, headers, body = next(m for m in receiver.messages if m[0] == "/app" and b'"Degraded"' in m[2])
    assert headers["x-syncer-signature-256"] == "sha256=" + hmac.new(b"app-s3cret", body, hashlib.sha256).hexdigest()

    # With the finalizer (and spec.prune, the default), deleting the App deletes its objects.
    deployment_uid = client.AppsV1Api(kube_api).read_namespaced_deployment("web", namespace).metadata.uid
    assert deployment_uid
    kubectl("delete", "app", "web", "-n", namespace, "--timeout=60s")
    assert kubectl("get", "app", "web", "-n", namespace, check=False).returncode != 0

    def deployment_gone() -> bool:
        try:
            live = client.AppsV1Api(kube_api).read_namespaced_deployment("web", namespace)
        except client.ApiException as error:
            return error.status == 404
        return bool(live.metadata.deletion_timestamp)

    assert deployment_gone()


def test_drift_is_reported_when_self_heal_is_off(
    installed: Kubectl, repo: Path, namespace: str, kube_api: client.ApiClient,
    run_daemon: Callable[..., subprocess.Popen[str]],
) -> None:
    kubectl = installed
    run_daemon("--watch-namespace", namespace)
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "shop", repo=repo, path="shop", selfHeal=False))
    kubectl("wait", "--for=condition=Ready", "app/shop", "-n", namespace, "--timeout=60s")
    assert kubectl.status(namespace, "shop")["drift"] == {"count": 0, "objects": []}
    client.CoreV1Api(kube_api).patch_namespaced_config_map("web-config", namespace, {"data": {"color": "pink"}})
    eventually(lambda: kubectl.status(namespace, "shop").get("drift", {}).get("count") == 1, timeout=SLACK,
               what="the drift to be reported")
    assert kubectl.status(namespace, "shop")["drift"]["objects"] == [f"ConfigMap/{namespace}/web-config"]
    assert configmap(kube_api, namespace, "web-config").data == {"color": "pink"}  # not reverted
    assert kubectl("get", "apps", "-n", namespace).stdout.splitlines()[1].split()[4] == "1"


def test_git_credentials_come_from_the_apps_secret(
    installed: Kubectl, cluster: ClusterAccess, repo: Path, namespace: str, kube_api: client.ApiClient,
    run_daemon: Callable[..., subprocess.Popen[str]],
) -> None:
    """Only the failure paths can be driven here (no https Git server): a missing Secret, then
    a Secret whose token reaches the Git source, which refuses credentials for a local
    repository. Both prove the Secret is read and handed to Git."""
    kubectl = installed
    run_daemon("--watch-namespace", namespace)
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "private", repo=repo, path="shop", interval="1h",
                                               secretRef={"name": "git-creds"}))
    eventually(lambda: condition(kubectl.status(namespace, "private"), "Ready").get("reason") == "SyncFailed",
               timeout=SLACK, what="the sync to fail without its Secret")
    assert f"Secret/{namespace}/git-creds: not found" in condition(kubectl.status(namespace, "private"),
                                                                    "Ready")["message"]
    client.CoreV1Api(kube_api).create_namespaced_secret(namespace, {
        "metadata": {"name": "git-creds"}, "stringData": {"username": "bot", "password": "t0ken"}})
    result = syncer(cluster, "reconcile", "private", "-n", namespace, "--wait", "--timeout", "60")
    assert result.returncode == 2
    message = condition(kubectl.status(namespace, "private"), "Ready")["message"]
    assert "credentials do not apply to a local repository" in message, message
    assert "t0ken" not in json.dumps(kubectl.app(namespace, "private"))
    assert configmap(kube_api, namespace, "web-config") is None
