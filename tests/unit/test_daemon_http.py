"""The HTTP layer: routes, status codes and bodies, over a real socket; and log formats."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from syncer.daemon.http import DaemonHTTPServer, parse_listen
from syncer.daemon.logs import JsonFormatter


class Endpoints:
    """A stand-in for the daemon with fixed answers, recording webhook calls."""

    def __init__(self) -> None:
        self.webhooks: list[tuple[dict[str, str], bytes]] = []

    def healthz(self) -> tuple[int, str]:
        return 200, "ok"

    def readyz(self) -> tuple[int, str]:
        return 503, "not ready: testing"

    def exposition(self) -> tuple[bytes, str]:
        return b"syncer_sync_runs_total 1.0\n", "text/plain; version=0.0.4"

    def webhook(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        self.webhooks.append((headers, body))
        return 202, {"triggered": ["shop"]}


@pytest.fixture
def served() -> Iterator[tuple[str, Endpoints]]:
    endpoints = Endpoints()
    server = DaemonHTTPServer(("127.0.0.1", 0), endpoints)
    server.start()
    yield f"http://127.0.0.1:{server.address[1]}", endpoints
    server.stop()


def fetch(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_routes(served: tuple[str, Endpoints]) -> None:
    base, _ = served
    assert fetch(base + "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
    assert fetch(base + "/readyz") == (503, "text/plain; charset=utf-8", "not ready: testing\n")
    assert fetch(base + "/metrics") == (200, "text/plain; version=0.0.4", "syncer_sync_runs_total 1.0\n")
    assert fetch(base + "/nope")[0] == 404
    assert fetch(base + "/webhook")[0] == 405
    assert fetch(base + "/healthz", data=b"{}")[0] == 404


def test_webhook_gets_lower_case_headers_and_the_body(served: tuple[str, Endpoints]) -> None:
    base, endpoints = served
    status, content_type, body = fetch(base + "/webhook", data=b'{"ref": "x"}',
                                       headers={"X-Hub-Signature-256": "sha256=ab", "Content-Type": "application/json"})
    assert (status, content_type, json.loads(body)) == (202, "application/json", {"triggered": ["shop"]})
    headers, received = endpoints.webhooks[0]
    assert received == b'{"ref": "x"}'
    assert headers["x-hub-signature-256"] == "sha256=ab"


@pytest.mark.parametrize(
    ("value", "address"),
    [("0.0.0.0:8080", ("0.0.0.0", 8080)), (":9090", ("0.0.0.0", 9090)), ("127.0.0.1:0", ("127.0.0.1", 0)),
     ("[::1]:8080", ("::1", 8080))],
)
def test_parse_listen(value: str, address: tuple[str, int]) -> None:
    assert parse_listen(value) == address


@pytest.mark.parametrize("value", ["8080", "host:", "host:http", "host:70000"])
def test_parse_listen_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        parse_listen(value)


def test_json_log_lines_carry_the_extra_fields() -> None:
    record = logging.LogRecord("syncer.daemon", logging.INFO, __file__, 1, "app %s synced", ("shop",), None)
    record.app = "shop"
    record.summary = {"created": 1}
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "app shop synced"
    assert (line["level"], line["logger"], line["app"], line["summary"]) == ("info", "syncer.daemon", "shop", {"created": 1})
    assert line["time"].endswith("+00:00")
