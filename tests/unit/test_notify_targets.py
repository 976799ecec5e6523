"""Sending a notification to a tenant's receiver: refused at the daemon's own, the node's and the
cloud's addresses unless the operator allows them, connected to the address that was vetted
(one resolution: DNS rebinding gains nothing), and never redirected."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from syncer.daemon.notify import NotificationFailed, Receiver, send
from syncer.daemon.notifytarget import AddressAllowList, parse_allow_list

PAYLOAD = {"event": "failed", "app": {"namespace": "team-a", "name": "shop"}}


class Recorder(ThreadingHTTPServer):
    """A receiver on 127.0.0.1 keeping (path, Host header) of every request (a followed
    redirect may come as a GET); `redirect` answers with that status and Location instead."""

    def __init__(self, *, redirect: tuple[int, str] | None = None) -> None:
        self.requests: list[tuple[str, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler) -> None:  # noqa: N805 - the handler, not the server
                handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
                self.requests.append((handler.path, handler.headers["Host"]))
                if redirect is not None:
                    handler.send_response(redirect[0])
                    handler.send_header("Location", redirect[1])
                else:
                    handler.send_response(204)
                handler.send_header("Content-Length", "0")
                handler.end_headers()

            do_GET = do_POST  # noqa: N815 - http.server's naming

            def log_message(handler, *args: Any) -> None:  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.shutdown()


LOOPBACK_ALLOWED = parse_allow_list(["127.0.0.1"])


def test_a_receiver_on_loopback_is_refused_by_default(recorder: Recorder) -> None:
    """Sent before: a tenant's App reached the daemon's own port and any sidecar's."""
    with pytest.raises(NotificationFailed, match=r"127\.0\.0\.1 is a loopback address: .* --notify-allow 127\.0\.0\.1"):
        send(Receiver(url=recorder.url), PAYLOAD)
    assert recorder.requests == []


def test_a_receiver_on_loopback_is_reached_when_the_operator_allows_it(recorder: Recorder) -> None:
    send(Receiver(url=recorder.url, allow=LOOPBACK_ALLOWED), PAYLOAD)
    assert recorder.requests == [("/hook", f"127.0.0.1:{recorder.port}")]


def test_the_operators_own_receiver_may_be_anywhere(recorder: Recorder) -> None:
    send(Receiver(url=recorder.url, allow=None), PAYLOAD)
    assert len(recorder.requests) == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed(recorder: Recorder, status: int) -> None:
    """Followed before for 301, 302 and 303 (urllib turns the POST into a GET and goes where
    the receiver says): the receiver chose the next address itself."""
    redirecting = Recorder(redirect=(status, recorder.url))
    try:
        with pytest.raises(NotificationFailed, match=f"answered {status} .*redirects are not followed"):
            send(Receiver(url=redirecting.url, allow=LOOPBACK_ALLOWED), PAYLOAD)
        assert len(redirecting.requests) == 1
        assert recorder.requests == [], "the redirect was followed"
    finally:
        redirecting.shutdown()


def test_a_name_is_resolved_once_and_the_vetted_address_is_used(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rebinding name answers an allowed address first and the metadata address after: the
    connection goes to the first, with the URL's name in the Host header."""
    answers = iter(["127.0.0.1", "169.254.169.254", "169.254.169.254"])
    asked: list[str] = []
    real = socket.getaddrinfo

    def rebinding(host: str, *args: Any, **kwargs: Any) -> Any:
        if host != "hooks.rebind.test":
            return real(host, *args, **kwargs)
        asked.append(host)
        address = next(answers)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, recorder.port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    send(Receiver(url=f"http://hooks.rebind.test:{recorder.port}/hook", allow=LOOPBACK_ALLOWED), PAYLOAD)
    assert asked == ["hooks.rebind.test"]
    assert recorder.requests == [("/hook", f"hooks.rebind.test:{recorder.port}")]


def test_a_name_that_resolves_to_a_refused_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def metadata(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(socket, "getaddrinfo", metadata)
    with pytest.raises(NotificationFailed, match=r"hooks\.example\.com \(169\.254\.169\.254\) is a cloud metadata"):
        send(Receiver(url="http://hooks.example.com/hook"), PAYLOAD)


def test_an_allowed_host_name_may_resolve_anywhere(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real(
        "127.0.0.1" if host == "sidecar.local" else host, *a, **k))
    allow = AddressAllowList(hosts=frozenset({"sidecar.local"}))
    send(Receiver(url=f"http://sidecar.local:{recorder.port}/hook", allow=allow), PAYLOAD)
    assert recorder.requests == [("/hook", f"sidecar.local:{recorder.port}")]


def test_an_https_receiver_is_checked_against_the_urls_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """TLS is spoken to the URL's name (SNI and certificate) at the vetted address: a
    plain-HTTP listener there fails the handshake rather than being trusted."""
    server = Recorder()
    try:
        with pytest.raises(NotificationFailed, match="cannot send"):
            send(Receiver(url=f"https://127.0.0.1:{server.port}/hook", allow=LOOPBACK_ALLOWED), PAYLOAD)
    finally:
        server.shutdown()
