"""The latency benchmark's proxy: the kubeconfig it writes points the chosen context at the
proxy and nothing else, and the proxy forwards bytes unchanged, each way no sooner than its
delay (a lower bound only: a slow machine may add more, never less)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bench.latency import Address, DelayProxy, cluster_address, parse_address, through_proxy

CONFIG: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Config", "current-context": "dev",
    "clusters": [{"name": "dev", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority": "ca.crt"}},
                 {"name": "prod", "cluster": {"server": "https://10.0.0.1"}}],
    "users": [{"name": "admin", "user": {"token": "t"}}],
    "contexts": [{"name": "dev", "context": {"cluster": "dev", "user": "admin"}},
                 {"name": "prod", "context": {"cluster": "prod", "user": "admin"}}],
}


def test_the_context_reaches_its_cluster_through_the_proxy_and_nothing_else_changes() -> None:
    assert cluster_address(CONFIG, context=None) == Address("127.0.0.1", 6443)
    assert cluster_address(CONFIG, context="prod") == Address("10.0.0.1", 443)
    proxied = through_proxy(CONFIG, context="prod", proxy=Address("127.0.0.1", 5000))
    assert proxied["current-context"] == "prod"
    assert proxied["clusters"][1]["cluster"] == {"server": "https://127.0.0.1:5000"}
    assert proxied["clusters"][0] == CONFIG["clusters"][0], "the other cluster is left alone"
    assert CONFIG["clusters"][1]["cluster"]["server"] == "https://10.0.0.1", "the input is not changed"


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="no context 'staging'"):
        cluster_address(CONFIG, context="staging")
    with pytest.raises(ValueError, match="expected host:port"):
        parse_address("localhost")
    assert parse_address("[::1]:6443") == Address("::1", 6443)


@pytest.fixture
def echo() -> Iterator[Address]:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                while data := connection.recv(65536):
                    connection.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield Address("127.0.0.1", listener.getsockname()[1])
    listener.close()


def test_the_proxy_forwards_bytes_unchanged_after_its_delay_each_way(echo: Address) -> None:
    delay = 0.05
    payload = bytes(range(256)) * 2000  # 512 KB: several chunks in flight
    with DelayProxy(echo, delay=delay) as proxy, \
            socket.create_connection((proxy.address.host, proxy.address.port), timeout=10) as client:
        started = time.perf_counter()
        client.sendall(b"x")
        assert client.recv(1) == b"x"
        assert time.perf_counter() - started >= 2 * delay, "a round trip pays the delay both ways"
        sender = threading.Thread(target=client.sendall, args=(payload,))
        sender.start()
        received = bytearray()
        while len(received) < len(payload):
            received += client.recv(65536)
        sender.join()
    assert bytes(received) == payload
