"""kubectl and kpt beside syncer: the same steps (fresh apply, resync, upgrade or switch with
prune) on the same files, each tool on its own fresh control plane, run the way their own
documentation runs them:

- kubectl: `KUBECTL_APPLYSET=true kubectl apply --server-side --prune --applyset=<parent>`,
  `-k` for a kustomization, else `-R -f`. The parent is a cluster-scoped custom resource
  (bench/applyset.py), so one ApplySet can hold a set spread over several namespaces. Every
  step uses the ApplySet: kubectl prunes only objects it labelled as members.
- kpt: `kpt live apply` (client-side apply, kpt's default) of a package holding the set's
  files (a kustomization built first with `kubectl kustomize`), its inventory ResourceGroup
  made once by `kpt live init`, the ResourceGroup CRD installed once per control plane by
  `kpt live install-resource-group`. Upgrades replace the package's files and keep the
  inventory, so kpt prunes what the new files no longer have.

Where syncer gets `--create-namespace`, the namespace is created first for the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from bench.applyset import APPLYSET_CRD, APPLYSET_GROUP, APPLYSET_RESOURCE, PARENT_FIELD_MANAGER, applyset_parent
from conformance.cluster import Cluster, Refs, changed, created, gone, written_objects
from conformance.inputs import (
    Source,
    app_name,
    flat_copy,
    namespace_args,
    prepare_source,
    refs_of,
    removed,
    rendered,
    union,
)
from conformance.results import Run, ToolResult, abbreviated
from conformance.sets import RealWorldSet
from syncer.devcluster.config import ADMIN_CONTEXT
from syncer.model import ObjectRef

TIMEOUT = 300
KUBECTL_MANAGERS = frozenset({"kubectl", PARENT_FIELD_MANAGER})
KPT_MANAGERS = frozenset({"kubectl-client-side-apply", "kubectl", "kpt"})
"""kpt applies client-side through kubectl's library: its field manager is kubectl's."""
RESOURCE_GROUP_API = "kpt.dev/v1alpha1"
RECONCILE_TIMEOUT = "1ms"
"""kpt waits for every object to become ready unless told how long (forever without a
timeout): on a control plane without nodes no Pod ever runs. syncer and kubectl do not wait
either, so kpt is given next to no time; it then exits KPT_RECONCILE_TIMEOUT_EXIT."""
KPT_RECONCILE_TIMEOUT_EXIT = 3


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str] | None = None


def _run(command: Command) -> tuple[int, float, str, str]:
    started = time.monotonic()
    try:
        done = subprocess.run(command.argv, capture_output=True, text=True, check=False, timeout=TIMEOUT,
                              env={**os.environ, **command.env} if command.env else None)
    except subprocess.TimeoutExpired as timeout:
        return 124, time.monotonic() - started, str(timeout.stdout or ""), f"timed out after {TIMEOUT}s"
    return done.returncode, time.monotonic() - started, done.stdout, done.stderr


def tool_version(tool: str) -> str:
    if tool == "kubectl":
        _, _, out, _ = _run(Command(["kubectl", "version", "--client", "-o", "json"]))
        try:
            return str(json.loads(out)["clientVersion"]["gitVersion"])
        except (ValueError, KeyError):
            return "unknown"
    _, _, out, _ = _run(Command(["kpt", "version"]))
    return out.strip() or "unknown"


class Tool(ABC):
    """One of the others on one control plane: set it up once, then run a set's steps."""

    name: str
    managers: frozenset[str]

    def __init__(self, cluster: Cluster, workdir: Path) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.base = ["--kubeconfig", str(cluster.kubeconfig), "--context", ADMIN_CONTEXT]

    def kubectl(self, *args: str, stdin: str | None = None) -> None:
        subprocess.run(["kubectl", *self.base, *args], input=stdin, capture_output=True, text=True, check=False,
                       timeout=TIMEOUT)

    @abstractmethod
    def prepare(self, rw: RealWorldSet, app: str) -> tuple[str, ObjectRef]:
        """Per set, before its first apply; returns the tool's inventory object to read back."""

    @abstractmethod
    def apply(self, source: Source, rw: RealWorldSet, app: str) -> Command:
        """The command that applies `source` as the set's app."""

    def judge(self, exit_code: int, stdout: str, stderr: str) -> tuple[int, list[str]]:
        """The command's exit code as the tool means it, and its error lines."""
        return exit_code, [line.strip() for line in stderr.splitlines() if line.strip()]


class Kubectl(Tool):
    name = "kubectl"
    managers = KUBECTL_MANAGERS

    def __init__(self, cluster: Cluster, workdir: Path) -> None:
        super().__init__(cluster, workdir)
        self.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(APPLYSET_CRD))
        self.kubectl("wait", "--for=condition=Established", f"crd/{APPLYSET_RESOURCE}", "--timeout=60s")
        self.version = tool_version("kubectl")

    def prepare(self, rw: RealWorldSet, app: str) -> tuple[str, ObjectRef]:
        self.kubectl("apply", "--server-side", f"--field-manager={PARENT_FIELD_MANAGER}", "-f", "-",
                     stdin=json.dumps(applyset_parent(app, kubectl_version=self.version)))
        return f"{APPLYSET_GROUP}/v1", ObjectRef(group=APPLYSET_GROUP, kind="ApplySet", namespace=None, name=app)

    def apply(self, source: Source, rw: RealWorldSet, app: str) -> Command:
        what = ["-k", str(source.absolute())] if source.is_kustomization() else ["-R", "-f", str(source.absolute())]
        return Command(["kubectl", *self.base, "apply", "--server-side", "--prune",
                        f"--applyset={APPLYSET_RESOURCE}/{app}", *namespace_args(source, rw), *what],
                       env={"KUBECTL_APPLYSET": "true"})


class Kpt(Tool):
    name = "kpt"
    managers = KPT_MANAGERS

    def __init__(self, cluster: Cluster, workdir: Path) -> None:
        super().__init__(cluster, workdir)
        subprocess.run(["kpt", "live", "install-resource-group", *self.base], capture_output=True, text=True,
                       check=False, timeout=TIMEOUT)
        self.packages: dict[str, Path] = {}

    def prepare(self, rw: RealWorldSet, app: str) -> tuple[str, ObjectRef]:
        package = Path(tempfile.mkdtemp(prefix=f"kpt-{app}-", dir=self.workdir))
        subprocess.run(["kpt", "live", "init", "--quiet", "--name", app, "--namespace", rw.namespace,
                        "--inventory-id", app, str(package)], capture_output=True, text=True, check=False)
        self.packages[app] = package
        return RESOURCE_GROUP_API, ObjectRef(group="kpt.dev", kind="ResourceGroup", namespace=rw.namespace, name=app)

    def apply(self, source: Source, rw: RealWorldSet, app: str) -> Command:
        package = self.packages[app]
        flat_copy(source, package)
        return Command(["kpt", "live", "apply", str(package), *self.base, *namespace_args(source, rw),
                        "--install-resource-group=false", "--output=json", f"--reconcile-timeout={RECONCILE_TIMEOUT}",
                        "--prune-timeout=60s"])

    def judge(self, exit_code: int, stdout: str, stderr: str) -> tuple[int, list[str]]:
        return kpt_outcome(exit_code, stdout, stderr)


def kpt_outcome(exit_code: int, stdout: str, stderr: str) -> tuple[int, list[str]]:
    """kpt's exit code as what it did, and its errors. kpt exits 3 when only its wait for
    readiness timed out (`RECONCILE_TIMEOUT`): the apply and prune succeeded, which is what is
    compared. Its errors are events on stdout (`--output=json`), then its stderr."""
    events = []
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    errors = [f"{e.get('kind')}/{e.get('namespace') or ''}/{e.get('name')}: {e.get('error') or e.get('status')}"
              for e in events if e.get("type") in ("apply", "prune", "delete")
              and e.get("status") not in ("Successful", "Skipped", None)]
    errors += [line.strip() for line in stderr.splitlines() if line.strip()]
    failed = any(e.get("failed") for e in events if e.get("type") == "summary" and e.get("action") != "Wait")
    only_wait_timed_out = exit_code == KPT_RECONCILE_TIMEOUT_EXIT and not failed and any(
        e.get("type") == "summary" and e.get("action") == "Apply" for e in events)
    return (0 if only_wait_timed_out else exit_code or (1 if failed else 0)), errors


def run_tool(tool: Tool, rw: RealWorldSet, *, corpus: Path, workdir: Path) -> ToolResult:
    """The set's steps with one of the others: fresh apply, resync, then each upgrade or
    switch while the previous one succeeded (a failed apply leaves nothing to upgrade)."""
    result = ToolResult(tool.name)
    app = app_name(rw)
    if rw.create_namespace:
        tool.kubectl("create", "namespace", rw.namespace)
    extra: Refs = [tool.prepare(rw, app)]
    source = prepare_source(corpus, rw.path, substitute=rw.substitute, workdir=workdir)
    refs = refs_of(rendered(source, rw))
    for what in ("fresh", "resync"):
        result.runs.append(_step(tool, what, source, rw, app=app, refs=union(refs, extra), previous=[]))
        if not result.runs[-1].ok:
            return result
    for step in rw.then:
        step_source = prepare_source(corpus, step.path, substitute=rw.substitute, workdir=workdir)
        step_refs = refs_of(rendered(step_source, rw))
        run = _step(tool, step.kind, step_source, rw, app=app, refs=union(refs, step_refs, extra),
                    previous=removed(refs, step_refs))
        result.runs.append(run)
        if not run.ok:
            break
        refs = step_refs
    return result


def _step(tool: Tool, what: str, source: Source, rw: RealWorldSet, *, app: str, refs: Refs, previous: Refs) -> Run:
    before = tool.cluster.versions(refs)
    code, seconds, stdout, stderr = _run(tool.apply(source, rw, app))
    after = tool.cluster.versions(refs)
    code, errors = tool.judge(code, stdout, stderr)
    return Run(what=what, exit_code=code, seconds=round(seconds, 2),
               written=changed(before, after, managers=tool.managers), created=created(before, after),
               written_objects=written_objects(before, after, managers=tool.managers),
               pruned=gone(previous, after), error="\n".join(abbreviated(line) for line in errors)[:3000])

