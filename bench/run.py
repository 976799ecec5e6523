"""`python -m bench.run` (or `scripts/bench`): syncer against `kubectl apply --server-side`
and `kpt live apply` on the same local control plane, with request counts from the API
server's audit log.

    scripts/bench                          # everything, default sizes (about 8 minutes on 2 cores)
    scripts/bench --objects 200 --scale 100,200,400 --repeat 1     # a quick look
    scripts/bench --profile                # also profile syncer with py-spy
    scripts/bench --latency 1              # scenarios 1-3 through a proxy adding 1 ms each way

Without `--kubeconfig`, a local control plane (etcd, kube-apiserver of
`SYNCER_KUBERNETES_VERSION`, else the newest; kube-controller-manager) is started with its audit log on and stopped at the end. With `--kubeconfig` and
`--audit-log`, a running cluster is used instead (its apiserver must write a JSON audit log at
Metadata level to a file this machine can read; its CPU time is then not measured) and what
the benchmark created there is deleted at the end.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console

from bench.audit import AuditLog
from bench.latency import DelayProxy, cluster_address, request_round_trip, through_proxy
from bench.measure import Measurement, Server
from bench.profile import find_py_spy
from bench.report import Comparison, ScalePoint, Target, evaluate_targets, print_report, scaling_rows
from bench.generate import generate, list_budget
from bench.scenarios import (
    Bench,
    Profile,
    Settings,
    cleanup,
    compare_tools,
    profile_syncer,
    scaling,
    syncer_environment,
)
from syncer import __version__ as syncer_version
from syncer.devcluster import ControlPlane

BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    server: Server
    started_here: bool


@contextmanager
def cluster(*, kubeconfig: Path | None, audit_log: Path | None, console: Console) -> Iterator[Cluster]:
    """The cluster given, or a local control plane started (and stopped) here."""
    if kubeconfig is not None:
        if audit_log is None:
            raise click.UsageError("--kubeconfig needs --audit-log: requests are counted from the audit log")
        yield Cluster(kubeconfig, Server(AuditLog(audit_log)), started_here=False)
        return
    console.print("[bold]starting a local control plane with its audit log on[/]")
    control_plane = ControlPlane(audit_log=True)
    running = control_plane.start()
    assert running.audit_log is not None
    try:
        yield Cluster(running.kubeconfig, Server(AuditLog(running.audit_log), (running.apiserver_pid, running.etcd_pid)),
                      started_here=True)
    finally:
        control_plane.stop()
        console.print("control plane stopped")


def _tls_context(cluster: dict[str, Any], *, base: Path) -> ssl.SSLContext:
    """How to check the API server's certificate, as the kubeconfig's cluster entry says."""
    if cluster.get("insecure-skip-tls-verify"):
        return ssl._create_unverified_context()
    if cluster.get("certificate-authority-data"):
        return ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    if cluster.get("certificate-authority"):
        return ssl.create_default_context(cafile=str(base / cluster["certificate-authority"]))
    return ssl.create_default_context()


@contextmanager
def network(
    kubeconfig: Path, *, latency_ms: float | None, context: str | None, workdir: Path, console: Console
) -> Iterator[tuple[Path, dict[str, Any] | None]]:
    """The kubeconfig both tools use: the cluster's own, or with `latency_ms`, one whose
    server is a DelayProxy in front of the cluster's (TLS passes through), and what that
    proxy adds per request round trip, measured."""
    if latency_ms is None:
        yield kubeconfig, None
        return
    config = yaml.safe_load(kubeconfig.read_text())
    try:
        upstream = cluster_address(config, context=context)
    except ValueError as error:
        raise click.ClickException(f"--latency: {kubeconfig}: {error}") from error
    with DelayProxy(upstream, delay=latency_ms / 1000) as proxy:
        proxied = workdir / "kubeconfig-latency"
        proxied.write_text(yaml.safe_dump(through_proxy(config, context=context, proxy=proxy.address)))
        proxied.chmod(0o600)
        current = config.get("current-context") if context is None else context
        cluster_name = next(c["context"]["cluster"] for c in config["contexts"] if c["name"] == current)
        tls = _tls_context(next(c["cluster"] for c in config["clusters"] if c["name"] == cluster_name),
                           base=kubeconfig.parent)
        direct = request_round_trip(upstream, context=tls)
        delayed = request_round_trip(proxy.address, context=tls)
        info = {"delay_ms_each_way": latency_ms, "proxy": str(proxy.address), "upstream": str(upstream),
                "request_round_trip_ms": {"direct": round(1000 * direct, 3), "through_proxy": round(1000 * delayed, 3)}}
        console.print(f"[bold]network[/]: proxy {proxy.address} -> {upstream}, +{latency_ms:g} ms each way; "
                      f"GET /version {1000 * direct:.2f} ms direct, {1000 * delayed:.2f} ms through the proxy")
        yield proxied, info


def _first_line(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    except OSError as error:
        return f"unavailable ({error})"
    return (result.stdout or result.stderr).strip().splitlines()[0] if (result.stdout or result.stderr).strip() else ""


def machine(*, kubectl: str, kubeconfig: Path, kpt: str | None = None) -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    versions: dict[str, Any] = {}
    try:
        result = subprocess.run([kubectl, "version", "-o", "json", "--kubeconfig", str(kubeconfig)],
                                capture_output=True, text=True, check=False, timeout=60)
        versions = json.loads(result.stdout or "{}")
    except (OSError, ValueError):
        pass
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu_model": cpu_model,
        "kubernetes_server": (versions.get("serverVersion") or {}).get("gitVersion"),
        "kubectl": (versions.get("clientVersion") or {}).get("gitVersion"),
        "kpt": _first_line([kpt, "version"]) if kpt else None,
        "python": platform.python_version(),
        "syncer": syncer_version,
        "git": _first_line(["git", "--version"]),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
    }


def _warm_up(bench: Bench, console: Console) -> None:
    """Untimed: syncer's bytecode gets written (as installing it would), and kubectl's
    discovery cache filled (as any kubectl user's is)."""
    subprocess.run([sys.executable, "-m", "syncer", "--version"], capture_output=True, check=False,
                   env=syncer_environment())
    bench.kubectl_run("api-resources", "--cache-dir", str(bench.workdir / "kubectl-cache"))
    console.print("warmed up: syncer bytecode compiled, kubectl discovery cache filled")


def _results(
    *,
    info: dict[str, Any],
    settings: Settings,
    comparisons: list[Comparison],
    points: list[ScalePoint],
    targets: list[Target],
    setup: list[Measurement],
    profiles: list[Profile],
    seconds: float,
    network_info: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "machine": {**info, "load_average_at_end": [round(load, 2) for load in os.getloadavg()]},
        "settings": {
            "objects": settings.objects, "scale": list(settings.scale), "repeat": settings.repeat,
            "syncer_concurrency": settings.concurrency,
        },
        "network": network_info or {"delay_ms_each_way": 0, "proxy": None},
        "duration_seconds": round(seconds, 1),
        "comparisons": [comparison.to_dict() for comparison in comparisons],
        "scaling": scaling_rows(points),
        "targets": [target.to_dict() for target in targets],
        "setup": [measurement.to_dict() for measurement in setup],
        "profiles": [{"scenario": p.scenario, "collapsed_stacks": str(p.collapsed), "wall_seconds_under_profiler":
                      round(p.wall, 2), "summary": p.summary.splitlines()} for p in profiles],
    }


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError as error:
        raise click.BadParameter(f"{text!r}: expected sizes like 100,1000,5000") from error
    if any(size < 40 for size in sizes):
        raise click.BadParameter("sizes below 40 leave kinds or namespaces empty")
    return sizes


@click.command()
@click.option("--objects", type=click.IntRange(min=40), default=1000, show_default=True,
              help="Objects per app in scenarios 1-4 (plus 10 Namespaces).")
@click.option("--scale", default="100,1000,5000", show_default=True,
              help="Sizes for the syncer-only scaling runs; '' to skip them.")
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
              help="Runs of each no-op command (the median is reported).")
@click.option("--concurrency", type=click.IntRange(1, 256), default=16, show_default=True,
              help="syncer --concurrency.")
@click.option("--latency", "latency_ms", type=click.FloatRange(min=0), default=None,
              help="Milliseconds added each way by a TCP proxy in front of the API server, for both tools; "
                   "runs scenarios 1-3 only (no prune, no scaling).")
@click.option("--profile", "with_profile", is_flag=True, help="Also profile syncer (fresh and no-op) with py-spy.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Use this cluster instead of starting one (needs --audit-log).")
@click.option("--context", default=None, help="Kubeconfig context (with --kubeconfig).")
@click.option("--audit-log", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The API server's JSON audit log (with --kubeconfig).")
@click.option("--kubectl", default="kubectl", show_default=True, help="The kubectl to compare with.")
@click.option("--kpt", default="kpt", show_default=True, help="The kpt to compare with ('' to leave kpt out).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Where to write the results [default: bench/results.json, with --latency "
                                 "bench/results-latency.json].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=BENCH_DIR / "out",
              show_default=True, help="Scratch output: command logs, profiles.")
def main(
    *, objects: int, scale: str, repeat: int, concurrency: int, latency_ms: float | None, with_profile: bool,
    kubeconfig: Path | None,
    context: str | None, audit_log: Path | None, kubectl: str, kpt: str, json_path: Path | None, out: Path,
) -> None:
    """Benchmark syncer against kubectl apply --server-side and kpt live apply on the same cluster."""
    console = Console(stderr=True)
    sizes = _sizes(scale) if scale.strip() and latency_ms is None else ()
    settings = Settings(objects=objects, scale=sizes, repeat=repeat,
                        concurrency=concurrency, kubectl=kubectl, context=context, kpt=kpt or None)
    for tool in (kubectl, "git", *([kpt] if kpt else [])):
        if shutil.which(tool) is None:
            raise click.ClickException(f"{tool}: not found on PATH")
    py_spy = find_py_spy() if with_profile else None
    if with_profile and py_spy is None:
        raise click.ClickException("--profile needs py-spy: .venv/bin/pip install py-spy")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="syncer-bench-"))
    try:
        with cluster(kubeconfig=kubeconfig, audit_log=audit_log, console=console) as target, \
                network(target.kubeconfig, latency_ms=latency_ms, context=context, workdir=workdir,
                        console=console) as (used_kubeconfig, network_info):
            bench = Bench(settings=settings, kubeconfig=used_kubeconfig, server=target.server, workdir=workdir,
                          logs=out / "logs", console=console, run_id=secrets.token_hex(2))
            info = machine(kubectl=kubectl, kubeconfig=used_kubeconfig, kpt=kpt or None)
            _warm_up(bench, console)
            try:
                comparisons = compare_tools(bench, prune=latency_ms is None)
                points = scaling(bench, settings.scale)
                profiles = profile_syncer(bench, py_spy=py_spy, out=out) if py_spy else []
            finally:
                if not target.started_here:
                    cleanup(bench)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    targets = evaluate_targets(comparisons, points, list_budget=list_budget(generate(objects, prefix="budget")),
                               latency=latency_ms is not None)
    # Wide enough for the tables also when stdout is a file or a pipe (rich assumes 80 columns).
    print_report(Console(width=None if sys.stdout.isatty() else 170), comparisons=comparisons, points=points, targets=targets,
                 latency_ms=latency_ms)
    results = _results(info=info, settings=settings, comparisons=comparisons, points=points, targets=targets,
                       setup=bench.setup, profiles=profiles, seconds=time.monotonic() - started,
                       network_info=network_info)
    if json_path is None:
        json_path = BENCH_DIR / ("results.json" if latency_ms is None else "results-latency.json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"results written to {json_path} ({results['duration_seconds']:.0f}s in all)")


if __name__ == "__main__":
    main()
