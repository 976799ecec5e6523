"""A TCP proxy to the test cluster's API server, for tests that cut a client off from it.

TLS passes through untouched, so a client reaches the proxy with the cluster's own
kubeconfig, only its server address changed (`kubeconfig_through`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.parse
from pathlib import Path

import yaml


class TcpProxy:
    """Forwards connections to the API server. `cut()` closes the open ones, as an API
    server restart or a load balancer's idle timeout does. `partition()` turns the proxy into
    a black hole until `heal()`: what is sent on open connections is dropped and new ones are
    accepted but never answered, so requests hang until the client's own timeout, as in a
    network partition between one replica and the API server (an immediate "connection
    refused" would be the kinder failure). `heal()` closes everything opened before it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._partitioned = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client_side, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                held = self._partitioned
                if held:
                    self._open.append(client_side)
            if held:
                continue
            try:
                server_side = socket.create_connection(self._target)
            except OSError:
                client_side.close()
                continue
            with self._lock:
                self._open += [client_side, server_side]
            for source, sink in ((client_side, server_side), (server_side, client_side)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    dropped = self._partitioned
                if not dropped:
                    sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            end.close()

    def cut(self) -> None:
        with self._lock:
            ends, self._open = self._open, []
        for end in ends:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def partition(self) -> None:
        with self._lock:
            self._partitioned = True

    def heal(self) -> None:
        """Connections that lost data in the partition are closed; clients connect again."""
        with self._lock:
            self._partitioned = False
        self.cut()

    def close(self) -> None:
        self._listener.close()
        self.cut()


def kubeconfig_through(proxy_for: Path, *, write_to: Path) -> tuple[Path, TcpProxy]:
    """A copy of the kubeconfig `proxy_for` whose clusters are reached through a new proxy."""
    config = yaml.safe_load(proxy_for.read_text())
    server = urllib.parse.urlsplit(config["clusters"][0]["cluster"]["server"])
    proxy = TcpProxy((server.hostname or "127.0.0.1", server.port or 443))
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    write_to.write_text(yaml.safe_dump(config))
    return write_to, proxy
