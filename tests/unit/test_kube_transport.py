"""What the transport puts on the wire, checked with a local HTTP server (no API server needed
for this part): the request path under the server URL's own path, syncer's User-Agent (the
benchmark recognises syncer's requests by it), the credentials' current header on each request,
and new credentials asked for after the server answered 401."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from syncer.errors import ClusterError
from syncer.kube import ClientOptions, Connection, Kube, Resource
from syncer.kube.config import load_connection


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            refused = self.path.startswith("/unauthorized")
            # A write under /unreadable/ is answered with no JSON at all: a client that decodes it fails.
            unreadable = self.command != "GET" and self.path.startswith("/unreadable/")
            body = (b"<html>" if unreadable else json.dumps(
                {"kind": "Status", "reason": "Unauthorized", "message": "Unauthorized", "code": 401}
                if refused else {"kind": "Status", "ok": True}).encode())
            self.send_response(401 if refused else 200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PATCH(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if len(body) < length:  # the client gave up mid-body: a real server drops the request
                seen.append({"path": self.path, "incomplete": f"{len(body)}/{length}"})
                self.close_connection = True
                return
            self.do_GET()

        do_DELETE = do_PATCH

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()


class CountingCredentials:
    """A token that changes each time it is asked for again (as a renewed one would)."""

    def __init__(self) -> None:
        self.renewals = 0

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer token-{self.renewals}"}

    def expire(self) -> None:
        self.renewals += 1


def test_requests_go_under_the_servers_path_with_syncers_agent_and_the_current_credentials(
    server: tuple[str, list[dict[str, str]]], tmp_path: Any
) -> None:
    url, seen = server
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(f"""
clusters: [{{name: c, cluster: {{server: "{url}/gateway/cluster-a/"}}}}]
users: [{{name: u, user: {{token: token-0}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u}}}}]
current-context: c
""")
    connection = load_connection(ClientOptions(kubeconfig=str(kubeconfig)))
    credentials = CountingCredentials()
    kube = Kube(replace(connection, credentials=credentials), ClientOptions())
    try:
        for _ in range(3):
            assert kube.request("GET", "/api/v1/namespaces", subject="namespaces", verb="list") == {
                "kind": "Status", "ok": True}
        credentials.expire()
        kube.request("GET", "/version", subject="version", verb="discovery", query={"a": "b c"})
    finally:
        kube.close()
    assert [r["path"] for r in seen] == ["/gateway/cluster-a/api/v1/namespaces"] * 3 + ["/gateway/cluster-a/version?a=b+c"]
    assert all(r["user-agent"].startswith("syncer/") for r in seen)
    assert [r["authorization"] for r in seen] == ["Bearer token-0"] * 3 + ["Bearer token-1"]


def test_a_401_asks_for_new_credentials_once_and_retries(server: tuple[str, list[dict[str, str]]]) -> None:
    """As kubectl does with an exec plugin's token the server no longer accepts (revoked
    before its expirationTimestamp): one new credential, one more attempt."""
    url, seen = server
    credentials = CountingCredentials()
    kube = Kube(Connection(server=url + "/unauthorized", credentials=credentials), ClientOptions())
    try:
        with pytest.raises(ClusterError, match="Unauthorized"):
            kube.request("GET", "/api/v1/namespaces", subject="namespaces", verb="list")
    finally:
        kube.close()
    assert [r["authorization"] for r in seen] == ["Bearer token-0", "Bearer token-1"]
    assert credentials.renewals == 1


def test_every_write_carries_a_server_side_timeout_and_reads_do_not(
    server: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = server
    kube = Kube(Connection(server=url), ClientOptions(request_timeout=20))
    try:
        kube.request("GET", "/api/v1/namespaces/a/configmaps", subject="list", verb="list")
        kube.request("PATCH", "/api/v1/namespaces/a/configmaps/x", subject="apply", verb="apply",
                     query={"fieldManager": "syncer"}, body={"kind": "ConfigMap"})
        kube.request("DELETE", "/api/v1/namespaces/a/configmaps/x", subject="delete", verb="delete", body={})
    finally:
        kube.close()
    read, patch, delete = (entry["path"] for entry in seen)
    assert "timeout" not in read
    assert patch.startswith("/api/v1/namespaces/a/configmaps/x?fieldManager=syncer&timeout=")
    assert int(patch.rsplit("timeout=", 1)[1].rstrip("s")) in (19, 20)
    assert delete.startswith("/api/v1/namespaces/a/configmaps/x?timeout=")
    assert kube.write_bound == 20  # what a lock taken over from this client waits out


def test_the_write_guard_runs_after_the_rate_limiter_and_before_the_last_byte(
    server: tuple[str, list[dict[str, str]]]
) -> None:
    """A sync that waited on the rate limiter (or was paused there) checks its lock after the
    wait. The check runs once the headers and all but the last byte of the body are on their
    way: a lock lost by then leaves the server an incomplete request, which it drops; the
    server's timeout for the request started before the check (fencing, `syncer.kube.lease`)."""
    url, seen = server
    lost = threading.Event()
    checked: list[str] = []

    class PausingLimiter:
        def acquire(self) -> None:
            if checked:
                lost.set()  # the lock expires while this request waits for its turn

    def guard() -> None:
        checked.append("check")
        if lost.is_set():
            raise RuntimeError("lock lost")

    kube = Kube(Connection(server=url), ClientOptions())
    kube._limiter = PausingLimiter()  # type: ignore[assignment]
    guarded = kube.guarded(guard)
    body = {"kind": "ConfigMap", "data": {"a": "b"}}
    size = len(json.dumps(body, separators=(",", ":")))
    try:
        guarded.request("PATCH", "/api/v1/namespaces/a/configmaps/kept", subject="apply", verb="apply", body=body)
        with pytest.raises(RuntimeError, match="lock lost"):
            guarded.request("PATCH", "/api/v1/namespaces/a/configmaps/x", subject="apply", verb="apply", body=body)
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        kube.close()
    assert checked == ["check", "check"], "one check per request"
    assert seen[0]["path"].startswith("/api/v1/namespaces/a/configmaps/kept?") and "incomplete" not in seen[0]
    assert seen[1]["path"].startswith("/api/v1/namespaces/a/configmaps/x?")
    assert seen[1]["incomplete"] == f"{size - 1}/{size}", "the check ran before anything but the last byte"


def test_an_answer_nobody_reads_is_not_decoded_and_the_connection_serves_the_next_request(
    server: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = server
    kube = Kube(Connection(server=url + "/unreadable"), ClientOptions())
    configmaps = Resource(group="", version="v1", kind="ConfigMap", plural="configmaps", namespaced=True)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "a"}}
    try:
        assert kube.apply(configmaps, body, subject="x", field_manager="syncer", force=True, dry_run=False,
                          decode=False) is None
        assert kube.delete(configmaps, "x", namespace="a", subject="x") is True
        with pytest.raises(ValueError):
            kube.apply(configmaps, body, subject="x", field_manager="syncer", force=True, dry_run=False)
    finally:
        kube.close()
    writes = [entry["path"].partition("?")[0] for entry in seen if not entry["path"].endswith("/version")]
    assert writes == ["/unreadable/api/v1/namespaces/a/configmaps/x"] * 3
