"""The dashboard's server on 127.0.0.1, with a fixed set of Apps: live pages have their own
cap within the server's connections, and every POST needs the dashboard's Origin and the
session's CSRF token."""

from __future__ import annotations

import http.client
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from syncer.dashboard.auth import NoAuth
from syncer.dashboard.server import Dashboard, DashboardOptions
from syncer.daemon.http import HTTPLimits

APP = {"metadata": {"namespace": "a", "name": "shop", "uid": "u1"}, "spec": {"repo": "r"}, "status": {}}


class Reader:
    def apps(self) -> list[Any]:
        return [APP]

    def app(self, namespace: str, name: str) -> Any:
        return APP if (namespace, name) == ("a", "shop") else None

    def objects(self, namespace: str, name: str) -> None:
        return None

    def events(self, app: Any) -> list[Any]:
        return []

    def wait_for_change(self, seen: int, *, timeout: float) -> int:
        time.sleep(min(timeout, 0.1))
        return seen + 1


@pytest.fixture
def dashboard() -> Iterator[Dashboard]:
    def act_as(user: Any) -> Any:
        raise AssertionError("no action may reach the API server in these tests")

    server = Dashboard(reader=Reader(), authorizer=NoAuth(), act_as=act_as,  # type: ignore[arg-type]
                       options=DashboardOptions(listen=("127.0.0.1", 0), actions=True, max_streams=1,
                                                limits=HTTPLimits(header_timeout=2, body_timeout=2)))
    server.start()
    yield server
    server.stop()


def request(dashboard: Dashboard, method: str, path: str, *, headers: dict[str, str] | None = None,
            body: str | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(*dashboard.address, timeout=5)
    connection.request(method, path, body=body, headers=headers or {})
    return connection.getresponse()


def test_pages_are_served_with_a_strict_content_security_policy(dashboard: Dashboard) -> None:
    response = request(dashboard, "GET", "/")
    body = response.read().decode()
    assert response.status == 200 and 'href="/apps/a/shop"' in body
    assert "default-src 'none'" in (response.getheader("Content-Security-Policy") or "")
    assert request(dashboard, "GET", "/apps/a/other").status == 404


def test_live_pages_have_their_own_cap(dashboard: Dashboard) -> None:
    with socket.create_connection(dashboard.address, timeout=5) as first:
        first.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"event: main" not in received:
            chunk = first.recv(65536)
            assert chunk, received
            received += chunk
        second = request(dashboard, "GET", "/stream")
        assert second.status == 503
    assert request(dashboard, "GET", "/healthz").status == 404  # a page, not the daemon's probe: still served


def test_a_post_needs_the_origin_and_the_csrf_token_of_its_session(dashboard: Dashboard) -> None:
    page = request(dashboard, "GET", "/apps/a/shop")
    cookie = (page.getheader("Set-Cookie") or "").split(";", 1)[0]
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.read().decode())
    assert cookie and found
    host = f"{dashboard.address[0]}:{dashboard.address[1]}"
    form = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
    without_origin = request(dashboard, "POST", "/apps/a/shop/suspend", headers=form, body=f"csrf={found.group(1)}")
    assert without_origin.status == 403
    with_origin = {**form, "Origin": f"http://{host}"}
    assert request(dashboard, "POST", "/apps/a/shop/suspend", headers=with_origin, body="csrf=").status == 403
    other_session = {**with_origin, "Cookie": "syncer-session=" + "x" * 43}
    assert request(dashboard, "POST", "/apps/a/shop/suspend", headers=other_session,
                   body=f"csrf={found.group(1)}").status == 403
