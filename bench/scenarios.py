"""The scenarios: what is run, in which order, on which generated app.

Each tool gets its own app (same objects, its own name prefix and so its own namespaces), and
the two run back to back within each scenario, so both see the same cluster state and the same
machine load. Between commands that write a lot the benchmark waits for kube-controller-manager
to catch up (Deployments make ReplicaSets and Pods), so one command's aftermath does not slow
the next one down.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from bench.audit import KUBECTL_AGENT, SYNCER_AGENT, ObjectKey
from bench.generate import AppObject, GitRepo, change_one, generate, home_namespace, remove_fraction, write_tree
from bench.measure import Command, CommandFailed, Measurement, Server, median_run, run, wait_until_quiet
from bench.profile import parse_collapsed, py_spy_argv, summary
from bench.report import Comparison, ScalePoint
from syncer.apply.applyset import applyset_id

APP_NAME = "bench"
APPLYSET_GROUP = "bench.syncer.dev"
APPLYSET_RESOURCE = f"applysets.{APPLYSET_GROUP}"
APPLYSET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {
        "name": APPLYSET_RESOURCE,
        # kubectl accepts a custom resource as ApplySet parent only from a CRD so labelled.
        "labels": {"applyset.kubernetes.io/is-parent-type": "true"},
    },
    "spec": {
        "group": APPLYSET_GROUP,
        "scope": "Cluster",
        "names": {"kind": "ApplySet", "plural": "applysets", "singular": "applyset"},
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {"type": "object"}}}],
    },
}
"""Why a custom resource: kubectl's `-n` forces every object into the parent's namespace, so a
ConfigMap or Secret parent cannot hold an app spread over ten namespaces; a cluster-scoped
parent can, and kubectl supports those only as custom resources it does not create itself."""


@dataclass(frozen=True)
class Settings:
    objects: int = 1000
    scale: tuple[int, ...] = (100, 1000, 5000)
    repeat: int = 3
    concurrency: int = 16
    kubectl: str = "kubectl"
    context: str | None = None


@dataclass
class App:
    """One tool's copy of the generated app, as a folder of the benchmark's Git repository."""

    prefix: str
    count: int
    objects: list[AppObject]

    @property
    def home(self) -> str:
        return home_namespace(self.prefix)

    @property
    def total(self) -> int:
        """Objects applied, the 10 Namespaces included."""
        return len(self.objects)



@dataclass
class Bench:
    """The workspace (Git repository, caches, logs) and how to run and measure each tool."""

    settings: Settings
    kubeconfig: Path
    server: Server
    workdir: Path
    logs: Path
    console: Console
    run_id: str
    prefixes: list[str] = field(default_factory=list)
    """Every app generated, for cleaning up a cluster the benchmark did not start."""
    setup: list[Measurement] = field(default_factory=list)
    """Untimed preparation that wrote to the cluster (kubectl's ApplySet adoption), kept for
    the record."""

    def __post_init__(self) -> None:
        self.repo = GitRepo(self.workdir / "repo")
        self.repo.init()

    # -- the app --------------------------------------------------------------------------------

    def new_app(self, label: str, count: int) -> App:
        prefix = f"{label}-{self.run_id}"
        app = App(prefix=prefix, count=count, objects=generate(count, prefix=prefix))
        self.prefixes.append(prefix)
        self.write(app)
        return app

    def write(self, app: App) -> None:
        write_tree(self.repo.root / app.prefix, app.objects)

    def commit(self, message: str) -> None:
        self.repo.commit(message)

    # -- commands -------------------------------------------------------------------------------

    def _cluster_args(self) -> list[str]:
        args = ["--kubeconfig", str(self.kubeconfig)]
        return args + (["--context", self.settings.context] if self.settings.context else [])

    def syncer(self, verb: str, app: App, scenario: str) -> Command:
        executable = Path(sys.executable).parent / "syncer"
        argv = [str(executable)] if executable.exists() else [sys.executable, "-m", "syncer"]
        return Command(
            tool="syncer", scenario=scenario, objects=app.count,
            argv=[*argv, *self.syncer_args(verb, app)],
            user_agent=SYNCER_AGENT,
            bookkeeping=syncer_bookkeeping(app.home),
            ok_exit_codes=frozenset({0, 1}) if verb == "diff" else frozenset({0}),
            env=syncer_environment(),
        )

    def syncer_args(self, verb: str, app: App) -> list[str]:
        return [
            verb, "--repo", str(self.repo.root), "--path", app.prefix, "--name", APP_NAME,
            "--namespace", app.home, "--cache-dir", str(self.workdir / "syncer-cache"),
            "--concurrency", str(self.settings.concurrency), *self._cluster_args(), "-o", "json",
        ]

    def kubectl(self, verb: str, app: App, scenario: str, *, applyset: str | None = None) -> Command:
        argv = [self.settings.kubectl, verb, "--server-side", "-f", str(self.repo.root / app.prefix),
                "--recursive", "--cache-dir", str(self.workdir / "kubectl-cache"), *self._cluster_args()]
        env = None
        bookkeeping: tuple[ObjectKey, ...] = ()
        if applyset:
            argv += ["--prune", f"--applyset={APPLYSET_RESOURCE}/{applyset}"]
            env = {"KUBECTL_APPLYSET": "true"}
            bookkeeping = (ObjectKey("applysets", None, applyset),)
        return Command(
            tool="kubectl", scenario=scenario, objects=app.count, argv=argv, user_agent=KUBECTL_AGENT,
            bookkeeping=bookkeeping,
            ok_exit_codes=frozenset({0, 1}) if verb == "diff" else frozenset({0}), env=env,
        )

    def measure(self, command: Command, *, expect: Callable[[Measurement], str | None] | None = None) -> Measurement:
        measurement = run(command, server=self.server, logs=self.logs)
        problem = expect(measurement) if expect else None
        if problem:
            measurement.notes.append(problem)
        self.console.print(
            f"  {command.tool:7} {command.scenario:12} N={command.objects:<5} {measurement.wall:7.2f}s  "
            f"{measurement.requests.total:6} requests  {measurement.peak_rss_kb / 1024:5.0f} MB"
            + (f"  [red]{problem}[/]" if problem else "")
        )
        return measurement

    def repeated(self, make: Callable[[], Command]) -> Measurement:
        return median_run([self.measure(make()) for _ in range(max(1, self.settings.repeat))])

    def settle(self) -> None:
        waited = wait_until_quiet(self.server.audit)
        if waited > 5:
            self.console.print(f"  (waited {waited:.0f}s for kube-controller-manager to catch up)")

    def kubectl_run(self, *args: str, stdin: str | None = None) -> str:
        """An untimed kubectl command (setup), its stdout."""
        result = subprocess.run(
            [self.settings.kubectl, *args, *self._cluster_args()], input=stdin, capture_output=True,
            text=True, check=False, timeout=300,
        )
        if result.returncode != 0:
            raise CommandFailed(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout


def syncer_environment() -> dict[str, str]:
    """syncer as an installed package runs: with its bytecode cached. Some sandboxes set
    PYTHONDONTWRITEBYTECODE, which would make every run recompile syncer (0.1-0.2 s)."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def syncer_bookkeeping(home: str) -> tuple[ObjectKey, ...]:
    """syncer's own objects in the app's namespace: the Lease lock, the ApplySet parent
    ConfigMap (inventory and status), and the Events it records about a sync."""
    name = f"syncer-{APP_NAME}"
    return (ObjectKey("leases", home, name), ObjectKey("configmaps", home, name), ObjectKey("events", home, None))


def _summary_is(**expected: int) -> Callable[[Measurement], str | None]:
    """Check syncer's reported summary, so a benchmark of a sync that did something else
    says so instead of being trusted."""
    def check(measurement: Measurement) -> str | None:
        summary = (measurement.result or {}).get("summary") or {}
        wrong = {key: summary.get(key) for key, value in expected.items() if summary.get(key) != value}
        return f"expected {expected}, syncer reported {wrong}" if wrong else None
    return check


# -- the scenarios ----------------------------------------------------------------------------------


def compare_tools(bench: Bench, *, prune: bool = True) -> list[Comparison]:
    """Scenarios 1-4 (1-3 without `prune`), both tools side by side on apps of
    `settings.objects` objects."""
    count = bench.settings.objects
    bench.console.print(f"[bold]generating two apps of {count:,} objects + 10 Namespaces[/]")
    ours, theirs = bench.new_app("sy", count), bench.new_app("kc", count)
    bench.commit("both apps")
    total = ours.total
    bench.settle()

    bench.console.print("[bold]1. fresh sync[/]")
    fresh_s = bench.measure(bench.syncer("sync", ours, "fresh"), expect=_summary_is(created=total))
    bench.settle()
    fresh_k = bench.measure(bench.kubectl("apply", theirs, "fresh"))
    bench.settle()

    bench.console.print(f"[bold]2. no-op resync[/] (each command {bench.settings.repeat}x, median)")
    noop_s = bench.repeated(lambda: bench.syncer("sync", ours, "noop"))
    noop_k = bench.repeated(lambda: bench.kubectl("apply", theirs, "noop"))
    diff_s = bench.repeated(lambda: bench.syncer("diff", ours, "noop-diff"))
    diff_k = bench.repeated(lambda: bench.kubectl("diff", theirs, "noop-diff"))
    for measurement in (noop_s, diff_s):
        problem = _summary_is(unchanged=total)(measurement)
        if problem:
            measurement.notes.append(problem)

    bench.console.print("[bold]3. one ConfigMap value changed (committed)[/]")
    ours.objects, changed = change_one(ours.objects)
    theirs.objects, _ = change_one(theirs.objects)
    bench.write(ours)
    bench.write(theirs)
    bench.commit(f"change {changed.name}")
    change_s = bench.measure(bench.syncer("sync", ours, "change-one"),
                             expect=_summary_is(configured=1, unchanged=total - 1))
    bench.settle()
    change_k = bench.measure(bench.kubectl("apply", theirs, "change-one"))
    bench.settle()
    comparisons = [
        Comparison("fresh", "1. fresh sync", fresh_s, fresh_k),
        Comparison("noop", "2. no-op resync", noop_s, noop_k),
        Comparison("noop-diff", "2. no-op diff", diff_s, diff_k),
        Comparison("change-one", "3. one object changed", change_s, change_k),
    ]
    if not prune:
        return comparisons

    bench.console.print("[bold]4. 10% of the objects removed (prune)[/]")
    applyset, refusal = _adopt_into_applyset(bench, theirs)
    ours.objects, removed = remove_fraction(ours.objects)
    theirs.objects, _ = remove_fraction(theirs.objects)
    bench.write(ours)
    bench.write(theirs)
    bench.commit(f"remove {len(removed)} objects")
    bench.settle()
    prune_s = bench.measure(bench.syncer("sync", ours, "prune"),
                            expect=_summary_is(deleted=len(removed), unchanged=total - len(removed)))
    bench.settle()
    prune_k = None
    if applyset is not None:
        prune_k = bench.measure(bench.kubectl("apply", theirs, "prune", applyset=applyset))
        bench.settle()

    return [
        *comparisons,
        Comparison("prune", f"4. {len(removed)} removed (prune)", prune_s, prune_k,
                   note=refusal or "kubectl apply --server-side --prune --applyset (cluster-scoped custom resource parent)"),
    ]


def _adopt_into_applyset(bench: Bench, app: App) -> tuple[str | None, str | None]:
    """Put kubectl's app into an ApplySet (untimed): its objects were applied without one, and
    kubectl prunes only objects carrying the ApplySet's label. Returns (parent name, None), or
    (None, why kubectl refused)."""
    name = f"kubectl-{bench.run_id}"
    try:
        bench.kubectl_run("apply", "--server-side", "-f", "-", stdin=json.dumps(APPLYSET_CRD))
        bench.kubectl_run("wait", "--for=condition=Established", f"crd/{APPLYSET_RESOURCE}", "--timeout=60s")
        version = json.loads(bench.kubectl_run("version", "--client", "-o", "json"))["clientVersion"]["gitVersion"]
        parent = {
            "apiVersion": f"{APPLYSET_GROUP}/v1", "kind": "ApplySet",
            "metadata": {
                "name": name,
                "labels": {"applyset.kubernetes.io/id": applyset_id(name=name, namespace="", kind="ApplySet",
                                                                    group=APPLYSET_GROUP)},
                "annotations": {"applyset.kubernetes.io/tooling": f"kubectl/{version}",
                                "applyset.kubernetes.io/contains-group-kinds": ""},
            },
        }
        # kubectl's own field manager for the parent, so its updates take the fields over
        # without conflicts.
        bench.kubectl_run("apply", "--server-side", "--field-manager=kubectl-applyset", "-f", "-",
                          stdin=json.dumps(parent))
        adoption = bench.measure(bench.kubectl("apply", app, "applyset-adopt", applyset=name))
    except CommandFailed as error:
        bench.console.print(f"  [yellow]kubectl cannot prune with an ApplySet here: {error}[/]")
        return None, f"kubectl refused --applyset: {error}"
    bench.setup.append(adoption)
    bench.settle()
    return name, None


def scaling(bench: Bench, sizes: Sequence[int]) -> list[ScalePoint]:
    """Scenario 5: syncer alone, fresh sync and no-op resync at each size."""
    points = []
    for count in sizes:
        bench.console.print(f"[bold]5. scaling: N = {count:,}[/]")
        app = bench.new_app(f"n{count}", count)
        bench.commit(f"scale {count}")
        bench.settle()
        fresh = bench.measure(bench.syncer("sync", app, "scale-fresh"), expect=_summary_is(created=app.total))
        bench.settle()
        noop = bench.repeated(functools.partial(bench.syncer, "sync", app, "scale-noop"))
        problem = _summary_is(unchanged=app.total)(noop)
        if problem:
            noop.notes.append(problem)
        points.append(ScalePoint(objects=count, fresh=fresh, noop=noop))
    return points


def cleanup(bench: Bench) -> None:
    """On a cluster the benchmark did not start: delete its namespaces and ApplySet parent
    (without waiting; the namespace controller finishes the job)."""
    namespaces = [f"{prefix}-ns-{index:02d}" for prefix in bench.prefixes for index in range(10)]
    for start in range(0, len(namespaces), 50):
        try:
            bench.kubectl_run("delete", "namespace", "--wait=false", "--ignore-not-found", *namespaces[start:start + 50])
        except CommandFailed as error:
            bench.console.print(f"[yellow]cleanup: {error}[/]")
    try:
        bench.kubectl_run("delete", APPLYSET_RESOURCE, f"kubectl-{bench.run_id}", "--ignore-not-found")
    except CommandFailed:
        pass  # the CRD may not exist when the prune scenario did not run


@dataclass(frozen=True)
class Profile:
    scenario: str
    collapsed: Path
    summary: str
    wall: float
    """Wall time under the profiler (slower than unprofiled: for orientation only)."""


def profile_syncer(bench: Bench, *, py_spy: str, out: Path) -> list[Profile]:
    """A fresh sync and a no-op resync of a new app of `settings.objects` objects under
    py-spy (not timed: the profiler slows the process down)."""
    bench.console.print(f"[bold]profile: syncer under py-spy, N = {bench.settings.objects:,}[/]")
    app = bench.new_app("pf", bench.settings.objects)
    bench.commit("profile")
    bench.settle()
    profiles = []
    for scenario in ("fresh", "noop"):
        collapsed = out / f"profile-{scenario}.collapsed"
        command = [sys.executable, "-m", "syncer", *bench.syncer_args("sync", app)]
        started = time.perf_counter()
        with (bench.logs / f"profile-{scenario}.out").open("wb") as stdout, \
                (bench.logs / f"profile-{scenario}.err").open("wb") as stderr:
            code = subprocess.run(py_spy_argv(py_spy, output=collapsed, command=command), stdout=stdout,
                                  stderr=stderr, env=syncer_environment(), check=False).returncode
        wall = time.perf_counter() - started
        if code != 0 or not collapsed.exists():
            raise CommandFailed(f"py-spy record of syncer sync ({scenario}) exited with {code}; "
                                f"see {bench.logs / f'profile-{scenario}.err'}")
        text = summary(parse_collapsed(collapsed.read_text().splitlines()), title=f"syncer sync, {scenario}")
        (out / f"profile-{scenario}.txt").write_text(text)
        bench.console.print(f"  {scenario}: {wall:.1f}s under py-spy; {collapsed}")
        profiles.append(Profile(scenario, collapsed, text, wall))
        bench.settle()
    return profiles
