"""`syncer run` against a real API server and a local Git repository: new commits are applied,
drift is reverted, webhooks trigger syncs at once, metrics count, leader election hands over,
and SIGTERM stops the process cleanly."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ClusterAccess
from tests.schema import assert_valid
from syncer.apply.status import RESULT_ANNOTATION, REVISION_ANNOTATION, SUMMARY_ANNOTATION
from syncer.config import AppConfig, Config
from syncer.daemon import Daemon, DaemonOptions, ElectionOptions, FileApps
from syncer.kube import ClientOptions
from tests.e2e.apps import SLACK, eventually
from tests.e2e.proxy import TcpProxy, kubeconfig_through

SECRET = b"webhook-secret"
SYNCER = Path(sys.executable).parent / "syncer"


# -- helpers -------------------------------------------------------------------------------

def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def configmap_yaml(name: str, color: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {name}
        data:
          color: {color}
        """)


def commit(repo: Path, files: dict[str, str], message: str = "change") -> str:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "deploy"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "user.name", "test")
    git(path, "config", "commit.gpgsign", "false")
    commit(path, {"shop/config.yaml": configmap_yaml("web-config", "blue")}, "first")
    return path


def app(name: str, repo: Path, namespace: str, **overrides: Any) -> AppConfig:
    fields: dict[str, Any] = {"revision": "main", "path": "shop", "interval": 1.0, "timeout": 30.0, **overrides}
    return AppConfig(name=name, repo=str(repo), namespace=namespace, **fields)


def color(api: client.ApiClient, namespace: str, name: str = "web-config") -> str | None:
    try:
        live = client.CoreV1Api(api).read_namespaced_config_map(name, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return (live.data or {}).get("color")


def read_configmap(api: client.ApiClient, namespace: str, name: str) -> Any:
    """The live ConfigMap (typed Any: the client's models make every field optional)."""
    return client.CoreV1Api(api).read_namespaced_config_map(name, namespace)


def read_lease(api: client.ApiClient, namespace: str) -> Any:
    return client.CoordinationV1Api(api).read_namespaced_lease("syncer-leader", namespace)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample with that name and (at least) those labels, in Prometheus
    text format."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None


def url(daemon: Daemon, path: str) -> str:
    return f"http://127.0.0.1:{daemon.address[1]}{path}"


def syncs(daemon: Daemon, app_name: str) -> float:
    _, text = get(url(daemon, "/metrics"))
    return metric(text, "syncer_sync_runs_total", app=app_name) or 0.0


@pytest.fixture
def start_daemon(cluster: ClusterAccess, tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(*apps: AppConfig, kubeconfig: Path | None = None, **options: Any) -> Daemon:
        defaults: dict[str, Any] = {"listen": ("127.0.0.1", 0), "cache_dir": tmp_path / "cache", "lock_timeout": 10.0}
        daemon = Daemon(
            FileApps(Config(apps=apps, source="test")),
            client=ClientOptions(kubeconfig=str(kubeconfig or cluster.kubeconfig), context=cluster.context),
            options=DaemonOptions(**{**defaults, **options}),
        )
        daemon.start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if not daemon._stopping:
            daemon.stop(timeout=30)


# -- tests ---------------------------------------------------------------------------------

def test_a_new_commit_is_applied_within_a_few_intervals(
    repo: Path, namespace: str, kube_api: client.ApiClient, start_daemon: Callable[..., Daemon]
) -> None:
    start_daemon(app("shop", repo, namespace))
    eventually(lambda: color(kube_api, namespace) == "blue", timeout=SLACK, what="the first sync")

    sha = commit(repo, {"shop/config.yaml": configmap_yaml("web-config", "green")})
    eventually(lambda: color(kube_api, namespace) == "green", timeout=1.0 + SLACK,  # the app's interval
               what="the new commit to be applied")

    def status() -> dict[str, str] | None:
        annotations: dict[str, str] = read_configmap(kube_api, namespace, "syncer-shop").metadata.annotations or {}
        return annotations if annotations.get(REVISION_ANNOTATION) == sha else None

    annotations = eventually(status, timeout=SLACK, what="the status annotations to name the new commit")
    assert annotations[RESULT_ANNOTATION] == "Succeeded"
    assert json.loads(annotations[SUMMARY_ANNOTATION]) == {"configured": 1}
    managers = {entry.manager for entry in read_configmap(kube_api, namespace, "syncer-shop").metadata.managed_fields}
    assert {"syncer", "syncer-status"} <= managers

    events: Any = client.CoreV1Api(kube_api).list_namespaced_event(
        namespace, field_selector="involvedObject.name=syncer-shop").items
    assert {(e.reason, e.type, e.source.component) for e in events} >= {("SyncSucceeded", "Normal", "syncer")}
    assert any(sha[:12] in e.message for e in events)

    # Idle resyncs (selfHeal, every second) write nothing: not the objects, not the status.
    def versions() -> tuple[str, str]:
        return (read_configmap(kube_api, namespace, "web-config").metadata.resource_version,
                read_configmap(kube_api, namespace, "syncer-shop").metadata.resource_version)

    before = versions()
    time.sleep(3.5)
    assert versions() == before


def test_drift_is_reverted_only_with_self_heal(
    repo: Path, namespace: str, kube_api: client.ApiClient, start_daemon: Callable[..., Daemon]
) -> None:
    commit(repo, {"manual/config.yaml": configmap_yaml("manual-config", "blue")})
    start_daemon(app("healed", repo, namespace), app("manual", repo, namespace, path="manual", self_heal=False))
    eventually(lambda: color(kube_api, namespace) == "blue" and color(kube_api, namespace, "manual-config") == "blue",
               timeout=SLACK, what="both apps to sync")
    core = client.CoreV1Api(kube_api)
    for name in ("web-config", "manual-config"):
        core.patch_namespaced_config_map(name, namespace, {"data": {"color": "red"}})

    eventually(lambda: color(kube_api, namespace) == "blue", timeout=1.0 + SLACK, what="the drift to be reverted")
    time.sleep(2.5)  # more than two more ticks of the app without selfHeal
    assert color(kube_api, namespace, "manual-config") == "red"


def webhook_body(repo: Path, ref: str = "refs/heads/main") -> bytes:
    return json.dumps({"ref": ref, "repository": {"clone_url": f"file://{repo}", "default_branch": "main"}}).encode()


def github_headers(body: bytes, secret: bytes = SECRET) -> dict[str, str]:
    signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={signature}"}


def test_a_signed_webhook_triggers_a_sync_at_once(
    repo: Path, namespace: str, kube_api: client.ApiClient, start_daemon: Callable[..., Daemon]
) -> None:
    daemon = start_daemon(app("shop", repo, namespace, interval=3600.0), webhook_secret=SECRET)
    eventually(lambda: color(kube_api, namespace) == "blue", timeout=SLACK, what="the first sync")
    commit(repo, {"shop/config.yaml": configmap_yaml("web-config", "green")})

    body = webhook_body(repo)
    assert post(url(daemon, "/webhook"), body, github_headers(body, b"wrong"))[0] == 403
    assert post(url(daemon, "/webhook"), body, {"Content-Type": "application/json"})[0] == 401
    assert post(url(daemon, "/webhook"), b"{oops", github_headers(b"{oops"))[0] == 400
    other_branch = webhook_body(repo, "refs/heads/dev")
    assert post(url(daemon, "/webhook"), other_branch, github_headers(other_branch)) == (202, {"triggered": []})
    time.sleep(1)
    assert color(kube_api, namespace) == "blue"  # nothing above triggered a sync

    pushed = time.monotonic()
    assert post(url(daemon, "/webhook"), body, github_headers(body)) == (202, {"triggered": [f"{namespace}/shop"]})
    eventually(lambda: color(kube_api, namespace) == "green", timeout=SLACK, what="the webhook's sync")
    assert time.monotonic() - pushed < SLACK  # the interval is an hour: only the webhook explains it


def test_without_a_secret_the_webhook_is_off(
    repo: Path, namespace: str, start_daemon: Callable[..., Daemon]
) -> None:
    daemon = start_daemon(app("shop", repo, namespace, interval=3600.0))
    body = webhook_body(repo)
    status, answer = post(url(daemon, "/webhook"), body, github_headers(body))
    assert status == 404
    assert "webhooks are off" in answer["error"]


def test_metrics_count_syncs_per_app(
    repo: Path, namespace: str, kube_api: client.ApiClient, start_daemon: Callable[..., Daemon]
) -> None:
    sha = git(repo, "rev-parse", "HEAD")
    daemon = start_daemon(app("shop", repo, namespace), app("broken", repo, namespace, path="missing"))
    eventually(lambda: syncs(daemon, "shop") >= 2 and syncs(daemon, "broken") >= 1, timeout=SLACK,
               what="syncs of both apps")
    status, text = get(url(daemon, "/metrics"))
    assert status == 200
    shop, broken = {"app": "shop", "app_namespace": namespace}, {"app": "broken", "app_namespace": namespace}
    assert metric(text, "syncer_objects_applied_total", action="created", **shop) == 1
    assert metric(text, "syncer_objects_applied_total", action="configured", **shop) == 0
    assert metric(text, "syncer_app_info", **shop, health_status="Unknown", sync_status="Succeeded") == 1
    assert metric(text, "syncer_app_info", **broken, health_status="Unknown", sync_status="Failed") == 1
    assert "_created" not in text and metric(text, "process_resident_memory_bytes")
    assert metric(text, "syncer_objects_pruned_total", **shop) == 0
    assert metric(text, "syncer_sync_failures_total", **shop) == 0
    assert metric(text, "syncer_sync_failures_total", **broken) == metric(text, "syncer_sync_runs_total", **broken)
    assert metric(text, "syncer_last_synced_revision_info", **shop, revision=sha) == 1
    assert (metric(text, "syncer_last_successful_sync_timestamp_seconds", **shop) or 0) > time.time() - 60
    assert (metric(text, "syncer_sync_duration_seconds_count", **shop) or 0) >= 2
    assert metric(text, "syncer_git_fetch_duration_seconds_count", **shop) == 1  # one revision, one fetch
    assert metric(text, "syncer_leader") == 1

    ready, body = get(url(daemon, "/readyz"))
    assert ready == 200
    assert re.fullmatch(r"ready: leader \(leader election off\); 2 app\(s\) configured; "
                        r"watching \d+ kind\(s\), \d+ object\(s\) cached\n", body), body
    assert get(url(daemon, "/healthz")) == (200, "ok\n")


@dataclass(frozen=True)
class Sample:
    """Both replicas' `is_leader`, read one right after the other."""

    started: float
    first: bool
    second: bool
    ended: float


class LeadershipSampler:
    """Reads both replicas' own view of their leadership every few milliseconds, in a thread,
    for as long as both run: "never two leaders" is a claim about every moment, not about
    the state after one replica was stopped."""

    def __init__(self, first: Daemon, second: Daemon) -> None:
        self._replicas = (first, second)
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leadership-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        first, second = self._replicas
        while not self._stop.is_set():
            started = time.monotonic()
            a = first.is_leader
            b = second.is_leader
            self.samples.append(Sample(started, a, b, time.monotonic()))
            self._stop.wait(0.005)

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join()
        return self.samples


def test_only_the_leader_syncs_and_a_standby_takes_over(
    repo: Path, namespace: str, cluster: ClusterAccess, kube_api: client.ApiClient, tmp_path: Path,
    start_daemon: Callable[..., Daemon],
) -> None:
    """Two replicas; the leader is cut off from the API server (a network partition: its
    requests hang) while it keeps running. The standby takes over once the Lease expired,
    and the old leader has stopped leading before that, by its own renew deadline: sampled
    throughout, the two never lead at once. When the partition heals, the old leader stays
    a standby."""
    election = ElectionOptions(namespace=namespace, lease_duration=2.0, renew_deadline=1.4, renew_period=0.5,
                               retry_period=0.2)
    # A candidate takes over lease_duration after it last saw the Lease change, and looks
    # every retry_period; the leader gives up renew_deadline after its last renewal.
    takeover = election.lease_duration + election.renew_period + election.retry_period
    exclusive = election.lease_duration - election.renew_deadline
    """The least time between the old leader's end and the new one's start."""
    through_proxy, proxy = kubeconfig_through(cluster.kubeconfig, write_to=tmp_path / "first.kubeconfig")
    try:
        first = start_daemon(app("shop", repo, namespace), election=election, identity="first",
                             webhook_secret=SECRET, kubeconfig=through_proxy)
        eventually(lambda: first.is_leader, timeout=takeover + SLACK, what="the first replica to lead")
        second = start_daemon(app("shop", repo, namespace), election=election, identity="second",
                              webhook_secret=SECRET)
        sampler = LeadershipSampler(first, second)
        try:
            _lead_partition_and_hand_over(first, second, sampler=sampler, proxy=proxy, repo=repo,
                                          namespace=namespace, kube_api=kube_api, takeover=takeover)
        finally:
            samples = sampler.stop()
        overlapping = [s for s in samples if s.first and s.second and s.ended - s.started < exclusive]
        assert not overlapping, f"both replicas led at once, {len(overlapping)} time(s), first at {overlapping[0]}"
        # The samples saw each state of the handover, so the claim above was tested.
        assert samples[0].first and not samples[0].second
        assert any(not s.first and not s.second for s in samples), "a moment with no leader between the two"
        assert samples[-1].second and not samples[-1].first
        last_first = max(s.started for s in samples if s.first)
        first_second = min(s.ended for s in samples if s.second)
        assert first_second - last_first >= exclusive, "the standby took over only after the old leader stopped"
        lease = read_lease(kube_api, namespace)
        assert lease.spec.holder_identity == "second"
        assert lease.spec.lease_transitions == 1

        first.stop(timeout=SLACK)
        # A clean stop releases the Lease at once.
        second.stop(timeout=SLACK)
        lease = read_lease(kube_api, namespace)
        assert lease.spec.holder_identity is None
    finally:
        proxy.close()


def _lead_partition_and_hand_over(
    first: Daemon, second: Daemon, *, sampler: LeadershipSampler, proxy: TcpProxy, repo: Path, namespace: str,
    kube_api: client.ApiClient, takeover: float,
) -> None:
    # A leader's second sync follows its first one's own status write (seen by its watches).
    eventually(lambda: syncs(first, "shop") >= 2, timeout=SLACK, what="the leader to sync")
    assert "standby (leader: first)" in get(url(second, "/readyz"))[1]
    assert "ready: leader (first)" in get(url(first, "/readyz"))[1]
    assert syncs(second, "shop") == 0
    assert read_lease(kube_api, namespace).spec.holder_identity == "first"

    # A webhook that reaches the standby is passed on to the leader.
    sha = commit(repo, {"shop/config.yaml": configmap_yaml("web-config", "green")})
    body = webhook_body(repo)
    assert post(url(second, "/webhook"), body, github_headers(body)) == (202, {"triggered": [f"{namespace}/shop"]})
    eventually(lambda: color(kube_api, namespace) == "green", timeout=SLACK, what="the forwarded webhook's sync")
    # That sync over, the leader holds no app lock that the partition could leave behind
    # (the standby's sync would wait for it to expire).
    eventually(lambda: metric(get(url(first, "/metrics"))[1], "syncer_last_synced_revision_info",
                              app="shop", app_namespace=namespace, revision=sha) == 1
               and app_lock(kube_api, namespace) is None,
               timeout=SLACK, what="the leader's sync of the pushed commit to finish")

    proxy.partition()
    eventually(lambda: second.is_leader, timeout=takeover + SLACK, what="the standby to take over")
    assert not first.is_leader
    assert "ready: leader (second)" in get(url(second, "/readyz"))[1]
    # The standby never synced before; its first sync as the leader is counted once it ends
    # (later ticks find nothing changed and do not sync), so count from zero, not from now.
    eventually(lambda: syncs(second, "shop") >= 1, timeout=SLACK, what="the new leader to sync")
    _, text = get(url(second, "/metrics"))
    assert metric(text, "syncer_sync_failures_total", app="shop", app_namespace=namespace) == 0

    proxy.heal()
    eventually(lambda: "standby (leader: second)" in get(url(first, "/readyz"))[1], timeout=takeover + SLACK,
               what="the old leader, reconnected, to see the new one")
    # A few more of the old leader's retries: it stays a standby.
    time.sleep(takeover)
    assert not first.is_leader and second.is_leader


def app_lock(api: client.ApiClient, namespace: str, app_name: str = "shop") -> Any | None:
    """The app's lock (Lease syncer-<app>), or None while no sync holds it."""
    try:
        return client.CoordinationV1Api(api).read_namespaced_lease(f"syncer-{app_name}", namespace)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, never one this process handed out before: two replicas
    started one after the other were once given the same one (a port is free again once the
    probe socket closes, until the process it was meant for binds it)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_stops_syncer_run_cleanly(
    repo: Path, namespace: str, cluster: ClusterAccess, kube_api: client.ApiClient, tmp_path: Path,
    signum: signal.Signals,
) -> None:
    """SIGHUP is handled like SIGTERM (README: it does not reload), and every JSON log line
    is a LogRecord of docs/schema/v1.json."""
    config = tmp_path / "apps.yaml"
    config.write_text(textwrap.dedent(f"""\
        apps:
        - name: shop
          repo: {repo}
          revision: main
          path: shop
          namespace: {namespace}
          interval: 1s
        """))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "SYNCER_WEBHOOK_SECRET")}
    process = subprocess.Popen(
        [str(SYNCER), "run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--log-format", "json",
         "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context, "--cache-dir", str(tmp_path / "cache")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        eventually(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200 or process.poll() is not None,
                   timeout=SLACK, what="syncer run to be ready")
        assert process.poll() is None, process.communicate()[1]
        eventually(lambda: color(kube_api, namespace) == "blue", timeout=SLACK, what="the first sync")
        signalled = time.monotonic()
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=SLACK)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert time.monotonic() - signalled < 10
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    synced = [line for line in lines if line.get("app") == "shop" and line.get("result") == "Succeeded"]
    assert synced and synced[0]["revision"] == git(repo, "rev-parse", "HEAD")
    assert synced[0]["summary"]["created"] == 1
    assert f"{signum.name} received: no new syncs start; waiting for running ones" in [
        line["message"] for line in lines]
    assert lines[-1]["message"] == "stopped"
    for line in lines:
        assert_valid(line, kind="LogRecord")

