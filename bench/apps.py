"""`python -m bench.apps` (or `scripts/bench-apps`): fluxcd/flux-benchmark's shape in App mode.

    scripts/bench-apps                                     # N=10, monorepo, 1 replica, 5 min at rest
    scripts/bench-apps --apps 100,500,1000 --layout monorepo,repo-per-app --replicas 1,3

For each size N, layout and replica count, on a control plane of its own (etcd,
kube-apiserver and kube-controller-manager 1.20, audit log on), with `syncer run` serving App
objects (`--interval` 10m each):

1. create: N Apps, each in a namespace of its own (made beforehand, untimed), each syncing
   Flux's unit (Deployment with `replicas: 0`, ServiceAccount, Service, Ingress) from the
   monorepo or from a repository of its own; timed from the first create until every App
   has Ready=True with the commit applied (from a watch on the Apps);
2. commit_all: one commit changing every App's image tag, announced by a signed push webhook
   per repository changed; timed until every App has applied it and is Ready again;
3. commit_tenth: one commit changing every tenth App; timed until those have, with the
   requests split into the changed Apps' namespaces and the others';
4. rest: `--rest` without changes.

Per phase: the daemon's requests by verb (its user agent in the audit log), its CPU (from
/proc, the git it ran included), kube-apiserver's and etcd's CPU; for the run, the daemon's
peak RSS (VmHWM). After each phase the world is checked, not only the Apps' status: one LIST
of the Deployments counts those with the image Git says. The benchmark's own requests carry
the user agent `syncer-bench/apps`, so none is counted as the daemon's.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import yaml
from kubernetes import client as k8s, config as k8s_config, watch as k8s_watch
from rich.console import Console

from bench.appswork import (
    FIRST_TAG,
    GROUP,
    IMAGE,
    PLURAL,
    VERSION,
    AppState,
    BenchApp,
    Layout,
    app_object,
    bench_apps,
    estimate_table,
    extrapolate,
    markdown,
    phase_requests,
    repo_count,
    tenth,
    unit,
)
from bench.audit import SYNCER_AGENT
from bench.daemon import WEBHOOK_SECRET, Replica, cpu_of
from bench.daemonwork import classify_rest
from bench.generate import GitRepo, write_tree
from bench.measure import wait_until_quiet
from bench.run import Cluster as ControlPlaneTarget, cluster, machine
from syncer.config import parse_duration
from syncer.devcluster.processes import free_ports

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
CRD_FILE = REPO_ROOT / "examples" / "deploy" / "crd.yaml"
BENCH_AGENT = "syncer-bench/apps"
LOCAL_REPOS_FLAG = "--allow-local-repos"
SHARD_ARGS = ("--shard", "--lease-duration", "15s")
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...]
    layouts: tuple[Layout, ...]
    replicas: tuple[int, ...]
    interval: str
    rest_seconds: float
    phase_timeout: float
    extra_daemon_args: tuple[str, ...]


# -- the Apps, as the benchmark watches them ------------------------------------------------------


class AppTable:
    """Every App's state from a LIST and a watch (the benchmark's own client), so waiting
    for 1,000 Apps costs the API server a watch, not a LIST per poll."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self.custom = k8s.CustomObjectsApi(api)
        self.states: dict[str, AppState] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="app-table", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def snapshot(self) -> dict[str, AppState]:
        with self._lock:
            return dict(self.states)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                listing: Any = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
                with self._lock:
                    self.states = {_key(obj): AppState.of(obj) for obj in listing["items"]}
                version = listing["metadata"]["resourceVersion"]
                stream = k8s_watch.Watch().stream(  # type: ignore[no-untyped-call]
                    self.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL, resource_version=version,
                    timeout_seconds=120)
                for event in stream:
                    if self._stop.is_set():
                        return
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        break  # expired: list again
                    with self._lock:
                        if event["type"] == "DELETED":
                            self.states.pop(_key(obj), None)
                        else:
                            self.states[_key(obj)] = AppState.of(obj)
            except Exception:  # noqa: BLE001 - the API server restarting, a 410: list again
                time.sleep(1.0)


def _key(obj: dict[str, Any]) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


# -- one run: a size, a layout, a replica count --------------------------------------------------


@dataclass
class Run:
    settings: Settings
    apps_count: int
    layout: Layout
    replicas: int
    target: ControlPlaneTarget
    workdir: Path
    logs: Path
    console: Console
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.api = k8s_config.new_client_from_config(config_file=str(self.target.kubeconfig))  # type: ignore[no-untyped-call]
        self.api.user_agent = BENCH_AGENT
        self.apps = bench_apps(self.apps_count, layout=self.layout)
        self.repos = [GitRepo(self.workdir / f"repo-{index:04d}") for index in range(
            repo_count(self.apps_count, layout=self.layout))]
        self.tags = {app.key: FIRST_TAG for app in self.apps}
        self.revisions: dict[int, str] = {}
        self.namespaces = {app.namespace for app in self.apps}
        self.table = AppTable(self.api)
        self.replica_processes: list[Replica] = []
        self.flags: list[str] = []

    def say(self, text: str) -> None:
        self.console.print(f"  [{self.apps_count} Apps, {self.layout}, {self.replicas} replica(s)] {text}")

    # -- preparation (untimed) -------------------------------------------------------------------

    def prepare(self) -> None:
        extensions = k8s.ApiextensionsV1Api(self.api)
        extensions.create_custom_resource_definition(yaml.safe_load(CRD_FILE.read_text()))
        deadline = time.monotonic() + 60
        while not any(c.type == "Established" and c.status == "True" for c in
                      _conditions(extensions.read_custom_resource_definition(f"{PLURAL}.{GROUP}"))):
            if time.monotonic() > deadline:
                raise click.ClickException("the App CRD was not Established within 60 s")
            time.sleep(0.2)
        for repo in self.repos:
            repo.init()
        for app in self.apps:
            self._write(app)
        for index, repo in enumerate(self.repos):
            self.revisions[index] = repo.commit("every App, first revision")
        core = k8s.CoreV1Api(self.api)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda ns: core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns))),
                          sorted(self.namespaces)))
        self.say(f"prepared: App CRD, {len(self.repos)} Git repositories, {len(self.namespaces)} namespaces")

    def _write(self, app: BenchApp) -> None:
        write_tree(self.repos[app.repo_index].root / app.path, unit(app, tag=self.tags[app.key]))

    # -- the daemon ------------------------------------------------------------------------------

    def start_daemon(self) -> None:
        argv = [sys.executable, "-m", "syncer", "run"]
        help_text = subprocess.run([*argv, "--help"], capture_output=True, text=True, check=False,
                                   env=_environment()).stdout
        flags = [LOCAL_REPOS_FLAG] if LOCAL_REPOS_FLAG in help_text else []
        if self.replicas > 1:
            flags += list(SHARD_ARGS)
        secret = self.workdir / "webhook-secret"
        secret.write_bytes(WEBHOOK_SECRET)
        for index, port in enumerate(free_ports(self.replicas)):
            log = self.logs / f"apps-{self.apps_count}-{self.layout}-r{self.replicas}-{index}.log"
            command = [*argv, "--listen", f"127.0.0.1:{port}", "--kubeconfig", str(self.target.kubeconfig),
                       "--cache-dir", str(self.workdir / f"cache-{index}"), "--log-format", "json",
                       "--webhook-secret-file", str(secret), *flags, *self.settings.extra_daemon_args]
            with log.open("wb") as stderr:
                process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=_environment())
            self.replica_processes.append(Replica(process, port, log))
        deadline = time.monotonic() + 60
        for replica in self.replica_processes:
            while replica.get("/healthz")[0] != 200:
                if replica.process.poll() is not None or time.monotonic() > deadline:
                    tail = replica.log.read_text(errors="replace").strip().splitlines()[-5:]
                    raise click.ClickException(f"syncer run did not come up; end of {replica.log}:\n" + "\n".join(tail))
                time.sleep(0.2)
        self.flags = flags
        self.say(f"daemon up: {self.replicas} process(es), flags {' '.join(flags) or '(none)'}; admin credentials, "
                 "no --require-service-account")

    def stop_daemon(self) -> None:
        for replica in self.replica_processes:
            if replica.process.poll() is None:
                replica.process.terminate()
        for replica in self.replica_processes:
            try:
                replica.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()

    def samples(self) -> list[Any]:
        return [replica.sample() for replica in self.replica_processes]

    # -- a measured phase ------------------------------------------------------------------------

    def phase(self, name: str, act: Callable[[], None], *, waits_for: Sequence[BenchApp],
              revision: Callable[[BenchApp], str | None], focus: set[str]) -> dict[str, Any]:
        """Run `act`, then wait until every App of `waits_for` is Ready with its revision;
        measure the daemon meanwhile."""
        offset = self.target.server.audit.offset()
        events_before = {e.metadata.uid for e in self._events()}
        cpu_before, server_before = cpu_of(self.samples()), self.target.server.cpu_seconds()
        since, started = time.time(), time.monotonic()
        act()
        done_at, complete = self._wait(waits_for, revision, started=started)
        until = time.time()
        seconds = max(done_at.values(), default=0.0) if complete else None
        cpu_after, server_after = cpu_of(self.samples()), self.target.server.cpu_seconds()
        time.sleep(1.0)  # the API server logs a request as it completes
        requests = phase_requests(self.target.server.audit.events_from(offset), user_agent=SYNCER_AGENT,
                                  since=since, until=until, focus=focus, app_namespaces=self.namespaces)
        result: dict[str, Any] = {
            "seconds": None if seconds is None else round(seconds, 2),
            "apps_waited_for": len(waits_for),
            "apps_done": len(done_at),
            "per_app_done_seconds": _spread(done_at),
            "daemon_cpu_seconds": round(cpu_after - cpu_before, 2),
            "server_cpu_seconds": None if server_before is None or server_after is None
            else round(server_after - server_before, 2),
            "requests": requests.to_dict(),
            "events": _events_created([e for e in self._events() if e.metadata.uid not in events_before]),
            "load_average": [round(load, 2) for load in os.getloadavg()],
        }
        if seconds is None:
            states = self.table.snapshot()
            result["not_done"] = [{"app": app.key, "ready": states[app.key].ready, "applied": states[app.key].applied,
                                   "message": states[app.key].message}
                                  for app in waits_for if app.key not in done_at and app.key in states][:10]
            self.notes.append(f"{name}: not every App was done within {self.settings.phase_timeout:.0f} s")
            self.say(f"[red]{self.notes[-1]}[/]")
        self.say(f"{name}: {'n/a' if seconds is None else f'{seconds:.1f} s'}, daemon CPU "
                 f"{result['daemon_cpu_seconds']:.1f} s, {requests.total} requests ({dict(requests.by_verb.most_common(6))})")
        self.phases[name] = result
        return result

    def _events(self) -> list[Any]:
        return list(k8s.CoreV1Api(self.api).list_event_for_all_namespaces().items)

    def _wait(self, apps: Sequence[BenchApp], revision: Callable[[BenchApp], str | None], *,
              started: float) -> tuple[dict[str, float], bool]:
        """Seconds from `started` until each App was done, and whether all were before the
        timeout (or a daemon process exited)."""
        done: dict[str, float] = {}
        last_report = time.monotonic()
        while time.monotonic() - started < self.settings.phase_timeout:
            states = self.table.snapshot()
            now = time.monotonic() - started
            for app in apps:
                state = states.get(app.key)
                if app.key not in done and state is not None and state.done(revision(app)):
                    done[app.key] = now
            if len(done) == len(apps):
                return done, True
            if any(replica.process.poll() is not None for replica in self.replica_processes):
                self.notes.append("a daemon process exited")
                return done, False
            if time.monotonic() - last_report >= 5:
                ready = sum(1 for s in states.values() if s.ready == "True")
                self.say(f"  {len(done)}/{len(apps)} done, {ready} Ready, {len(states)} Apps seen ({now:.0f} s)")
                last_report = time.monotonic()
            time.sleep(POLL_SECONDS)
        return done, False

    # -- the phases ------------------------------------------------------------------------------

    def create_apps(self) -> None:
        custom = k8s.CustomObjectsApi(self.api)
        for app in self.apps:
            repo = str(self.repos[app.repo_index].root)
            custom.create_namespaced_custom_object(GROUP, VERSION, app.namespace, PLURAL,
                                                   app_object(app, repo=repo, interval=self.settings.interval))

    def commit(self, changed: Sequence[BenchApp], tag: str) -> None:
        """One commit per repository that holds a changed App, then one push webhook each."""
        touched = sorted({app.repo_index for app in changed})
        for app in changed:
            self.tags[app.key] = tag
            self._write(app)
        for index in touched:
            self.revisions[index] = self.repos[index].commit(f"podinfo {tag} for {len(changed)} App(s)")
        for index in touched:
            status, answer = self.webhook(self.repos[index])
            if status != 202:
                self.notes.append(f"webhook answered {status}: {answer.strip()[:200]}")
                self.say(f"[yellow]{self.notes[-1]}[/]")

    def webhook(self, repo: GitRepo) -> tuple[int, str]:
        body = json.dumps({"ref": "refs/heads/main", "repository": {"clone_url": f"file://{repo.root}",
                                                                    "default_branch": "main"}}).encode()
        signature = hmac.new(WEBHOOK_SECRET, body, hashlib.sha256).hexdigest()
        return self.replica_processes[0].post("/webhook", body, {
            "Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={signature}"})

    def check_world(self, phase: str) -> None:
        """The Deployments' images against Git: one LIST, by the benchmark's label."""
        items: Any = k8s.AppsV1Api(self.api).list_deployment_for_all_namespaces(
            label_selector="app.kubernetes.io/part-of=bench-apps").items
        live = {f"{d.metadata.namespace}/{d.metadata.name}": d.spec.template.spec.containers[0].image for d in items}
        wrong = [app.key for app in self.apps if live.get(app.key) != f"{IMAGE}:{self.tags[app.key]}"]
        self.phases[phase]["world"] = {"deployments_as_in_git": len(self.apps) - len(wrong), "apps": len(self.apps),
                                       "differing": wrong[:10]}
        if wrong:
            self.notes.append(f"{phase}: {len(wrong)} Deployment(s) not as in Git, e.g. {wrong[:3]}")
            self.say(f"[red]{self.notes[-1]}[/]")

    def settle(self) -> None:
        waited = wait_until_quiet(self.target.server.audit, quiet_for=3.0, timeout=300.0,
                                  ignore=frozenset({"leases"}))
        self.say(f"settled: no client wrote for 3 s (waited {waited:.0f} s)")

    def rest(self) -> None:
        offset = self.target.server.audit.offset()
        cpu_before, server_before = cpu_of(self.samples()), self.target.server.cpu_seconds()
        since = time.time()
        self.say(f"at rest for {self.settings.rest_seconds:.0f} s (interval {self.settings.interval})")
        time.sleep(self.settings.rest_seconds)
        until = time.time()
        cpu, server_after = cpu_of(self.samples()) - cpu_before, self.target.server.cpu_seconds()
        time.sleep(1.0)
        events = self.target.server.audit.events_from(offset)
        requests = phase_requests(events, user_agent=SYNCER_AGENT, since=since, until=until, focus=set(),
                                  app_namespaces=self.namespaces)
        classified = classify_rest(events, user_agent=SYNCER_AGENT, since=since, until=until)
        minutes = max(until - since, 1e-6) / 60
        self.phases["rest"] = {
            "seconds": round(until - since, 1), "daemon_cpu_seconds": round(cpu, 2),
            "daemon_cpu_seconds_per_minute": round(cpu / minutes, 3),
            "server_cpu_seconds": None if server_before is None or server_after is None
            else round(server_after - server_before, 2),
            "requests": requests.to_dict(), "classified": classified.to_dict(),
            "requests_per_minute": round(requests.total / minutes, 1),
        }
        self.say(f"at rest: {requests.total} requests ({dict(requests.by_verb)}), daemon CPU {cpu:.2f} s")

    def execute(self) -> dict[str, Any]:
        started = time.monotonic()
        self.prepare()
        self.table.start()
        self.start_daemon()
        try:
            first = dict(self.revisions)
            self.phase("create", self.create_apps, waits_for=self.apps,
                       revision=lambda app: first[app.repo_index], focus=self.namespaces)
            self.check_world("create")
            for name, changed, tag in (("commit_all", self.apps, "6.7.1"),
                                       ("commit_tenth", tenth(self.apps), "6.7.2")):
                self.settle()
                self.phase(name, functools.partial(self.commit, changed, tag), waits_for=changed,
                           revision=lambda app: self.revisions[app.repo_index],
                           focus={app.namespace for app in changed})
                self.check_world(name)
            self.settle()
            if self.layout is Layout.MONOREPO:  # the commit moved every App's revision, changed or not
                states = self.table.snapshot()
                self.phases["commit_tenth"]["apps_on_the_new_revision_after_settling"] = sum(
                    1 for app in self.apps if app.key in states and states[app.key].applied == self.revisions[0])
            self.rest()
        finally:
            final = self.samples()
            self.stop_daemon()
            self.table.stop()
        return {
            "apps": self.apps_count, "layout": str(self.layout), "replicas": self.replicas,
            "daemon_flags": self.flags, "interval": self.settings.interval,
            "rest_seconds": self.settings.rest_seconds,
            "peak_rss_mb": [round(s.peak_rss_kb / 1024, 1) for s in final if s is not None],
            "daemon_cpu_seconds_total": round(cpu_of(final), 2),
            "wall_seconds": round(time.monotonic() - started, 1),
            "phases": self.phases, "notes": self.notes,
        }


def _events_created(events: list[Any]) -> dict[str, dict[str, int]]:
    """Events of a phase by reason and the kind they are about, and by the replica that
    reported them, and how many repeat an Event of the phase word for word (about the same
    object): what users see in `kubectl get events`, and whether replicas say things twice."""
    by_reason = Counter(f"{e.reason} ({e.involved_object.kind})" for e in events)
    by_replica = Counter(e.reporting_instance or (e.source.host if e.source else None) or "?" for e in events)
    said = Counter((e.involved_object.namespace, e.involved_object.name, e.reason, e.message) for e in events)
    return {"by_reason": dict(by_reason.most_common()), "by_replica": dict(by_replica.most_common()),
            "repeated": {"events said before in the phase": sum(n - 1 for n in said.values())}}


def _conditions(crd: Any) -> list[Any]:
    return list((crd.status.conditions if crd.status is not None else None) or [])


def _spread(done: dict[str, float]) -> dict[str, float] | None:
    """First, median and last of the Apps' done times."""
    if not done:
        return None
    values = sorted(done.values())
    return {"first": round(values[0], 2), "median": round(values[len(values) // 2], 2), "last": round(values[-1], 2)}


def _environment() -> dict[str, str]:
    """The daemon runs this checkout's syncer, with its bytecode cached as an install's is."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONDONTWRITEBYTECODE", "KUBECONFIG")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    return env


# -- the command ---------------------------------------------------------------------------------


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _ints(text: str, *, what: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise click.BadParameter(f"{what}: expected numbers like 100,500") from None
    if not values or min(values) < 1:
        raise click.BadParameter(f"{what}: at least one number of 1 or more")
    return values


HARDWARE_NOTE = (
    "Not the same hardware: here {nproc} cores (load average {load}) are shared by the benchmark, "
    "etcd, kube-apiserver, kube-controller-manager and the daemon; Flux's numbers come from a 16-core "
    "GitHub runner (kind, kustomize-controller limited to 2 CPU / 1 GiB, concurrency 20; syncer's daemon "
    "runs 16 syncs at once). And not the same source: syncer reads Git (local repositories, git CLI), "
    "Flux's benchmark pulls OCI artifacts (source-controller) from a registry in the cluster."
)


@click.command()
@click.option("--apps", "apps_text", default="10", show_default=True,
              help="Numbers of Apps, comma-separated (Flux publishes 100,500,1000); each on a control plane of its own.")
@click.option("--layout", "layouts_text", default="monorepo", show_default=True,
              help="monorepo, repo-per-app, or both comma-separated.")
@click.option("--replicas", "replicas_text", default="1", show_default=True,
              help="Replica counts; more than 1 runs `syncer run --shard`.")
@click.option("--interval", default="10m", show_default=True, help="Every App's spec.interval.")
@click.option("--rest", "rest_text", default="5m", show_default=True, help="The period at rest at the end.")
@click.option("--phase-timeout", "timeout_text", default="20m", show_default=True,
              help="How long one phase may wait for its Apps.")
@click.option("--daemon-args", default="", help="More arguments for every `syncer run`.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Results file [default: bench/results-apps-<date>.json].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=BENCH_DIR / "out",
              show_default=True, help="Daemon logs go to OUT/logs.")
def main(*, apps_text: str, layouts_text: str, replicas_text: str, interval: str, rest_text: str,
         timeout_text: str, daemon_args: str, json_path: Path | None, out: Path) -> None:
    """Flux's benchmark shape (N Kustomizations until Ready) for N Apps on a local control plane."""
    console = Console(stderr=True)
    try:
        layouts = tuple(Layout(part.strip()) for part in layouts_text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"--layout: {layouts_text!r}; expected monorepo and/or repo-per-app") from None
    _duration(interval)
    settings = Settings(sizes=_ints(apps_text, what="--apps"), layouts=layouts,
                        replicas=_ints(replicas_text, what="--replicas"), interval=interval,
                        rest_seconds=_duration(rest_text), phase_timeout=_duration(timeout_text),
                        extra_daemon_args=tuple(daemon_args.split()))
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    json_path = json_path or BENCH_DIR / f"results-apps-{datetime.now(timezone.utc):%Y-%m-%d}.json"
    started = time.monotonic()
    info: dict[str, Any] = {}
    results: list[dict[str, Any]] = []

    def write_results() -> tuple[float, list[float], dict[str, Any], str]:
        """After every run, so that a long run cut short keeps what it measured."""
        seconds = time.monotonic() - started
        load_at_end = [round(load, 2) for load in os.getloadavg()]
        estimates = extrapolate(results)
        note = HARDWARE_NOTE.format(nproc=info.get("nproc"), load=f"{info.get('load_average_at_start')} at the "
                                    f"start, {load_at_end} at the end")
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({
            "machine": {**info, "load_average_at_end": load_at_end},
            "settings": {"sizes": list(settings.sizes), "layouts": [str(x) for x in settings.layouts],
                         "replicas": list(settings.replicas), "interval": interval,
                         "rest_seconds": settings.rest_seconds, "phase_timeout_seconds": settings.phase_timeout,
                         "daemon_args": list(settings.extra_daemon_args)},
            "hardware_note": note, "duration_seconds": round(seconds, 1), "results": results,
            "extrapolation": estimates,
        }, indent=2) + "\n")
        return seconds, load_at_end, estimates, note

    for size in settings.sizes:
        for layout in settings.layouts:
            for replicas in settings.replicas:
                console.print(f"[bold]{size} Apps, {layout}, {replicas} replica(s)[/]")
                workdir = Path(tempfile.mkdtemp(prefix="syncer-apps-bench-"))
                try:
                    with cluster(kubeconfig=None, audit_log=None, console=console) as target:
                        info = info or machine(kubectl="kubectl", kubeconfig=target.kubeconfig)
                        run = Run(settings=settings, apps_count=size, layout=layout, replicas=replicas,
                                  target=target, workdir=workdir, logs=logs, console=console)
                        results.append(run.execute())
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                write_results()
    seconds, load_at_end, estimates, note = write_results()
    print(f"{info.get('date')}, {info.get('nproc')} cores ({info.get('cpu_model')}), {info.get('memory_gb')} GB; "
          f"Kubernetes {info.get('kubernetes_server')}; load average {info.get('load_average_at_start')} at the "
          f"start, {load_at_end} at the end; {seconds:.0f} s in all.\n")
    print(markdown(results))
    table = estimate_table(estimates)
    if table:
        print("\nLinear extrapolation from the sizes measured: an order of magnitude, not a measurement (the "
              "machine's load and the daemon's peak, set by its 16 syncs at once, move with it):\n")
        print(table)
    print(f"\n{note}")
    console.print(f"results written to {json_path} ({seconds:.0f} s in all)")


if __name__ == "__main__":
    main()
