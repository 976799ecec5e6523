"""`python -m bench.daemon` (or `scripts/bench-daemon`): `syncer run` at scale, the watch-driven
daemon against the LIST-per-tick one (`--no-watch`), side by side on one control plane.

    scripts/bench-daemon                                  # 200x20 and 20x500, 1 (and 3) replicas
    scripts/bench-daemon --apps 20x20 --rest 30s --heals 3    # a quick look

For each workload (A apps of N objects, in a few Git repositories) and each variant (watch or
`--no-watch`, on one replica or, when `syncer run` has `--shard`, on three), the daemon is
started from a configuration file and measured:

1. the first sync of all apps: fresh (the workload's first variant creates everything) or a
   restart's (every later variant finds the apps in sync);
2. at rest, once everything has synced and every client has stopped writing: the daemon's
   requests per minute from the audit log, by what they are for (`bench.daemonwork.RestRequests`),
   and its CPU (from /proc: its own and its reaped children's, i.e. git);
3. commit -> applied: a change to one app's ConfigMap committed (in up to 3 repositories at
   once), polled until the object has the new value; without a webhook this waits for the
   app's interval. Then the same with a signed push webhook POSTed to /webhook;
4. hand edit -> healed: a ConfigMap's value patched by the benchmark, polled until the daemon
   has put Git's value back; and a member deleted, polled until it is back;
5. peak RSS (VmHWM) and CPU of the whole run of each daemon process.

The benchmark reads and edits objects with a client of its own user agent, so the audit log
tells its requests from the daemon's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from kubernetes import client as k8s, config as k8s_config
from rich.console import Console

from bench.audit import SYNCER_AGENT, count_requests
from bench.daemonwork import (
    BenchApp,
    Latencies,
    ProcessSample,
    RestRequests,
    Workload,
    classify_rest,
    daemon_config,
    metric_by_app,
    parse_proc,
    parse_workloads,
    ratio,
    workload_apps,
)
from bench.generate import GitRepo, write_tree
from bench.measure import wait_until_quiet
from bench.run import Cluster as ControlPlaneTarget, cluster, machine
from bench.scenarios import syncer_environment
from syncer.config import parse_duration
from syncer.devcluster.processes import free_ports

BENCH_DIR = Path(__file__).resolve().parent
BENCH_AGENT = "syncer-bench/daemon"
WEBHOOK_SECRET = b"daemon-bench-webhook-secret"
SHARD_FLAG = "--shard"
POLL_SECONDS = 0.1
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Variant:
    """A daemon as measured: with watches or `--no-watch`, on how many replicas."""

    watch: bool
    replicas: int

    @property
    def name(self) -> str:
        return ("watch" if self.watch else "no-watch") + (f", {self.replicas} replicas" if self.replicas > 1 else "")

    @property
    def slug(self) -> str:
        return ("watch" if self.watch else "nowatch") + f"-r{self.replicas}"


@dataclass(frozen=True)
class Settings:
    """The command line, parsed."""

    workloads: tuple[Workload, ...]
    replicas: tuple[int, ...]
    interval: str
    interval_seconds: float
    rest_seconds: float
    heals: int
    webhooks: int
    sync_timeout: float
    shard_args: tuple[str, ...] = ()


@dataclass
class VariantResult:
    """What one variant's run measured (see the module docstring for each figure)."""

    workload: str
    variant: Variant
    fresh: bool
    first_sync_seconds: float | None
    rest: RestRequests | None = None
    rest_cpu_seconds: float | None = None
    startup_cpu_seconds: float | None = None
    total_cpu_seconds: float | None = None
    peak_rss_mb: list[float] = field(default_factory=list)
    commit_poll: Latencies = field(default_factory=lambda: Latencies(()))
    commit_webhook: Latencies = field(default_factory=lambda: Latencies(()))
    heal: Latencies = field(default_factory=lambda: Latencies(()))
    recreate: Latencies = field(default_factory=lambda: Latencies(()))
    sync_runs: int = 0
    sync_failures: int = 0
    first_sync_requests: dict[str, int] = field(default_factory=dict)
    """The daemon's requests during the first sync of all apps, by category."""
    first_sync_lists: dict[str, int] = field(default_factory=dict)
    """Its most frequent LISTs then: `resource/namespace` -> count."""
    notes: list[str] = field(default_factory=list)

    @property
    def rest_cpu_per_minute(self) -> float | None:
        if self.rest is None or self.rest_cpu_seconds is None or self.rest.seconds <= 0:
            return None
        return self.rest_cpu_seconds * 60.0 / self.rest.seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload, "variant": self.variant.name, "watch": self.variant.watch,
            "replicas": self.variant.replicas, "first_sync": "fresh" if self.fresh else "restart",
            "first_sync_seconds": None if self.first_sync_seconds is None else round(self.first_sync_seconds, 2),
            "rest": self.rest.to_dict() if self.rest else None,
            "rest_cpu_seconds": None if self.rest_cpu_seconds is None else round(self.rest_cpu_seconds, 2),
            "rest_cpu_seconds_per_minute": None if self.rest_cpu_per_minute is None else round(self.rest_cpu_per_minute, 3),
            "startup_cpu_seconds": None if self.startup_cpu_seconds is None else round(self.startup_cpu_seconds, 2),
            "total_cpu_seconds": None if self.total_cpu_seconds is None else round(self.total_cpu_seconds, 2),
            "peak_rss_mb": self.peak_rss_mb,
            "commit_to_applied_seconds": self.commit_poll.to_dict(),
            "commit_to_applied_webhook_seconds": self.commit_webhook.to_dict(),
            "edit_to_healed_seconds": self.heal.to_dict(),
            "deleted_to_recreated_seconds": self.recreate.to_dict(),
            "sync_runs": self.sync_runs, "sync_failures": self.sync_failures,
            "first_sync_requests": self.first_sync_requests, "first_sync_lists": self.first_sync_lists,
            "notes": self.notes,
        }


# -- the cluster, as the benchmark reads and edits it ----------------------------------------------


class Cluster:
    """The benchmark's own client (its own user agent, so its requests are not the daemon's)."""

    def __init__(self, kubeconfig: Path) -> None:
        self.api = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        self.api.user_agent = BENCH_AGENT
        self.core = k8s.CoreV1Api(self.api)

    def configmap_value(self, namespace: str, name: str, key: str = "revision") -> str | None:
        try:
            return (self.core.read_namespaced_config_map(name, namespace).data or {}).get(key)
        except k8s.ApiException as error:
            if error.status == 404:
                return None
            raise

    def edit_configmap(self, namespace: str, name: str, value: str, key: str = "revision") -> None:
        """A hand edit, as `kubectl edit` would make it (a merge patch by another manager)."""
        self.core.patch_namespaced_config_map(name, namespace, {"data": {key: value}})

    def delete_secret(self, namespace: str, name: str) -> None:
        self.core.delete_namespaced_secret(name, namespace)

    def secret_exists(self, namespace: str, name: str) -> bool:
        try:
            self.core.read_namespaced_secret(name, namespace)
        except k8s.ApiException as error:
            if error.status == 404:
                return False
            raise
        return True


# -- daemon processes -------------------------------------------------------------------------------


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def get(self, path: str, *, timeout: float = 5.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as response:  # noqa: S310
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")
        except OSError as error:
            return 0, str(error)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, method="POST",
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def sample(self) -> ProcessSample | None:
        pid = self.process.pid
        try:
            return parse_proc(Path(f"/proc/{pid}/stat").read_text(), Path(f"/proc/{pid}/status").read_text(),
                              ticks=_TICKS)
        except OSError:
            return None


def cpu_of(samples: Sequence[ProcessSample | None]) -> float:
    return sum(sample.total_cpu for sample in samples if sample is not None)


@dataclass
class Bench:
    """The control plane, the workspace (Git repositories, caches) and the daemons' logs."""

    settings: Settings
    target: ControlPlaneTarget
    workdir: Path
    logs: Path
    console: Console
    run_id: str

    def __post_init__(self) -> None:
        self.kubeconfig = self.target.kubeconfig
        self.server = self.target.server
        self.cluster = Cluster(self.kubeconfig)
        self.secret_file = self.workdir / "webhook-secret"
        self.secret_file.write_bytes(WEBHOOK_SECRET)
        self._changes = 0

    # -- Git ------------------------------------------------------------------------------------

    def repos_for(self, workload: Workload) -> list[GitRepo]:
        repos = [GitRepo(self.workdir / f"repo-{workload.label}-{index}") for index in range(workload.repos)]
        for repo in repos:
            repo.init()
        return repos

    def commit_app(self, app: BenchApp, repos: Sequence[GitRepo], value: str) -> None:
        app.change(value)
        repo = repos[app.repo_index]
        write_tree(repo.root / app.name, app.objects)
        repo.commit(f"{app.name}: revision {value}")

    def next_value(self, slug: str) -> str:
        self._changes += 1
        return f"{slug}-{self._changes}"

    # -- daemons ---------------------------------------------------------------------------------

    def start(self, variant: Variant, config: Path) -> list[Replica]:
        executable = Path(sys.executable).parent / "syncer"
        base = [str(executable)] if executable.exists() else [sys.executable, "-m", "syncer"]
        replicas = []
        for index, port in enumerate(free_ports(variant.replicas)):
            argv = [*base, "run", "--config", str(config), "--listen", f"127.0.0.1:{port}",
                    "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.workdir / f"cache-{variant.slug}-{index}"),
                    "--log-format", "json", "--webhook-secret-file", str(self.secret_file)]
            if not variant.watch:
                argv.append("--no-watch")
            if variant.replicas > 1:
                argv += list(self.settings.shard_args)
            log = self.logs / f"daemon-{config.stem}-{variant.slug}-{index}.log"
            with log.open("wb") as stderr:
                process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr, env=syncer_environment())
            replicas.append(Replica(process, port, log))
        deadline = time.monotonic() + 60
        for replica in replicas:
            while replica.get("/healthz")[0] != 200:
                if replica.process.poll() is not None or time.monotonic() > deadline:
                    self.stop(replicas)
                    tail = replica.log.read_text(errors="replace").strip().splitlines()[-5:]
                    raise click.ClickException(f"syncer run did not come up; end of {replica.log}:\n" + "\n".join(tail))
                time.sleep(0.2)
        return replicas

    def stop(self, replicas: Sequence[Replica]) -> None:
        for replica in replicas:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
        for replica in replicas:
            try:
                replica.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()

    def metric(self, replicas: Sequence[Replica], name: str) -> dict[str, float]:
        """app -> the largest value any replica reports."""
        merged: dict[str, float] = {}
        for replica in replicas:
            status, text = replica.get("/metrics")
            if status == 200:
                for app, value in metric_by_app(text, name).items():
                    merged[app] = max(value, merged.get(app, value))
        return merged

    def wait_all_synced(self, replicas: Sequence[Replica], apps: Sequence[BenchApp], *, since: float) -> float | None:
        """Seconds until every app has synced successfully since `since` (epoch), or None."""
        started = time.monotonic()
        last_report = started
        names = {app.name for app in apps}
        while time.monotonic() - started < self.settings.sync_timeout:
            synced = self.metric(replicas, "syncer_last_successful_sync_timestamp_seconds")
            done = sum(1 for name in names if synced.get(name, 0.0) >= since)
            if done == len(names):
                return time.monotonic() - started
            if any(replica.process.poll() is not None for replica in replicas):
                self.console.print("  [red]a daemon process exited[/]")
                return None
            if time.monotonic() - last_report >= 15:
                self.console.print(f"    {done}/{len(names)} apps synced ({time.monotonic() - started:.0f}s)")
                last_report = time.monotonic()
            time.sleep(0.5)
        return None

    def webhook(self, replica: Replica, repo: GitRepo) -> tuple[int, str]:
        body = json.dumps({"ref": "refs/heads/main", "repository": {"clone_url": f"file://{repo.root}",
                                                                    "default_branch": "main"}}).encode()
        signature = hmac.new(WEBHOOK_SECRET, body, hashlib.sha256).hexdigest()
        return replica.post("/webhook", body, {"Content-Type": "application/json", "X-GitHub-Event": "push",
                                               "X-Hub-Signature-256": f"sha256={signature}"})


Action = Callable[[], Callable[[], bool]]
"""An edit (a commit, a patch, a deletion); it returns the check that its outcome is visible."""


def timed(actions: Sequence[tuple[float, Action]], *, timeout: float) -> list[float | None]:
    """Run each action `offset` seconds from now (in offset order) and time it until its
    check holds, polling every POLL_SECONDS; None for one whose check did not hold within
    `timeout`. Actions overlap: a slow outcome (a tick a minute away) delays no other."""
    order = sorted(range(len(actions)), key=lambda index: actions[index][0])
    results: list[float | None] = [None] * len(actions)
    pending: dict[int, tuple[float, Callable[[], bool]]] = {}
    began_all = time.monotonic()
    while order or pending:
        while order and time.monotonic() - began_all >= actions[order[0]][0]:
            index = order.pop(0)
            check = actions[index][1]()
            pending[index] = (time.monotonic(), check)
        for index, (began, check) in list(pending.items()):
            if check():
                results[index] = time.monotonic() - began
                del pending[index]
            elif time.monotonic() - began > timeout:
                del pending[index]
        time.sleep(POLL_SECONDS)
    return results


def sequential(actions: Sequence[Action], *, timeout: float) -> list[float | None]:
    """Each action after the previous one's outcome showed (or timed out)."""
    return [timed([(0.0, action)], timeout=timeout)[0] for action in actions]


# -- one variant ------------------------------------------------------------------------------------------


def run_variant(bench: Bench, workload: Workload, apps: list[BenchApp], repos: list[GitRepo], config: Path,
                variant: Variant, *, fresh: bool) -> VariantResult:
    """`fresh`: the apps do not exist yet; only the first sync is measured, then the daemon
    stops. Otherwise the apps are in sync and every measurement is made."""
    console = bench.console
    settings = bench.settings
    console.print(f"[bold]{workload.label}: {variant.name}[/] ({'fresh sync only' if fresh else 'restart'})")
    since = time.time()
    start_offset = bench.server.audit.offset()
    replicas = bench.start(variant, config)
    result = VariantResult(workload=workload.label, variant=variant, fresh=fresh, first_sync_seconds=None)
    try:
        result.first_sync_seconds = bench.wait_all_synced(replicas, apps, since=since)
        after_sync = [replica.sample() for replica in replicas]
        result.startup_cpu_seconds = cpu_of(after_sync)
        synced_at = time.time()
        time.sleep(1.0)  # the API server logs a request as it completes
        first = count_requests(bench.server.audit.events_from(start_offset), user_agent=SYNCER_AGENT, since=since,
                               until=synced_at)
        result.first_sync_requests = {"total": first.total, **dict(sorted(first.by_category.items()))}
        result.first_sync_lists = dict(first.lists_by_key.most_common(12))
        if result.first_sync_seconds is None:
            result.notes.append(f"not every app synced within {settings.sync_timeout:.0f}s")
            console.print(f"  [red]{result.notes[-1]}[/]")
            return result
        console.print(f"  all {len(apps)} apps synced in {result.first_sync_seconds:.1f}s "
                      f"(daemon CPU {result.startup_cpu_seconds:.1f}s, requests {result.first_sync_requests})")
        if fresh:
            _finish(bench, replicas, result)
            return result
        waited = wait_until_quiet(bench.server.audit, quiet_for=3.0, timeout=600.0, ignore=frozenset({"leases"}))
        console.print(f"  settled: no client wrote for 3s, Lease renewals aside (waited {waited:.0f}s)")

        offset = bench.server.audit.offset()
        before = cpu_of([replica.sample() for replica in replicas])
        rest_since = time.time()
        time.sleep(settings.rest_seconds)
        rest_until = time.time()
        result.rest_cpu_seconds = cpu_of([replica.sample() for replica in replicas]) - before
        time.sleep(1.0)  # the API server logs a request as it completes
        result.rest = classify_rest(bench.server.audit.events_from(offset), user_agent=SYNCER_AGENT,
                                    since=rest_since, until=rest_until)
        rest = result.rest
        console.print(f"  at rest for {rest.seconds:.0f}s: {rest.per_minute(rest.other_total):.1f} requests/min "
                      f"besides {rest.watches} watch(es), {rest.cache_lists} cache list(s), {rest.leases} lease "
                      f"request(s); daemon CPU {result.rest_cpu_seconds:.2f}s"
                      + (f"; {dict(rest.other.most_common(4))}" if rest.other else ""))

        # Commits (waiting for the interval), hand edits and a deletion, overlapping: the edits
        # are healed within a second by the watch daemon, within an interval by the other.
        commit_apps = [apps[index] for index in range(min(3, workload.repos))]
        tail = apps[len(apps) // 2:] if len(apps) > 1 else apps
        heal_apps = [tail[(index * 7) % len(tail)] for index in range(settings.heals)]
        actions: list[tuple[float, Action]] = [(0.0, _commit_action(bench, app, repos, variant)) for app in commit_apps]
        actions += [(1.0 + 2.0 * index, _edit_action(bench, app, variant)) for index, app in enumerate(heal_apps)]
        actions.append((2.0 + 2.0 * len(heal_apps), _delete_action(bench, apps[-1])))
        console.print(f"  committing to {len(commit_apps)} app(s), editing {len(heal_apps)} and deleting one member "
                      f"(up to {settings.interval} to wait)")
        latencies = timed(actions, timeout=settings.interval_seconds * 2 + 30)
        result.commit_poll = Latencies(tuple(latencies[:len(commit_apps)]))
        result.heal = Latencies(tuple(latencies[len(commit_apps):-1]))
        result.recreate = Latencies((latencies[-1],))
        console.print(f"  commit -> applied (no webhook, interval {settings.interval}): {result.commit_poll.text()}")
        console.print(f"  hand edit -> healed: {result.heal.text()}")
        console.print(f"  deleted member -> recreated: {result.recreate.text()}")

        webhook_apps = [apps[(index * workload.repos) % len(apps)] for index in range(settings.webhooks)]
        result.commit_webhook = Latencies(tuple(sequential(
            [_commit_action(bench, app, repos, variant, webhook_to=replicas[0]) for app in webhook_apps],
            timeout=settings.interval_seconds * 2 + 30)))
        console.print(f"  commit -> applied (webhook): {result.commit_webhook.text()}")

        _finish(bench, replicas, result)
    finally:
        bench.stop(replicas)
    return result


def _finish(bench: Bench, replicas: Sequence[Replica], result: VariantResult) -> None:
    """The whole run's CPU, peak RSS and sync counts of the daemon processes."""
    final = [replica.sample() for replica in replicas]
    result.total_cpu_seconds = cpu_of(final)
    result.peak_rss_mb = [round(sample.peak_rss_kb / 1024, 1) for sample in final if sample is not None]
    result.sync_runs = int(sum(bench.metric(replicas, "syncer_sync_runs_total").values()))
    result.sync_failures = int(sum(bench.metric(replicas, "syncer_sync_failures_total").values()))
    bench.console.print(f"  daemon CPU in all {result.total_cpu_seconds:.1f}s, peak RSS {result.peak_rss_mb} MB, "
                        f"{result.sync_runs} syncs, {result.sync_failures} failed")


def _commit_action(bench: Bench, app: BenchApp, repos: Sequence[GitRepo], variant: Variant, *,
                   webhook_to: Replica | None = None) -> Action:
    def act() -> Callable[[], bool]:
        value = bench.next_value(variant.slug)
        bench.commit_app(app, repos, value)
        if webhook_to is not None:
            status, answer = bench.webhook(webhook_to, repos[app.repo_index])
            if status != 202:
                bench.console.print(f"  [yellow]webhook answered {status}: {answer.strip()[:200]}[/]")
        return lambda: bench.cluster.configmap_value(app.namespace, app.first_configmap) == value
    return act


def _edit_action(bench: Bench, app: BenchApp, variant: Variant) -> Action:
    def act() -> Callable[[], bool]:
        bench.cluster.edit_configmap(app.namespace, app.first_configmap, bench.next_value(f"{variant.slug}-drift"))
        return lambda: bench.cluster.configmap_value(app.namespace, app.first_configmap) == app.configmap_value
    return act


def _delete_action(bench: Bench, app: BenchApp) -> Action:
    def act() -> Callable[[], bool]:
        bench.cluster.delete_secret(app.namespace, app.first_secret)
        return lambda: bench.cluster.secret_exists(app.namespace, app.first_secret)
    return act


def run_workload(bench: Bench, workload: Workload, variants: Sequence[Variant], *,
                 fresh_daemon: Variant) -> list[VariantResult]:
    bench.console.print(f"[bold]workload {workload.label}: {workload.apps} apps of {workload.objects} objects "
                        f"in {workload.repos} Git repositories[/]")
    apps = workload_apps(workload, prefix=f"d{bench.run_id}")
    repos = bench.repos_for(workload)
    for app in apps:
        write_tree(repos[app.repo_index].root / app.name, app.objects)
    for repo in repos:
        repo.commit(f"{workload.label}: every app")
    config = bench.workdir / f"apps-{workload.label}.yaml"
    config.write_text(daemon_config(apps, repos=[repo.root for repo in repos], interval=bench.settings.interval))
    results = [run_variant(bench, workload, apps, repos, config, fresh_daemon, fresh=True)]
    results += [run_variant(bench, workload, apps, repos, config, variant, fresh=False) for variant in variants]
    return results


# -- the report ----------------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def markdown_table(results: Sequence[VariantResult]) -> str:
    """One row per variant and workload, then the ratios watch / no-watch per replica count."""
    header = ("| workload | daemon | first sync of all apps s | requests/min at rest (besides watches) | "
              "watch requests ended/min | cache LISTs/min | Lease requests/min | daemon CPU s/min at rest | "
              "daemon CPU s, first sync | peak RSS MB | commit → applied s (poll) | commit → applied s (webhook) | "
              "hand edit → healed s | deleted → recreated s |")
    rows = [header, "|" + "|".join(["---"] * 14) + "|"]
    for r in results:
        rest = r.rest
        rows.append("| " + " | ".join([
            r.workload, f"{r.variant.name}, fresh sync only" if r.fresh else r.variant.name,
            f"{_num(r.first_sync_seconds)} ({'fresh' if r.fresh else 'restart'})",
            _num(rest.per_minute(rest.other_total)) if rest else "n/a",
            _num(rest.per_minute(rest.watches)) if rest else "n/a",
            _num(rest.per_minute(rest.cache_lists)) if rest else "n/a",
            _num(rest.per_minute(rest.leases)) if rest else "n/a",
            _num(r.rest_cpu_per_minute, 2),
            _num(r.startup_cpu_seconds),
            " + ".join(f"{mb:.0f}" for mb in r.peak_rss_mb) or "n/a",
            r.commit_poll.text(), r.commit_webhook.text(), r.heal.text(), r.recreate.text(),
        ]) + " |")
    ratios = ["", "| workload | replicas | requests/min at rest | daemon CPU at rest | peak RSS | restart sync time "
              "| heal median | commit → applied (webhook) median |", "|" + "|".join(["---"] * 8) + "|"]
    for r in results:
        if not r.variant.watch or r.fresh:
            continue
        base = next((b for b in results if b.workload == r.workload and not b.variant.watch
                     and b.variant.replicas == r.variant.replicas), None)
        if base is None:
            continue
        ratios.append("| " + " | ".join([
            r.workload, str(r.variant.replicas),
            ratio(r.rest.per_minute(r.rest.other_total) if r.rest else None,
                  base.rest.per_minute(base.rest.other_total) if base.rest else None),
            ratio(r.rest_cpu_per_minute, base.rest_cpu_per_minute),
            ratio(sum(r.peak_rss_mb) or None, sum(base.peak_rss_mb) or None),
            ratio(r.first_sync_seconds, base.first_sync_seconds),
            ratio(r.heal.median, base.heal.median),
            ratio(r.commit_webhook.median, base.commit_webhook.median),
        ]) + " |")
    return "\n".join(rows + (ratios if len(ratios) > 3 else []))


def rest_detail(results: Sequence[VariantResult]) -> str:
    lines = []
    for r in results:
        if r.rest is None:
            continue
        detail = ", ".join(f"{count} {what}" for what, count in r.rest.other.most_common()) or "none"
        leases = ", ".join(f"{count} {what}" for what, count in sorted(r.rest.lease_detail.items())) or "none"
        lines.append(f"- {r.workload}, {r.variant.name}: in {r.rest.seconds:.0f}s: {detail}; "
                     f"watches {r.rest.watches}, cache LISTs {r.rest.cache_lists}; Leases: {leases}")
    return "\n".join(lines)


# -- the command -------------------------------------------------------------------------------------------------


def shard_supported() -> bool:
    executable = Path(sys.executable).parent / "syncer"
    argv = [str(executable)] if executable.exists() else [sys.executable, "-m", "syncer"]
    result = subprocess.run([*argv, "run", "--help"], capture_output=True, text=True, check=False)
    return SHARD_FLAG in result.stdout


def _duration(text: str) -> float:
    """The same duration format as syncer's flags and config (`90s`, `1m`, plain seconds)."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.command()
@click.option("--apps", "apps_text", default="200x20,20x500", show_default=True,
              help="Workloads: APPSxOBJECTS per app, comma-separated.")
@click.option("--repos", type=click.IntRange(min=1), default=4, show_default=True,
              help="Git repositories per workload (apps are spread over them).")
@click.option("--replicas", "replicas_text", default="1,3", show_default=True,
              help="Replica counts; more than 1 needs `syncer run --shard` (skipped without it).")
@click.option("--interval", default="1m", show_default=True, help="Every app's interval.")
@click.option("--rest", "rest_text", default="60s", show_default=True, help="The window at rest.")
@click.option("--heals", type=click.IntRange(min=1), default=5, show_default=True, help="Hand edits per variant.")
@click.option("--webhooks", type=click.IntRange(min=0), default=3, show_default=True,
              help="Webhook-triggered commits per variant.")
@click.option("--fresh-daemon", type=click.Choice(["watch", "no-watch"]), default="watch", show_default=True,
              help="The daemon (one replica) that makes each workload's fresh sync.")
@click.option("--fresh-only", is_flag=True, help="Measure the fresh syncs only, no variants.")
@click.option("--sync-timeout", "sync_timeout_text", default="15m", show_default=True,
              help="How long the first sync of all apps may take.")
@click.option("--shard-args", default=f"{SHARD_FLAG} --lease-duration 15s", show_default=True,
              help="What each replica gets when there are several.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=BENCH_DIR / "daemon-results.json", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=BENCH_DIR / "out",
              show_default=True, help="Daemon logs.")
def main(*, apps_text: str, repos: int, replicas_text: str, interval: str, rest_text: str, heals: int, webhooks: int,
         sync_timeout_text: str, shard_args: str, fresh_daemon: str, fresh_only: bool, json_path: Path,
         out: Path) -> None:
    """The watch-driven daemon against --no-watch, at scale, on a local control plane."""
    console = Console(stderr=True)
    try:
        workloads = tuple(parse_workloads(apps_text, repos=repos))
        replica_counts = tuple(sorted({int(part) for part in replicas_text.split(",") if part.strip()}))
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    if any(count < 1 for count in replica_counts):
        raise click.BadParameter("--replicas: counts must be at least 1")
    if any(count > 1 for count in replica_counts) and not shard_supported():
        console.print(f"[yellow]syncer run has no {SHARD_FLAG} yet: only 1 replica is measured[/]")
        replica_counts = tuple(count for count in replica_counts if count == 1) or (1,)
    settings = Settings(workloads=workloads, replicas=replica_counts, interval=interval,
                        interval_seconds=_duration(interval), rest_seconds=_duration(rest_text), heals=heals,
                        webhooks=webhooks, sync_timeout=_duration(sync_timeout_text),
                        shard_args=tuple(shard_args.split()))
    variants = [] if fresh_only else [
        Variant(watch=watch, replicas=count) for count in replica_counts for watch in (True, False)]
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="syncer-daemon-bench-"))
    results: list[VariantResult] = []
    try:
        with cluster(kubeconfig=None, audit_log=None, console=console) as target:
            info = machine(kubectl="kubectl", kubeconfig=target.kubeconfig)
            bench = Bench(settings=settings, target=target, workdir=workdir, logs=logs, console=console,
                          run_id=secrets.token_hex(2))
            for workload in workloads:
                results += run_workload(bench, workload, variants,
                                        fresh_daemon=Variant(watch=fresh_daemon == "watch", replicas=1))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.monotonic() - started
    table = markdown_table(results)
    print(table)
    print()
    print(rest_detail(results))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({
        "machine": {**info, "load_average_at_end": [round(load, 2) for load in os.getloadavg()]},
        "settings": {"workloads": [w.label for w in workloads], "repos": repos, "replicas": list(replica_counts),
                     "interval": interval, "rest_seconds": settings.rest_seconds, "heals": heals,
                     "webhooks": webhooks, "shard_args": list(settings.shard_args)},
        "duration_seconds": round(seconds, 1),
        "results": [result.to_dict() for result in results],
    }, indent=2) + "\n")
    console.print(f"results written to {json_path} ({seconds:.0f}s in all)")


if __name__ == "__main__":
    main()
