"""`python -m bench.transport`: client CPU per API request, one HTTP transport against another,
back to back on one local control plane.

    .venv/bin/python -m bench.transport                          # syncer, apiclient, urllib3
    .venv/bin/python -m bench.transport --latency 1 --threads 8,16,32 --variants syncer

Each variant sends the same requests: server-side apply dry-runs of small ConfigMaps
(`--requests`, from `--threads` threads), after 20 untimed ones. Reported per request: the
process's CPU time (`getrusage`, every thread), and kube-apiserver's and etcd's. Variants:

- `syncer`: `Kube.apply` (syncer.kube, with its Transport);
- `apiclient`: the official client's `ApiClient.call_api`, credentials from `auth_settings()`
  on each request, as syncer sent requests before it had a Transport of its own;
- `urllib3`: the client's urllib3 connection pool called directly, nothing around it;
- `httpx-h1`, `httpx-h2`: httpx with HTTP/1.1 or HTTP/2 (only if httpx, and h2 for HTTP/2,
  are installed: `pip install 'httpx[http2]'`; not a dependency of syncer).

With `--latency MS` the requests go through bench.latency's proxy, which then runs in this
process: its CPU counts as the client's, the same for every variant.
"""

from __future__ import annotations

import json
import resource
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import click
import urllib3
import yaml

from bench.latency import DelayProxy, cluster_address, through_proxy
from bench.measure import process_cpu_seconds
from syncer.devcluster import ControlPlane
from syncer.kube import APPLY_PATCH, ClientOptions, Kube, Resource, encode

NAMESPACE = "transport-bench"
VARIANTS = ("syncer", "apiclient", "urllib3", "httpx-h1", "httpx-h2")
Send = Callable[[int, str], None]


def configmap(index: int, tag: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{tag}-{index}", "namespace": NAMESPACE, "labels": {"bench": tag}},
            "data": {f"key{k}": f"value {index} {k} " * 4 for k in range(8)}}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _server_cpu(pids: tuple[int, ...]) -> float:
    return sum(process_cpu_seconds(pid) or 0.0 for pid in pids)


def _sender(variant: str, kube: Kube, configmaps: Resource, *, kubeconfig: str) -> Send:
    """How `variant` sends the dry-run apply of configmap(index, tag); raises on an error.
    The variants other than `syncer` go through the official client (syncer no longer loads
    it), configured from the same kubeconfig."""
    from kubernetes import config as k8s_config  # noqa: PLC0415 - only the comparison variants need it

    api = k8s_config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    host = str(api.configuration.host)
    query = urlencode({"fieldManager": "bench", "force": "true", "dryRun": "All"})
    headers = {**api.default_headers, "Accept": "application/json", "Content-Type": APPLY_PATCH}

    def target(index: int, tag: str) -> str:
        return configmaps.path(namespace=NAMESPACE, name=f"{tag}-{index}") + "?" + query

    if variant == "syncer":
        def send_syncer(index: int, tag: str) -> None:
            kube.apply(configmaps, configmap(index, tag), subject="ConfigMap", field_manager="bench", force=True,
                       dry_run=True)
        return send_syncer
    if variant == "apiclient":
        def send_apiclient(index: int, tag: str) -> None:
            auth = api.configuration.auth_settings()["BearerToken"]
            response = api.call_api("PATCH", host + target(index, tag),
                                    header_params={**headers, "authorization": auth["value"]},
                                    body=encode(configmap(index, tag)).decode(), _request_timeout=(5, 30))
            data: Any = response.read()
            if response.status >= 300:
                raise RuntimeError(f"{variant}: HTTP {response.status}")
            json.loads(data)
        return send_apiclient
    token = api.configuration.auth_settings()["BearerToken"]["value"]
    if variant == "urllib3":
        pool = api.rest_client.pool_manager.connection_from_url(host)
        timeout = urllib3.Timeout(connect=5, read=30)

        def send_urllib3(index: int, tag: str) -> None:
            response = pool.urlopen("PATCH", target(index, tag), body=encode(configmap(index, tag)),
                                    headers={**headers, "authorization": token}, retries=False, redirect=False,
                                    timeout=timeout, assert_same_host=False)
            if response.status >= 300:
                raise RuntimeError(f"{variant}: HTTP {response.status}")
            json.loads(response.data)
        return send_urllib3
    try:
        import httpx
    except ImportError as error:
        raise click.ClickException(f"{variant} needs httpx: pip install 'httpx[http2]'") from error
    http2 = variant == "httpx-h2"
    client = httpx.Client(base_url=host, verify=ssl.create_default_context(cafile=api.configuration.ssl_ca_cert),
                          http1=not http2, http2=http2, timeout=30,
                          limits=httpx.Limits(max_connections=32, max_keepalive_connections=32))

    def send(index: int, tag: str) -> None:
        response = client.patch(target(index, tag), content=encode(configmap(index, tag)),
                                headers={**headers, "authorization": token})
        if response.status_code >= 300 or response.http_version != ("HTTP/2" if http2 else "HTTP/1.1"):
            raise RuntimeError(f"{variant}: HTTP {response.status_code} over {response.http_version}")
        json.loads(response.content)
    return send


def measure(send: Send, *, tag: str, requests: int, threads: int, pids: tuple[int, ...]) -> dict[str, float]:
    for index in range(20):
        send(index, tag + "-warm")
    cpu, server, started = _cpu(), _server_cpu(pids), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda index: send(index, tag), range(requests)))
    wall = time.perf_counter() - started
    return {"wall_seconds": round(wall, 3), "client_cpu_ms_per_request": round(1000 * (_cpu() - cpu) / requests, 3),
            "server_cpu_ms_per_request": round(1000 * (_server_cpu(pids) - server) / requests, 3),
            "requests_per_second": round(requests / wall)}


@click.command()
@click.option("--variants", default="syncer,apiclient,urllib3", show_default=True,
              help=f"Comma-separated, of: {', '.join(VARIANTS)}.")
@click.option("--requests", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--threads", default="16", show_default=True, help="Comma-separated thread counts.")
@click.option("--latency", "latency_ms", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Milliseconds added each way by bench.latency's proxy.")
def main(*, variants: str, requests: int, threads: str, latency_ms: float) -> None:
    """Client CPU per request of each transport, on a local control plane started here."""
    chosen = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        raise click.BadParameter(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    thread_counts = [int(t) for t in threads.split(",") if t.strip()]
    with ControlPlane() as running:
        pids = (running.apiserver_pid, running.etcd_pid)
        config = yaml.safe_load(running.kubeconfig.read_text())
        proxy = DelayProxy(cluster_address(config, context=None), delay=latency_ms / 1000).start() if latency_ms else None
        try:
            kubeconfig = running.kubeconfig
            if proxy is not None:
                kubeconfig = running.kubeconfig.with_name("kubeconfig-latency")
                kubeconfig.write_text(yaml.safe_dump(through_proxy(config, context=None, proxy=proxy.address)))
            kube = Kube.connect(ClientOptions(kubeconfig=str(kubeconfig)))
            kube.apply(kube.resource_for("v1", "Namespace"),
                       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
                       subject=f"Namespace/{NAMESPACE}", field_manager="bench", force=True, dry_run=False)
            configmaps = kube.resource_for("v1", "ConfigMap")
            click.echo(f"{requests} ConfigMap apply dry-runs per variant, +{latency_ms:g} ms each way")
            for count in thread_counts:
                for variant in chosen:
                    send = _sender(variant, kube, configmaps, kubeconfig=str(kubeconfig))
                    result = measure(send, tag=f"{variant}-{count}", requests=requests, threads=count, pids=pids)
                    click.echo(f"{variant:10} threads {count:3}  wall {result['wall_seconds']:6.2f} s  client CPU "
                               f"{result['client_cpu_ms_per_request']:6.3f} ms/request  API server + etcd CPU "
                               f"{result['server_cpu_ms_per_request']:6.3f} ms/request  "
                               f"{result['requests_per_second']:5} requests/s")
        finally:
            if proxy is not None:
                proxy.stop()


if __name__ == "__main__":
    main()
