"""Running the real-world sets: syncer's CLI on a fresh local control plane per group, then
`kubectl apply --server-side` on another fresh one with the same input.

What is checked is the cluster, not the requests: every object of a set is read back (uid,
resourceVersion) before and after each step, so "a resync writes nothing" and "a failed
validation writes nothing" are facts about objects.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

import syncer.cli.diff  # noqa: F401  (registers the command)
import syncer.cli.sync  # noqa: F401
from conformance.sets import CORPUS_ENV, RECREATE, RealWorldSet, Step
from syncer.cli import cli
from syncer.devcluster import ControlPlane, find_assets
from syncer.devcluster.config import ADMIN_CONTEXT
from syncer.errors import NotFound, RenderError
from syncer.kube import ClientOptions, Kube
from syncer.model import Manifest, ObjectRef
from syncer.sources import open_source, render, with_created_namespace

Versions = dict[ObjectRef, dict[str, Any] | None]
"""Each object of a set as read (None when it does not exist or is being deleted), to tell
with `written_by_syncer` whether syncer wrote it between two reads."""

FIELD_MANAGER = "syncer"


def _field_paths(fields: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every node of a `fieldsV1` tree, as the path of elements that leads to it."""
    paths: set[tuple[str, ...]] = set()
    if isinstance(fields, dict):
        for element, child in fields.items():
            path = (*prefix, element)
            paths.add(path)
            paths |= _field_paths(child, path)
    return paths


def _entries(live: dict[str, Any], *, ours: bool) -> list[dict[str, Any]]:
    entries = (live.get("metadata") or {}).get("managedFields") or []
    return [e for e in entries if isinstance(e, dict) and (e.get("manager") == FIELD_MANAGER) == ours]


def written_by_syncer(before: dict[str, Any] | None, after: dict[str, Any] | None) -> bool:
    """Whether syncer wrote the object between two reads, and not only a controller.

    A bare resourceVersion also moves when the Deployment controller writes status or its
    revision annotation, or the token controller adds a ServiceAccount's secret. What moves
    only when syncer writes: the object's existence and uid (created, re-created, deleted),
    its generation (spec changed), a ConfigMap's or Secret's data, and syncer's managedFields
    entries (the time of its last change, the fields it applies) -- except that another
    manager's update can take fields away from syncer's entries without syncer doing
    anything: Kubernetes 1.20's StatefulSet controller, writing status about a second after
    the StatefulSet was created, takes `spec.volumeClaimTemplates` from its applier (it sends
    the templates back with the defaults its informer decoded). Fields that left syncer's
    entries for another manager's entry are therefore not a write of syncer's.
    """
    if before is None or after is None:
        return (before is None) != (after is None)
    old_meta, new_meta = before.get("metadata") or {}, after.get("metadata") or {}
    if (old_meta.get("uid"), old_meta.get("generation")) != (new_meta.get("uid"), new_meta.get("generation")):
        return True
    if before.get("kind") in ("ConfigMap", "Secret") and any(
            before.get(key) != after.get(key) for key in ("data", "binaryData")):
        return True
    old_ours, new_ours = _entries(before, ours=True), _entries(after, ours=True)

    def stamps(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted((str(e.get("operation")), str(e.get("apiVersion")), str(e.get("subresource") or ""),
                       str(e.get("time"))) for e in entries)

    if stamps(old_ours) != stamps(new_ours):
        return True
    old_fields = set().union(*(_field_paths(e.get("fieldsV1")) for e in old_ours))
    new_fields = set().union(*(_field_paths(e.get("fieldsV1")) for e in new_ours))
    if new_fields - old_fields:
        return True
    taken = set().union(*(_field_paths(e.get("fieldsV1")) for e in _entries(after, ours=False)))
    return not (old_fields - new_fields) <= taken


@dataclass
class Outcome:
    """One `syncer sync` (or `diff`): its exit code, time and what it reported."""

    exit_code: int
    seconds: float
    summary: dict[str, int] = field(default_factory=dict)
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    written: int = 0
    """Objects of the set created, changed or deleted, read from the cluster."""


@dataclass
class StepResult:
    step: Step
    outcome: Outcome
    recreate: Outcome | None = None
    pruned: dict[str, bool] = field(default_factory=dict)
    """`Kind/name` -> gone from the cluster afterwards."""


@dataclass
class KubectlResult:
    exit_code: int
    seconds: float
    applied: int
    errors: list[str]


@dataclass
class SetResult:
    set: RealWorldSet
    objects: int = 0
    fresh: Outcome | None = None
    resync: Outcome | None = None
    diff_exit: int | None = None
    steps: list[StepResult] = field(default_factory=list)
    kubectl: KubectlResult | None = None
    problems: list[str] = field(default_factory=list)
    """Where syncer did not do what the set expects; empty when it conforms."""


@dataclass(frozen=True)
class Source:
    """Where a set's files are for syncer and kubectl (a copy when placeholders are substituted)."""

    repo: Path
    path: str

    def absolute(self) -> Path:
        return self.repo / self.path


def prepare_source(corpus: Path, path: str, *, substitute: str | None, workdir: Path, recreate_jobs: bool = False) -> Source:
    """The set as given, or a copy with Flux's `%[1]s` replaced / Jobs opted in to recreate."""
    if substitute is None and not recreate_jobs:
        return Source(corpus, path)
    original = corpus / path
    copy_root = Path(tempfile.mkdtemp(prefix="set-", dir=workdir))
    files = [original] if original.is_file() else sorted(p for p in original.rglob("*") if p.is_file())
    for file in files:
        relative = file.relative_to(original.parent if original.is_file() else original)
        target = copy_root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        text = file.read_text()
        if substitute is not None:
            text = text.replace("%[1]s", substitute)
        if recreate_jobs and file.suffix in (".yaml", ".yml"):
            text = _opt_in_jobs(text)
        target.write_text(text)
    return Source(copy_root, original.name if original.is_file() else ".")


def _opt_in_jobs(text: str) -> str:
    documents = list(yaml.safe_load_all(text))
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "Job":
            document.setdefault("metadata", {}).setdefault("annotations", {})[RECREATE] = "true"
    return yaml.safe_dump_all([d for d in documents if d is not None], sort_keys=False)


def rendered(source: Source, rw: RealWorldSet) -> list[Manifest]:
    manifests = render(open_source(str(source.repo)).fetch(), source.path, namespace=rw.namespace)
    return with_created_namespace(manifests, rw.namespace) if rw.create_namespace else manifests


class Cluster:
    """A fresh local control plane, syncer's CLI pointed at it, and its objects read back."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.kube = Kube.connect(ClientOptions(kubeconfig=str(kubeconfig), context=ADMIN_CONTEXT))

    def cli(self, *args: str) -> tuple[int, Any, str]:
        result = CliRunner().invoke(
            cli, [*args, "--kubeconfig", str(self.kubeconfig), "--context", ADMIN_CONTEXT, "-o", "json"]
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        try:
            data = json.loads(result.stdout) if result.stdout.strip() else None
        except ValueError:
            data = None
        return result.exit_code, data, result.stderr

    def versions(self, refs: list[tuple[str, ObjectRef]]) -> Versions:
        found: Versions = {}
        for api_version, ref in refs:
            try:
                resource = self.kube.resource_for(api_version, ref.kind)
            except NotFound:
                found[ref] = None
                continue
            live = self.kube.get(resource, ref.name, namespace=ref.namespace if resource.namespaced else None)
            metadata = (live or {}).get("metadata") or {}
            alive = live is not None and not metadata.get("deletionTimestamp")
            found[ref] = live if alive else None
        return found


def _refs(manifests: list[Manifest], rw: RealWorldSet, app: str) -> list[tuple[str, ObjectRef]]:
    refs = [(m.api_version, m.ref) for m in manifests]
    refs.append(("v1", ObjectRef(group="", kind="ConfigMap", namespace=rw.namespace, name=f"syncer-{app}")))
    return refs


def _changed(before: Versions, after: Versions) -> int:
    return sum(1 for ref in set(before) | set(after) if written_by_syncer(before.get(ref), after.get(ref)))


def sync(cluster: Cluster, source: Source, rw: RealWorldSet, *, app: str, refs: list[tuple[str, ObjectRef]]) -> Outcome:
    args = ["sync", "--repo", str(source.repo), "--path", source.path, "--name", app, "-n", rw.namespace,
            "--timeout", "60"]
    if rw.create_namespace:
        args.append("--create-namespace")
    cluster.kube.forget_discovery()
    before = cluster.versions(refs)
    started = time.monotonic()
    code, data, stderr = cluster.cli(*args)
    seconds = time.monotonic() - started
    cluster.kube.forget_discovery()
    written = _changed(before, cluster.versions(refs))
    data = data or {}
    failed = [f"{c.get('kind')}/{c.get('namespace') or ''}/{c.get('name')}: {c.get('message')}"
              for c in data.get("changes") or [] if c.get("action") == "failed"]
    error = str(data.get("error") or ("" if code == 0 else stderr.strip()))
    return Outcome(exit_code=code, seconds=seconds, summary=dict(data.get("summary") or {}),
                   error="\n".join([error, *failed]).strip(),
                   warnings=list(data.get("warnings") or []), written=written)


def diff_exit(cluster: Cluster, source: Source, rw: RealWorldSet, *, app: str) -> int:
    args = ["diff", "--repo", str(source.repo), "--path", source.path, "--name", app, "-n", rw.namespace]
    if rw.create_namespace:
        args.append("--create-namespace")
    return cluster.cli(*args)[0]


def run_set(cluster: Cluster, rw: RealWorldSet, *, corpus: Path, workdir: Path) -> SetResult:
    result = SetResult(rw)
    app = rw.name.replace("/", "-").replace(".", "-").replace("_", "-").lower()[:40].strip("-")
    source = prepare_source(corpus, rw.path, substitute=rw.substitute, workdir=workdir)
    try:
        manifests = rendered(source, rw)
    except RenderError:
        manifests = []
    result.objects = len(manifests)
    refs = _refs(manifests, rw, app)
    result.fresh = sync(cluster, source, rw, app=app, refs=refs)
    _check(result, result.fresh, expect_failure=rw.expect_failure, what="fresh sync", may_write=rw.writes_crds_first)
    if result.fresh.exit_code != 0:
        return result
    result.resync = sync(cluster, source, rw, app=app, refs=refs)
    if result.resync.exit_code != 0 or result.resync.written:
        result.problems.append(f"resync: exit {result.resync.exit_code}, {result.resync.written} object(s) written; "
                               f"{result.resync.error}")
    result.diff_exit = diff_exit(cluster, source, rw, app=app)
    if result.diff_exit != 0:
        result.problems.append(f"`syncer diff` right after the sync exits {result.diff_exit}, not 0")
    for step in rw.then:
        step_source = prepare_source(corpus, step.path, substitute=rw.substitute, workdir=workdir)
        try:
            step_refs = _refs(rendered(step_source, rw), rw, app)
        except RenderError:
            step_refs = []
        all_refs = list({ref: (v, ref) for v, ref in refs + step_refs}.values())
        done = StepResult(step, sync(cluster, step_source, rw, app=app, refs=all_refs))
        _check(result, done.outcome, expect_failure=step.expect_failure, what=step.kind)
        if step.recreate_jobs:
            opted_in = prepare_source(corpus, step.path, substitute=rw.substitute, workdir=workdir, recreate_jobs=True)
            done.recreate = sync(cluster, opted_in, rw, app=app, refs=all_refs)
            _check(result, done.recreate, expect_failure=(), what=f"{step.kind} with {RECREATE}")
        if step.pruned:
            live = cluster.versions(all_refs)
            for qualified in step.pruned:
                kind, _, rest = qualified.partition("/")
                namespace, _, name = rest.rpartition("/")
                gone = all(v is None for r, v in live.items() if (r.kind, r.namespace or "", r.name) == (kind, namespace, name))
                done.pruned[qualified] = gone
                if not gone:
                    result.problems.append(f"{step.kind} to {step.path}: {qualified} was not pruned")
        result.steps.append(done)
    return result


def _check(
    result: SetResult, outcome: Outcome, *, expect_failure: tuple[str, ...], what: str, may_write: bool = False
) -> None:
    if not expect_failure:
        if outcome.exit_code != 0:
            result.problems.append(f"{what} failed (exit {outcome.exit_code}): {outcome.error}")
        return
    if outcome.exit_code != 2:
        result.problems.append(f"{what}: expected a validation failure, got exit {outcome.exit_code}")
    if outcome.written and not may_write:
        result.problems.append(f"{what}: failed but wrote {outcome.written} object(s)")
    missing = [text for text in expect_failure if text not in outcome.error]
    if missing:
        result.problems.append(f"{what}: the error does not name {missing}: {outcome.error[:2000]}")


def run_kubectl(kubeconfig: Path, rw: RealWorldSet, *, corpus: Path, workdir: Path) -> KubectlResult:
    """`kubectl apply --server-side` of the same files, on a cluster that has seen nothing else
    of the set. Its namespace is created first when syncer would (`--create-namespace`)."""
    source = prepare_source(corpus, rw.path, substitute=rw.substitute, workdir=workdir)
    base = ["kubectl", "--kubeconfig", str(kubeconfig), "--context", ADMIN_CONTEXT]
    if rw.create_namespace:
        subprocess.run([*base, "create", "namespace", rw.namespace], capture_output=True, text=True, check=False)
    target = source.absolute()
    what = ["-k", str(target)] if target.is_dir() and (target / "kustomization.yaml").exists() else ["-R", "-f", str(target)]
    started = time.monotonic()
    try:  # kubectl's -n only where syncer's fills in a namespace; kubectl refuses objects naming another
        defaulted = any(m.namespace_defaulted for m in rendered(source, rw))
    except RenderError:
        defaulted = False
    namespace = ["-n", rw.namespace] if defaulted else []
    done = subprocess.run([*base, "apply", "--server-side", *namespace, *what],
                          capture_output=True, text=True, check=False, timeout=600)
    seconds = time.monotonic() - started
    applied = sum(1 for line in done.stdout.splitlines() if line.rstrip().endswith("serverside-applied"))
    errors = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return KubectlResult(exit_code=done.returncode, seconds=seconds, applied=applied, errors=errors)


@contextmanager
def control_plane(workdir: Path) -> Iterator[Path]:
    plane = ControlPlane(workdir=Path(tempfile.mkdtemp(prefix="cp-", dir=workdir)), assets=find_assets())
    running = plane.start()
    try:
        yield running.kubeconfig
    finally:
        plane.stop()


def run_all(sets: list[list[RealWorldSet]], *, corpus: Path, kubectl: bool = True) -> list[SetResult]:
    """Every group on its own fresh control plane, and kubectl's pass on another one."""
    results: list[SetResult] = []
    workdir = Path(tempfile.mkdtemp(prefix="syncer-conformance-"))
    try:
        for group in sets:
            with control_plane(workdir) as kubeconfig:
                cluster = Cluster(kubeconfig)
                group_results = [run_set(cluster, rw, corpus=corpus, workdir=workdir) for rw in group]
                cluster.kube.close()
            if kubectl and shutil.which("kubectl"):
                with control_plane(workdir) as kubeconfig:
                    for result in group_results:
                        result.kubectl = run_kubectl(kubeconfig, result.set, corpus=corpus, workdir=workdir)
            results += group_results
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def corpus_root(repository: Path) -> Path:
    """$SYNCER_REALWORLD, else `shared/realworld` beside the repository or one of its parents
    (a worktree sits deeper than the main checkout)."""
    if os.environ.get(CORPUS_ENV):
        return Path(os.environ[CORPUS_ENV]).resolve()
    for parent in repository.resolve().parents:
        if (parent / "shared" / "realworld").is_dir():
            return parent / "shared" / "realworld"
    return repository.resolve().parent / "shared" / "realworld"
