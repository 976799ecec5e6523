"""Shared pytest fixtures: a real Kubernetes API server for the tests that need one.

Fixtures
--------
`cluster` (session)
    A `ClusterAccess(kubeconfig, context, restricted_context, controller_manager)`.
    By default a local control plane (etcd, kube-apiserver, kube-controller-manager; see
    `syncer.devcluster`) of Kubernetes `SYNCER_KUBERNETES_VERSION` (else the newest) is
    started once per session in a temporary directory, building its binaries on first use
    (once per version; see the README's local control plane section). With `SYNCER_TEST_USE_EXISTING_CLUSTER=1`
    the cluster of `KUBECONFIG` (or ~/.kube/config) and its current context is used instead;
    there is no unprivileged context then (`restricted_context` is None).
    When any test failed, the control plane's logs are kept and their path is printed at the
    end of the run.

`restricted_context` (function)
    The kubeconfig context of `syncer-restricted`, a user in no group at all: it may do only
    what a test grants it through RBAC. Skips the test on an existing cluster.

`kube_api` (session)
    A `kubernetes.client.ApiClient` for the admin context, so that tests read back what
    syncer did without going through syncer's own cluster code.

`served_api_versions` (session)
    Every apiVersion the server serves; `tests.e2e.versions.skip_unless_served` skips a test
    about APIs this server no longer (or not yet) serves, naming them.

`namespace` (function)
    A fresh namespace `t-<test name>-<random>`, deleted (without waiting) after the test.

Every test under tests/e2e/ is marked `cluster` automatically: `pytest -m "not cluster"`
runs only what needs no API server.
"""

from __future__ import annotations

import http.server
import os
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config

from syncer.devcluster import ControlPlane, ControlPlaneError, find_assets
from syncer.devcluster.config import ADMIN_CONTEXT, RESTRICTED_CONTEXT
from syncer.errors import ConfigError

USE_EXISTING_CLUSTER = os.environ.get("SYNCER_TEST_USE_EXISTING_CLUSTER") == "1"

_E2E_DIR = Path(__file__).parent / "e2e"
_KEPT_LOGS = pytest.StashKey[Path]()


@dataclass(frozen=True)
class ClusterAccess:
    """How tests reach the API server.

    `controller_manager` is False when the control plane runs without
    kube-controller-manager (a `KUBEBUILDER_ASSETS` folder without it): then nothing is
    garbage collected and namespaces never finish deleting.
    """

    kubeconfig: Path
    context: str
    restricted_context: str | None
    controller_manager: bool = True
    etcd_pid: int | None = None
    """The local control plane's etcd (None on an existing cluster), for outage tests."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.cluster)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    kept = config.stash.get(_KEPT_LOGS, None)
    if kept is not None:
        terminalreporter.write_line(f"control plane logs kept in {kept}")


def _existing_cluster() -> ClusterAccess:
    raw = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if os.pathsep in raw:
        pytest.fail(
            f"KUBECONFIG={raw}: SYNCER_TEST_USE_EXISTING_CLUSTER=1 needs a single kubeconfig "
            "file; merge them first (kubectl config view --flatten)",
            pytrace=False,
        )
    kubeconfig = Path(raw).expanduser()
    try:
        _, current = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig)
        )
    except (config.ConfigException, OSError) as error:
        pytest.fail(f"{kubeconfig}: {error}", pytrace=False)
    return ClusterAccess(
        kubeconfig=kubeconfig, context=str(current["name"]), restricted_context=None
    )


@pytest.fixture(scope="session")
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterAccess]:
    if USE_EXISTING_CLUSTER:
        yield _existing_cluster()
        return
    workdir = tmp_path_factory.mktemp("control-plane")
    try:
        control_plane = ControlPlane(workdir=workdir, assets=find_assets())
    except ConfigError as error:
        pytest.fail(f"no control plane binaries: {error}", pytrace=False)
    try:
        running = control_plane.start()
    except ControlPlaneError as error:
        request.config.stash[_KEPT_LOGS] = control_plane.layout.logs
        pytest.fail(f"cannot start the local control plane: {error}", pytrace=False)
    try:
        yield ClusterAccess(
            kubeconfig=running.kubeconfig,
            context=ADMIN_CONTEXT,
            restricted_context=RESTRICTED_CONTEXT,
            controller_manager=running.controller_manager_pid is not None,
            etcd_pid=running.etcd_pid,
        )
    finally:
        failed = request.session.testsfailed > 0
        control_plane.stop(keep_logs=failed)
        if failed:
            request.config.stash[_KEPT_LOGS] = running.logs


@pytest.fixture
def restricted_context(cluster: ClusterAccess) -> str:
    if cluster.restricted_context is None:
        pytest.skip(
            "needs the unprivileged user of the local control plane; "
            "SYNCER_TEST_USE_EXISTING_CLUSTER=1 provides none"
        )
    return cluster.restricted_context


@pytest.fixture(scope="session")
def kube_api(cluster: ClusterAccess) -> Iterator[client.ApiClient]:
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kubeconfig), context=cluster.context
    )
    with api:
        yield api


@pytest.fixture(scope="session")
def served_api_versions(kube_api: client.ApiClient) -> frozenset[str]:
    """Every apiVersion the server serves (`v1`, `apps/v1`, `networking.k8s.io/v1beta1`, ...):
    what a test about one version's APIs checks before it runs."""
    groups = client.ApisApi(kube_api).get_api_versions().groups
    return frozenset({"v1", *(version.group_version for group in groups for version in group.versions)})


def namespace_name(test_name: str, *, suffix: str | None = None) -> str:
    """`t-<test name shortened>-<6 random hex>`: a valid DNS label (the rule for namespace
    names) that still tells which test left it behind."""
    stem = re.sub(r"^test_?", "", test_name.lower())
    stem = re.sub(r"[^a-z0-9]+", "-", stem).strip("-")[:40].rstrip("-")
    suffix = suffix or secrets.token_hex(3)
    return f"t-{stem}-{suffix}" if stem else f"t-{suffix}"


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kube_api: client.ApiClient) -> Iterator[str]:
    name = namespace_name(request.node.name)
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name)
    except client.ApiException as error:
        if error.status != 404:  # the test may have deleted it itself
            raise


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fetched}\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's signature
        pass


@pytest.fixture
def recording_server() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1 that serves a ConfigMap to any GET; yields its URL and
    the paths asked for, to prove that nothing was fetched."""
    seen: list[str] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Recorder", (_RecordingHandler,), {"seen": seen}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
