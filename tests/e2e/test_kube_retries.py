"""Transient failures between syncer and the API server are retried.

A flaky proxy sits between syncer's client and the real API server: it answers the first
requests (or the requests of one method and path) with 429 (with Retry-After), 503, or drops
the connection, then forwards to the API server, and records what it did to each request.
syncer must get the real answer in the end, or give up with a clear error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client

from syncer.errors import ClusterError, Unavailable
from syncer.kube.config import Connection
from syncer.kube.credentials import FixedHeaders
from syncer.kube import ClientOptions, Kube
from tests.conftest import ClusterAccess


Answer = int | str
"""What the proxy does to one request: 'ok' (forward it), 'reset' or an HTTP status."""


@dataclass(frozen=True)
class Seen:
    """One request as the proxy saw it, and what it did with it."""

    method: str
    path: str
    """Without the query."""
    query: str
    answer: Answer


@dataclass
class Faults:
    """What the proxy does to the next requests, and what it did.

    `plan` is a queue of answers for the next requests, whatever they are. `aimed` holds
    queues of answers for the requests of one (method, path): a fault meant for a write hits
    that write, however many reads syncer sends before it.
    """

    plan: list[Answer] = field(default_factory=list)
    aimed: dict[tuple[str, str], list[Answer]] = field(default_factory=dict)
    log: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def seen(self) -> int:
        return len(self.log)

    def next(self, method: str, target: str) -> Answer:
        path, _, query = target.partition("?")
        with self.lock:
            queue = self.aimed.get((method, path))
            if queue:
                answer = queue.pop(0)
            else:
                answer = self.plan.pop(0) if self.plan else "ok"
            self.log.append(Seen(method, path, query, answer))
            return answer


def _admin_access(cluster: ClusterAccess) -> tuple[str, str, str]:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c["context"] for c in config["contexts"] if c["name"] == cluster.context)
    server = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    if "token" not in user or "certificate-authority" not in server:
        pytest.skip("needs a token and a CA file in the kubeconfig (the local control plane's)")
    return server["server"], server["certificate-authority"], user["token"]


@pytest.fixture
def flaky(cluster: ClusterAccess) -> Iterator[tuple[Kube, Faults]]:
    upstream, ca_file, token = _admin_access(cluster)
    http = urllib3.PoolManager(ca_certs=ca_file)
    faults = Faults()

    class Proxy(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            fault = faults.next(self.command, self.path)
            if fault == "reset":
                self.close_connection = True
                self.connection.close()
                return
            if isinstance(fault, int):
                self.send_response(fault)
                if fault == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            reply = http.request(self.command, upstream + self.path, body=body, headers=headers)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(reply.data)))
            self.end_headers()
            self.wfile.write(reply.data)

        do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = _forward

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    connection = Connection(server=f"http://127.0.0.1:{server.server_address[1]}",
                            credentials=FixedHeaders.bearer(token))
    options = ClientOptions(max_retries=3, backoff_base=0.05, backoff_cap=2.0)
    kube = Kube(connection, options)
    yield kube, faults
    kube.close()
    server.shutdown()


@pytest.mark.parametrize("fault", [429, 503, 502, "reset"])
def test_transient_failure_is_retried(
    flaky: tuple[Kube, Faults], namespace: str, kube_api: client.ApiClient, fault: int | str
) -> None:
    kube, faults = flaky
    configmaps = kube.resource_for("v1", "ConfigMap")
    # Not kube-root-ca.crt: the controller-manager may not have written it yet.
    client.CoreV1Api(kube_api).create_namespaced_config_map(namespace, {"metadata": {"name": "present"}})
    faults.plan = [fault, fault]
    seen_before = faults.seen
    names = {o["metadata"]["name"] for o in kube.list(configmaps, namespace=namespace)}
    assert faults.plan == [], "both failures happened"
    assert "present" in names, "the real answer arrived"
    if fault != "reset":  # a dropped keep-alive connection may also fail before reaching the proxy
        assert faults.seen - seen_before == 3, "two failures, then the answer"


def test_retry_after_is_honoured(flaky: tuple[Kube, Faults], namespace: str) -> None:
    kube, faults = flaky
    configmaps = kube.resource_for("v1", "ConfigMap")
    faults.plan = [429]
    started = time.monotonic()
    kube.list(configmaps, namespace=namespace)
    assert time.monotonic() - started >= 0.9, "waited for Retry-After: 1"


def test_gives_up_after_bounded_retries_with_a_clear_error(flaky: tuple[Kube, Faults], namespace: str) -> None:
    kube, faults = flaky
    configmaps = kube.resource_for("v1", "ConfigMap")
    faults.plan = [503] * 10
    seen_before = faults.seen
    with pytest.raises(Unavailable, match="gave up after 4 attempts"):
        kube.list(configmaps, namespace=namespace)
    assert faults.seen - seen_before == 4


def test_a_server_failure_is_reported_at_once_not_as_unreachable(flaky: tuple[Kube, Faults], namespace: str) -> None:
    """A 500 without a retry hint is the server failing on this request: retrying repeats it."""
    kube, faults = flaky
    configmaps = kube.resource_for("v1", "ConfigMap")
    faults.plan = [500, 500]
    seen_before = faults.seen
    with pytest.raises(ClusterError) as excinfo:
        kube.list(configmaps, namespace=namespace)
    assert type(excinfo.value) is ClusterError and excinfo.value.status == 500
    assert "cannot reach" not in str(excinfo.value)
    assert faults.seen - seen_before == 1, "sent once"


def test_writes_are_retried_too(flaky: tuple[Kube, Faults], namespace: str, kube_api: client.ApiClient) -> None:
    """The fault is aimed at the apply itself (PATCH of the object's path), not at whatever
    request comes next: syncer reads (discovery, the server's version) before it writes."""
    kube, faults = flaky
    configmaps = kube.resource_for("v1", "ConfigMap")
    path = f"/api/v1/namespaces/{namespace}/configmaps/retried"
    faults.aimed[("PATCH", path)] = [503]
    kube.apply(configmaps, {"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "retried", "namespace": namespace}, "data": {"k": "v"}},
               subject=f"ConfigMap/{namespace}/retried", field_manager="syncer", force=True, dry_run=False)
    writes = [(seen.method, seen.answer) for seen in faults.log if seen.path == path]
    assert writes == [("PATCH", 503), ("PATCH", "ok")], "the apply was faulted, then sent again"
    assert all("dryRun" not in seen.query for seen in faults.log if seen.path == path), "a real write, twice"
    live: Any = client.CoreV1Api(kube_api).read_namespaced_config_map("retried", namespace)
    assert live.data == {"k": "v"}
    assert [entry.manager for entry in live.metadata.managed_fields] == ["syncer"]
