"""Hostile input and secret hygiene against the real API server (issue 11).

A repository cannot make syncer fetch or read outside itself, no Secret value reaches any
output channel (CLI text and JSON, the daemon's JSON log, Events, the status on the ApplySet
parent), bad Secret values fail at once naming the key, a hung API server gives a clear error
within --request-timeout, and /readyz says not ready while etcd is down.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from syncer.apply.status import ERROR_ANNOTATION, RESULT_ANNOTATION
from syncer.config import AppConfig, Config
from syncer.daemon import Daemon, DaemonOptions, FileApps
from syncer.errors import ClusterError
from syncer.kube import ClientOptions, Kube
from tests.conftest import ClusterAccess
from tests.e2e.apps import SLACK, eventually

SYNCER = Path(sys.executable).parent / "syncer"
PIN = "1234567890"
PIN_FORMS = (PIN, "MTIzNDU2Nzg5MA==")
"""The value and its base64 form: neither may appear anywhere."""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def run_syncer(*args: str, cluster: ClusterAccess | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    access = ["--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context] if cluster else []
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "SYNCER_REQUEST_TIMEOUT")}
    return subprocess.run([str(SYNCER), *args, *access], capture_output=True, text=True, timeout=timeout, env=env)


def cluster_objects(api: client.ApiClient, namespace: str) -> dict[str, list[str]]:
    core = client.CoreV1Api(api)
    return {
        "configmaps": sorted(c.metadata.name for c in core.list_namespaced_config_map(namespace).items
                             if c.metadata.name != "kube-root-ca.crt"),
        "secrets": sorted(s.metadata.name for s in core.list_namespaced_secret(namespace).items
                          if s.type != "kubernetes.io/service-account-token"),
    }


def events_text(api: client.ApiClient, namespace: str) -> list[str]:
    return [f"{e.reason}: {e.message}" for e in client.CoreV1Api(api).list_namespaced_event(namespace).items]


SECRET_WITH_A_NUMBER = f"""
apiVersion: v1
kind: Secret
metadata: {{name: db}}
data:
  pin: {PIN}
"""
CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {color: blue}
"""


# -- report 1: kustomize -------------------------------------------------------------------------

def test_a_kustomization_cannot_fetch_a_url_or_read_outside_and_nothing_is_written(
    tmp_path: Path, cluster: ClusterAccess, namespace: str, kube_api: client.ApiClient,
    recording_server: tuple[str, list[str]],
) -> None:
    url, seen = recording_server
    outside = write(tmp_path / "outside", {"kustomization.yaml": "resources: [cm.yaml]\n",
                                           "cm.yaml": CONFIGMAP.replace("settings", "stolen")})
    repo = write(tmp_path / "repo", {
        "app/kustomization.yaml": f"resources:\n- cm.yaml\n- {url}/x.yaml\n- file://{outside}\n",
        "app/cm.yaml": CONFIGMAP,
    })

    result = run_syncer("sync", "--repo", str(repo), "--path", "app", "--name", "kz", "--namespace", namespace,
                        cluster=cluster)

    assert result.returncode == 2, result.stderr
    assert f"app/kustomization.yaml: resources entry '{url}/x.yaml': a URL" in result.stderr
    assert f"app/kustomization.yaml: resources entry 'file://{outside}': a URL" in result.stderr
    assert seen == [], "the local HTTP server was asked for something"
    assert cluster_objects(kube_api, namespace) == {"configmaps": [], "secrets": []}


# -- report 2: no Secret value in any output ---------------------------------------------------

def test_an_api_server_error_about_a_secret_is_scrubbed(kube: Kube, namespace: str, kube_api: client.ApiClient) -> None:
    """The adapter scrubs what the server quotes. The manifest is sent as it is (render would
    refuse it), and the same request through the plain client shows the server does quote it."""
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": namespace},
              "data": {"pin": int(PIN)}}
    configuration = kube_api.configuration
    auth = configuration.auth_settings()["BearerToken"]
    response = kube_api.call_api(
        "PATCH", f"{configuration.host}/api/v1/namespaces/{namespace}/secrets/db?fieldManager=t&dryRun=All",
        header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json",
                       auth["key"]: auth["value"]},
        body=json.dumps(secret),
    )
    response.read()
    assert response.status >= 400 and PIN in response.data.decode(), "the server no longer quotes the value"

    with pytest.raises(ClusterError) as excinfo:
        kube.apply(kube.resource_for("v1", "Secret"), secret, subject=f"Secret/{namespace}/db",
                   field_manager="syncer", force=True, dry_run=True)

    assert PIN not in str(excinfo.value)
    assert "<redacted data.pin>" in str(excinfo.value)


def test_a_rejected_secret_value_appears_in_no_cli_output_and_reads_the_same_twice(
    tmp_path: Path, cluster: ClusterAccess, namespace: str, kube_api: client.ApiClient
) -> None:
    repo = write(tmp_path / "repo", {"secret.yaml": SECRET_WITH_A_NUMBER, "cm.yaml": CONFIGMAP})
    args = ["sync", "--repo", str(repo), "--name", "leak", "--namespace", namespace]

    first = run_syncer(*args, cluster=cluster)
    second = run_syncer(*args, cluster=cluster)
    as_json = run_syncer(*args, "-o", "json", cluster=cluster)
    diff = run_syncer("diff", *args[1:], "-o", "json", cluster=cluster)

    for result in (first, second, as_json, diff):
        assert result.returncode == 2, result.stderr
        for form in PIN_FORMS:
            assert form not in result.stdout + result.stderr
    assert "secret.yaml:5: Secret/" in first.stderr and "/db: data.pin must be a base64 string" in first.stderr
    assert first.stderr == second.stderr
    assert cluster_objects(kube_api, namespace) == {"configmaps": [], "secrets": []}
    assert not any(form in text for text in events_text(kube_api, namespace) for form in PIN_FORMS)


def test_the_daemon_writes_no_secret_value_to_its_log_events_or_status(
    tmp_path: Path, cluster: ClusterAccess, namespace: str, kube_api: client.ApiClient
) -> None:
    repo = write(tmp_path / "repo", {"shop/secret.yaml": SECRET_WITH_A_NUMBER, "shop/cm.yaml": CONFIGMAP})
    config = tmp_path / "apps.yaml"
    config.write_text(f"apps:\n- name: leak\n  repo: {repo}\n  path: shop\n  namespace: {namespace}\n  interval: 1s\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "SYNCER_WEBHOOK_SECRET")}
    process = subprocess.Popen(
        [str(SYNCER), "run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--log-format", "json",
         "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context, "--cache-dir", str(tmp_path / "cache")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    core = client.CoreV1Api(kube_api)

    def failed_status() -> dict[str, str] | None:
        try:
            annotations = core.read_namespaced_config_map("syncer-leak", namespace).metadata.annotations or {}
        except client.ApiException:
            return None
        return annotations if annotations.get(RESULT_ANNOTATION) == "Failed" else None

    try:
        annotations = eventually(failed_status, timeout=60, what="the daemon to record the failure")
        time.sleep(4)  # a few more ticks (interval 1s, with backoff) that fail the same way
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)

    log_lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    failures = [line for line in log_lines if line.get("app") == "leak" and line.get("result") == "Failed"]
    assert len(failures) >= 2, stderr
    assert len({line["error"] for line in failures}) == 1, "a repeated failure must read the same"
    assert "data.pin" in annotations[ERROR_ANNOTATION]
    events = events_text(kube_api, namespace)
    assert len([e for e in events if e.startswith("SyncFailed")]) == 1, events
    parent = core.read_namespaced_config_map("syncer-leak", namespace)
    channels = {
        "daemon log": stdout + stderr,
        "events": "\n".join(events),
        "status annotations": json.dumps(parent.metadata.annotations),
    }
    for channel, text in channels.items():
        for form in PIN_FORMS:
            assert form not in text, f"{form} in the {channel}"
    assert "Traceback" not in stderr


# -- reports 3 and 5: values that are not text, invalid base64 ---------------------------------

def test_string_data_that_yaml_did_not_read_as_text_is_refused_and_nothing_written(
    tmp_path: Path, cluster: ClusterAccess, namespace: str, kube_api: client.ApiClient
) -> None:
    repo = write(tmp_path / "repo", {"cm.yaml": CONFIGMAP, "secret.yaml": """
        apiVersion: v1
        kind: Secret
        metadata: {name: login}
        stringData:
          enabled: true
          ratio: 1.50
          empty: null
          nested: {user: admin}
          mode: 0755
          pin: 0123
          fine: "0123"
        """})

    result = run_syncer("sync", "--repo", str(repo), "--name", "sd", "--namespace", namespace, cluster=cluster)

    assert result.returncode == 2
    object_ = f"Secret/{namespace}/login"
    for line, key in ((5, "enabled"), (6, "ratio"), (7, "empty"), (8, "nested"), (9, "mode"), (10, "pin")):
        assert f"secret.yaml:{line}: {object_}: stringData.{key} must be a string" in result.stderr, result.stderr
    assert "fine" not in result.stderr
    assert cluster_objects(kube_api, namespace) == {"configmaps": [], "secrets": []}


def test_invalid_base64_fails_at_once_naming_the_key(
    tmp_path: Path, cluster: ClusterAccess, namespace: str, kube_api: client.ApiClient
) -> None:
    repo = write(tmp_path / "repo", {"cm.yaml": CONFIGMAP, "secret.yaml": """
        apiVersion: v1
        kind: Secret
        metadata: {name: db}
        data:
          password: "not*base64"
        """})

    started = time.monotonic()
    result = run_syncer("sync", "--repo", str(repo), "--name", "b64", "--namespace", namespace, cluster=cluster)

    assert result.returncode == 2
    assert time.monotonic() - started < 5, "retried as if the error were transient"
    assert f"secret.yaml:5: Secret/{namespace}/db: data.password is not valid base64" in result.stderr
    assert "not*base64" not in result.stderr
    assert cluster_objects(kube_api, namespace) == {"configmaps": [], "secrets": []}


# -- report 7: a hung API server, readiness -----------------------------------------------------

def tcp_server(on_accept: Callable[[socket.socket], None]) -> Iterator[int]:
    """A port on 127.0.0.1 whose connections are handed to `on_accept`, until the test ends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                on_accept(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


@pytest.fixture
def black_hole() -> Iterator[int]:
    """Accepts connections and never answers (a paused API server)."""
    held: list[socket.socket] = []
    yield from tcp_server(held.append)
    for sock in held:
        sock.close()
    assert held, "nothing connected to the black hole: this test proves nothing"


@pytest.fixture
def resetting() -> Iterator[int]:
    """Accepts connections and resets them at once."""
    def reset(sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    yield from tcp_server(reset)


def kubeconfig_to(cluster: ClusterAccess, port: int, path: Path) -> Path:
    """The admin kubeconfig, with the API server's address replaced by 127.0.0.1:port."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c["context"] for c in config["contexts"] if c["name"] == cluster.context)
    for entry in config["clusters"]:
        if entry["name"] == context["cluster"]:
            entry["cluster"]["server"] = f"https://127.0.0.1:{port}"
            entry["cluster"]["tls-server-name"] = "localhost"
    path.write_text(yaml.safe_dump(config))
    return path


def diff_against(port: int, *, request_timeout: int, cluster: ClusterAccess, tmp_path: Path
                 ) -> tuple[subprocess.CompletedProcess[str], float]:
    """`syncer diff` with the API server's address replaced by 127.0.0.1:port, and its duration."""
    repo = write(tmp_path / "repo", {"cm.yaml": CONFIGMAP})
    kubeconfig = kubeconfig_to(cluster, port, tmp_path / "kubeconfig")
    started = time.monotonic()
    result = run_syncer("diff", "--repo", str(repo), "--name", "hung", "--namespace", "default",
                        "--kubeconfig", str(kubeconfig), "--context", cluster.context,
                        "--request-timeout", str(request_timeout), timeout=60)
    return result, time.monotonic() - started


def test_a_hung_api_server_is_a_clear_error_within_the_request_timeout(
    tmp_path: Path, cluster: ClusterAccess, black_hole: int
) -> None:
    result, elapsed = diff_against(black_hole, request_timeout=6, cluster=cluster, tmp_path=tmp_path)

    assert result.returncode == 2, result.stderr
    assert 5 <= elapsed < 15, f"{elapsed:.1f}s"
    assert f"127.0.0.1:{black_hole} did not answer within 6s" in result.stderr, result.stderr
    assert "--request-timeout 6s" in result.stderr


def test_dropped_connections_are_retried_with_a_warning_each_then_fail_within_the_timeout(
    tmp_path: Path, cluster: ClusterAccess, resetting: int
) -> None:
    result, elapsed = diff_against(resetting, request_timeout=8, cluster=cluster, tmp_path=tmp_path)

    assert result.returncode == 2
    assert elapsed < 15
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING") and "retrying in" in line]
    assert len(warnings) >= 2 and "(attempt 1: " in warnings[0] and "(attempt 2: " in warnings[1], result.stderr
    assert "gave up after" in result.stderr


def test_readyz_is_not_ready_while_etcd_is_down(
    tmp_path: Path, cluster: ClusterAccess, namespace: str, kube_api: client.ApiClient
) -> None:
    if cluster.etcd_pid is None:
        pytest.skip("needs the local control plane's etcd")
    repo = write(tmp_path / "repo", {"shop/cm.yaml": CONFIGMAP})
    app = AppConfig(name="ready", repo=str(repo), path="shop", namespace=namespace, interval=60.0)
    daemon = Daemon(FileApps(Config(apps=(app,), source="test")),
                    client=ClientOptions(kubeconfig=str(cluster.kubeconfig), context=cluster.context),
                    options=DaemonOptions(listen=("127.0.0.1", 0), cache_dir=tmp_path / "cache"))
    daemon.start()
    base = f"http://127.0.0.1:{daemon.address[1]}"

    def readyz() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=15) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    try:
        eventually(lambda: readyz()[0] == 200, timeout=SLACK, what="the daemon to be ready")
        os.kill(cluster.etcd_pid, signal.SIGSTOP)
        try:
            status, body = eventually(lambda: (lambda r: r if r[0] == 503 else None)(readyz()),
                                      timeout=SLACK, what="/readyz to say not ready")
            version = client.VersionApi(kube_api).get_code(_request_timeout=5)
            assert version.git_version, "the API server still answers /version: the old probe would say ready"
        finally:
            os.kill(cluster.etcd_pid, signal.SIGCONT)
        assert "not ready: syncs cannot read from the API server" in body
        eventually(lambda: readyz()[0] == 200, timeout=SLACK, what="/readyz to recover")
    finally:
        daemon.stop(timeout=SLACK)
