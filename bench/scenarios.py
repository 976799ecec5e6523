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

from bench.applyset import APPLYSET_CRD, APPLYSET_RESOURCE, PARENT_FIELD_MANAGER, applyset_parent
from bench.audit import KPT_AGENT, KUBECTL_AGENT, SYNCER_AGENT, ObjectKey
from bench.generate import AppObject, GitRepo, change_one, generate, home_namespace, remove_fraction, write_tree
from bench.measure import Command, CommandFailed, Measurement, Server, median_run, run, wait_until_quiet
from bench.profile import parse_collapsed, py_spy_argv, summary
from bench.report import Comparison, ScalePoint
from conformance.others import KPT_RECONCILE_TIMEOUT_EXIT, RECONCILE_TIMEOUT as KPT_RECONCILE_TIMEOUT

APP_NAME = "bench"
KPT_INVENTORY = frozenset({"resourcegroup.yaml"})
"""The ResourceGroup file `kpt live init` writes into a kpt package."""


@dataclass(frozen=True)
class Settings:
    objects: int = 1000
    scale: tuple[int, ...] = (100, 1000, 5000)
    repeat: int = 3
    concurrency: int = 16
    kubectl: str = "kubectl"
    context: str | None = None
    kpt: str | None = "kpt"
    """The kpt to compare with; None to leave kpt out."""


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
        write_tree(self.repo.root / app.prefix, app.objects, keep=KPT_INVENTORY)

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

    def kpt(self, app: App, scenario: str) -> Command:
        """`kpt live apply` of the app's folder, a kpt package whose inventory (a ResourceGroup in
        the app's home namespace) `kpt_init` made. Client-side apply, kpt's default. kpt waits
        for every object to become ready, forever unless given a timeout, and no Pod ever runs
        on a control plane without nodes; the others do not wait, so kpt gets 1 ms and then
        exits 3 ("reconcile timed out"), which here means applied."""
        assert self.settings.kpt is not None
        return Command(
            tool="kpt", scenario=scenario, objects=app.count,
            argv=[self.settings.kpt, "live", "apply", str(self.repo.root / app.prefix), "--install-resource-group=false",
                  "--output=events", f"--reconcile-timeout={KPT_RECONCILE_TIMEOUT}", *self._cluster_args()],
            user_agent=KPT_AGENT, bookkeeping=(ObjectKey("resourcegroups", app.home, APP_NAME),),
            ok_exit_codes=frozenset({0, KPT_RECONCILE_TIMEOUT_EXIT}),
        )

    def kpt_init(self, app: App) -> None:
        """Untimed: the ResourceGroup CRD (once per cluster) and the package's inventory."""
        assert self.settings.kpt is not None
        for argv in ([self.settings.kpt, "live", "install-resource-group", *self._cluster_args()],
                     [self.settings.kpt, "live", "init", "--quiet", "--name", APP_NAME, "--namespace", app.home,
                      "--inventory-id", app.prefix, str(self.repo.root / app.prefix)]):
            result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
            if result.returncode != 0:
                raise CommandFailed(f"{' '.join(argv)}: {result.stderr.strip()}")

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
    """Scenarios 1-4 (1-3 without `prune`), the tools side by side on apps of
    `settings.objects` objects (kpt too unless `settings.kpt` is None)."""
    count = bench.settings.objects
    with_kpt = bench.settings.kpt is not None
    bench.console.print(f"[bold]generating {3 if with_kpt else 2} apps of {count:,} objects + 10 Namespaces[/]")
    ours, theirs = bench.new_app("sy", count), bench.new_app("kc", count)
    kpts = bench.new_app("kp", count) if with_kpt else None
    if kpts is not None:
        bench.kpt_init(kpts)
    bench.commit("the apps")
    total = ours.total
    bench.settle()

    def kpt_run(scenario: str) -> Measurement | None:
        if kpts is None:
            return None
        measured = bench.measure(bench.kpt(kpts, scenario))
        bench.settle()
        return measured

    bench.console.print("[bold]1. fresh sync[/]")
    fresh_s = bench.measure(bench.syncer("sync", ours, "fresh"), expect=_summary_is(created=total))
    bench.settle()
    fresh_k = bench.measure(bench.kubectl("apply", theirs, "fresh"))
    bench.settle()
    fresh_p = kpt_run("fresh")

    bench.console.print(f"[bold]2. no-op resync[/] (each command {bench.settings.repeat}x, median)")
    noop_s = bench.repeated(lambda: bench.syncer("sync", ours, "noop"))
    noop_k = bench.repeated(lambda: bench.kubectl("apply", theirs, "noop"))
    noop_p = bench.repeated(lambda: bench.kpt(kpts, "noop")) if kpts is not None else None
    diff_s = bench.repeated(lambda: bench.syncer("diff", ours, "noop-diff"))
    diff_k = bench.repeated(lambda: bench.kubectl("diff", theirs, "noop-diff"))
    for measurement in (noop_s, diff_s):
        problem = _summary_is(unchanged=total)(measurement)
        if problem:
            measurement.notes.append(problem)

    bench.console.print("[bold]3. one ConfigMap value changed (committed)[/]")
    changed = None
    for app in (ours, theirs, *([kpts] if kpts else [])):
        app.objects, changed = change_one(app.objects)
        bench.write(app)
    assert changed is not None
    bench.commit(f"change {changed.name}")
    change_s = bench.measure(bench.syncer("sync", ours, "change-one"),
                             expect=_summary_is(configured=1, unchanged=total - 1))
    bench.settle()
    change_k = bench.measure(bench.kubectl("apply", theirs, "change-one"))
    bench.settle()
    change_p = kpt_run("change-one")
    comparisons = [
        Comparison("fresh", "1. fresh sync", fresh_s, fresh_k, kpt=fresh_p),
        Comparison("noop", "2. no-op resync", noop_s, noop_k, kpt=noop_p),
        Comparison("noop-diff", "2. no-op diff", diff_s, diff_k),
        Comparison("change-one", "3. one object changed", change_s, change_k, kpt=change_p),
    ]
    if not prune:
        return comparisons

    bench.console.print("[bold]4. 10% of the objects removed (prune)[/]")
    applyset, refusal = _adopt_into_applyset(bench, theirs)
    removed: list[AppObject] = []
    for app in (ours, theirs, *([kpts] if kpts else [])):
        app.objects, removed = remove_fraction(app.objects)
        bench.write(app)
    bench.commit(f"remove {len(removed)} objects")
    bench.settle()
    prune_s = bench.measure(bench.syncer("sync", ours, "prune"),
                            expect=_summary_is(deleted=len(removed), unchanged=total - len(removed)))
    bench.settle()
    prune_k = None
    if applyset is not None:
        prune_k = bench.measure(bench.kubectl("apply", theirs, "prune", applyset=applyset))
        bench.settle()
    prune_p = kpt_run("prune")

    return [
        *comparisons,
        Comparison("prune", f"4. {len(removed)} removed (prune)", prune_s, prune_k, kpt=prune_p,
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
        parent = applyset_parent(name, kubectl_version=version)
        bench.kubectl_run("apply", "--server-side", f"--field-manager={PARENT_FIELD_MANAGER}", "-f", "-",
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
