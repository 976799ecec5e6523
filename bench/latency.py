"""A TCP proxy that delays every byte by a fixed time in each direction: a network between
the tools and the API server, as a real cluster has, on one machine.

    python -m bench.latency --upstream 127.0.0.1:6443 --delay-ms 1      # standalone

The proxy does not look into the stream: TLS (and ALPN's choice of HTTP/2 or HTTP/1.1) passes
through end to end, so the API server's certificate must be valid for the address the clients
use (the local control plane's is valid for 127.0.0.1, whatever the port). Each chunk read on
one side is written to the other `delay` seconds after it arrived, in order, without waiting
for the chunks before it to be written first: a delay, not a bandwidth limit, so a pipelined
or multiplexed stream pays it once per round trip, as on a real link.

Pure standard library (asyncio); `DelayProxy` runs its event loop on a thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import click

CHUNK = 256 * 1024


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_address(text: str) -> Address:
    """`host:port` (an IPv6 host in brackets), as in a kubeconfig's server URL."""
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit() or not host:
        raise ValueError(f"{text!r}: expected host:port")
    return Address(host.strip("[]"), int(port))


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, delay: float) -> None:
    """Copy reader to writer, each chunk `delay` seconds after it was read. A reader task
    stamps chunks with their due time and a writer task sends them when due, so chunks in
    flight overlap (the link's latency) instead of adding up."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        while True:
            data = await reader.read(CHUNK)
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()
    finally:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.close()


class DelayProxy:
    """The proxy on `listen` (port 0: any free port), forwarding to `upstream`, on its own
    thread. Use as a context manager; `address` is where clients connect."""

    def __init__(self, upstream: Address, *, delay: float, listen: Address = Address("127.0.0.1", 0)) -> None:
        if delay < 0:
            raise ValueError(f"delay {delay}: must not be negative")
        self.upstream = upstream
        self.delay = delay
        self._listen = listen
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-proxy", daemon=True)
        self.connections = 0

    @property
    def address(self) -> Address:
        assert self._server is not None, "not started"
        host, port = self._server.sockets[0].getsockname()[:2]
        return Address(str(host), int(port))

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writers = [client_writer]
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.upstream.host, self.upstream.port)
            writers.append(upstream_writer)
            for writer in writers:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.gather(
                _pump(client_reader, upstream_writer, delay=self.delay),
                _pump(upstream_reader, client_writer, delay=self.delay),
            )
        except (OSError, asyncio.CancelledError):
            # The upstream refused, or the proxy is shutting down: the connection ends here
            # (asyncio's server logs a handler that ends cancelled as an error).
            for writer in writers:
                writer.close()

    def start(self) -> DelayProxy:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, self._listen.host, self._listen.port), self._loop)
        self._server = started.result(timeout=10)
        return self

    async def _shut_down(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        """Close the listener and every connection through it, then the event loop."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shut_down(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def request_round_trip(address: Address, *, context: ssl.SSLContext, path: str = "/version",
                       samples: int = 30) -> float:
    """Median seconds of one HTTPS GET on a kept-alive connection to `address`: set against
    the same to the API server directly, what the proxy really adds per round trip (the event
    loop's timer granularity included)."""
    connection = http.client.HTTPSConnection(address.host, address.port, context=context, timeout=10)
    times = []
    try:
        for _ in range(samples + 1):
            started = time.perf_counter()
            connection.request("GET", path)
            connection.getresponse().read()
            times.append(time.perf_counter() - started)
    finally:
        connection.close()
    times = times[1:]  # the first one includes the TLS handshake
    return sorted(times)[len(times) // 2]


def _cluster_of(config: dict[str, Any], context: str | None) -> tuple[str, dict[str, Any]]:
    """The context's name (default: the current one) and its cluster's entry."""
    wanted = context or config.get("current-context")
    entry = next((c for c in config.get("contexts") or [] if c.get("name") == wanted), None)
    if entry is None:
        raise ValueError(f"no context {wanted!r} in the kubeconfig")
    cluster_name = (entry.get("context") or {}).get("cluster")
    cluster = next((c for c in config.get("clusters") or [] if c.get("name") == cluster_name), None)
    if cluster is None:
        raise ValueError(f"context {wanted!r} names cluster {cluster_name!r}, which the kubeconfig does not define")
    return str(wanted), cluster


def cluster_address(config: dict[str, Any], *, context: str | None) -> Address:
    """Where the context's API server listens (from its `https://` server URL)."""
    _, cluster = _cluster_of(config, context)
    url = urlsplit(str(cluster["cluster"]["server"]))
    if url.scheme != "https" or url.hostname is None:
        raise ValueError(f"cluster {cluster['name']!r}: server {url.geturl()!r} is not an https:// URL")
    return Address(url.hostname, url.port or 443)


def through_proxy(config: dict[str, Any], *, context: str | None, proxy: Address) -> dict[str, Any]:
    """A copy of a kubeconfig (as parsed YAML) whose context reaches its cluster through
    `proxy`, that context made current. Pure. TLS passes through the proxy, so the server's
    certificate must be valid for the proxy's host: the local control plane's is valid for
    127.0.0.1 on any port."""
    result = copy.deepcopy(config)
    wanted, cluster = _cluster_of(result, context)
    host = f"[{proxy.host}]" if ":" in proxy.host else proxy.host
    cluster["cluster"]["server"] = f"https://{host}:{proxy.port}"
    result["current-context"] = wanted
    return result


@click.command()
@click.option("--upstream", required=True, help="host:port to forward to (the API server).")
@click.option("--listen", default="127.0.0.1:0", show_default=True, help="host:port to listen on.")
@click.option("--delay-ms", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Milliseconds added in each direction.")
def main(*, upstream: str, listen: str, delay_ms: float) -> None:
    """Forward TCP connections to UPSTREAM, delaying each direction by --delay-ms."""
    try:
        target, local = parse_address(upstream), parse_address(listen)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    with DelayProxy(target, delay=delay_ms / 1000, listen=local) as proxy:
        click.echo(f"{proxy.address} -> {target}, +{delay_ms:g} ms each way (Ctrl-C stops)", err=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
