"""The dashboard's server on 127.0.0.1, with a fixed set of Apps: live pages have their own
cap within the server's connections, every POST needs the dashboard's Origin and the
session's CSRF token, and two history entries compare on a page of their own."""

from __future__ import annotations

import http.client
import re
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from syncer.apply.history import HistoryEntry, Trigger, TriggerKind
from syncer.config import AppConfig
from syncer.dashboard.auth import NoAuth
from syncer.dashboard.compare import Renders, entry_key
from syncer.dashboard.server import Dashboard, DashboardOptions
from syncer.daemon.http import HTTPLimits
from syncer.model import Manifest, Origin

FIRST, SECOND = "1" * 40, "2" * 40
HISTORY = [HistoryEntry(revision=revision, started=started, finished=started, seconds=1.0,
                        trigger=Trigger(TriggerKind.INTERVAL), result="Succeeded")
           for revision, started in ((SECOND, "2026-01-01T11:50:00Z"), (FIRST, "2026-01-01T11:00:00Z"))]
APP = {"metadata": {"namespace": "a", "name": "shop", "uid": "u1"}, "spec": {"repo": "r"},
       "status": {"history": [entry.to_dict() for entry in HISTORY]}}


def configmap(color: str) -> list[Manifest]:
    return [Manifest(obj={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "a"},
                          "data": {"color": color}}, origin=Origin("shop/web.yaml"))]


class Reconciler:
    """The App's reconciler as the compare page uses it: its configuration and its renders."""

    app = AppConfig(name="shop", repo="https://git.example/shop.git", path="shop", home="a")
    renders = {FIRST: configmap("blue"), SECOND: configmap("green")}

    def render_commit(self, revision: str) -> list[Manifest]:
        return self.renders[revision]


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

    renders = Renders(lambda key: Reconciler() if key == "a/shop" else None)  # type: ignore[arg-type, return-value]
    server = Dashboard(reader=Reader(), renders=renders, authorizer=NoAuth(), act_as=act_as,  # type: ignore[arg-type]
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


def compare(dashboard: Dashboard, query: str) -> tuple[int, str]:
    response = request(dashboard, "GET", "/apps/a/shop/compare" + query)
    return response.status, response.read().decode()


def test_two_history_entries_compare_on_a_page_of_their_own(dashboard: Dashboard) -> None:
    app_page = request(dashboard, "GET", "/apps/a/shop").read().decode()
    before, after = entry_key(HISTORY[1]), entry_key(HISTORY[0])
    link = f"/apps/a/shop/compare?from={quote(before, safe='')}&amp;to={quote(after, safe='')}"
    assert f'href="{link}"' in app_page  # the newest entry's "vs previous"
    assert '<form method="get" action="/apps/a/shop/compare"' in app_page
    assert '<label for="compare-from">From</label>' in app_page and 'name="to"' in app_page

    status, page = compare(dashboard, f"?from={quote(before)}&to={quote(after)}")
    assert status == 200, page
    assert '<code class="value">blue</code>' in page and '<code class="value">green</code>' in page
    assert ".data.color" in page and "data-stream" not in page
    assert compare(dashboard, f"?from={quote(after)}&to={quote(after)}")[0] == 200


def test_a_compare_of_what_is_not_there_is_refused(dashboard: Dashboard) -> None:
    after = quote(entry_key(HISTORY[0]))
    status, page = compare(dashboard, f"?from=2025-01-01T00:00:00Z@{FIRST[:12]}&to={after}")
    assert status == 404 and "has no history entry 2025-01-01T00:00:00Z@" in page and "last 20 syncs" in page
    assert compare(dashboard, f"?to={after}")[0] == 400
    assert request(dashboard, "GET", f"/apps/a/other/compare?from={after}&to={after}").status == 404
    assert request(dashboard, "GET", f"/stream/apps/a/shop/compare?from={after}&to={after}").status == 404
