"""Running the real-world sets on one Kubernetes version: per group, syncer's CLI on a fresh
local control plane, then kubectl and kpt each on another fresh one with the same input.

What is checked is syncer against what `conformance.sets` expects on this version (see
`SetResult.problems`); kubectl's and kpt's results are recorded beside it for the report.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from conformance.cluster import (
    SYNCER_MANAGERS,
    Cluster,
    Refs,
    changed,
    control_plane,
    created,
    gone,
    written_objects,
)
from conformance.inputs import (
    Source,
    app_name,
    inventory_ref,
    prepare_source,
    refs_of,
    removed,
    rendered,
    union,
)
from conformance.others import Kpt, Kubectl, Tool, run_tool, tool_version
from conformance.results import Run, SetResult, ToolResult, VersionResults
from conformance.sets import CORPUS_ENV, RECREATE, SETS, Expected, RealWorldSet, expected_on, minor

Progress = Callable[[str], None]


def sync(cluster: Cluster, source: Source, rw: RealWorldSet, *, what: str, app: str, refs: Refs,
         previous: Refs | None = None) -> Run:
    """One `syncer sync` of `source` as the set's app, and what it did to the cluster."""
    args = ["sync", "--repo", str(source.repo), "--path", source.path, "--name", app, "-n", rw.namespace,
            "--timeout", "60"]
    if rw.create_namespace:
        args.append("--create-namespace")
    before = cluster.versions(refs)
    started = time.monotonic()
    outcome = cluster.syncer(*args)
    seconds = time.monotonic() - started
    after = cluster.versions(refs)
    data = outcome.data if isinstance(outcome.data, dict) else {}
    failed = [f"{c.get('kind')}/{c.get('namespace') or ''}/{c.get('name')}: {c.get('message')}"
              for c in data.get("changes") or [] if c.get("action") == "failed"]
    reported = data.get("error")
    if isinstance(reported, dict):
        reported = reported.get("message")
    error = str(reported or ("" if outcome.exit_code == 0 else outcome.stderr.strip()))
    return Run(what=what, exit_code=outcome.exit_code, seconds=round(seconds, 2),
               written=changed(before, after, managers=SYNCER_MANAGERS), created=created(before, after),
               written_objects=written_objects(before, after, managers=SYNCER_MANAGERS), pruned=gone(previous or [], after), error="\n".join([error, *failed]).strip())


def diff_exit(cluster: Cluster, source: Source, rw: RealWorldSet, *, app: str) -> int:
    args = ["diff", "--repo", str(source.repo), "--path", source.path, "--name", app, "-n", rw.namespace]
    if rw.create_namespace:
        args.append("--create-namespace")
    return cluster.syncer(*args).exit_code


def run_set(cluster: Cluster, rw: RealWorldSet, *, version: tuple[int, int], corpus: Path, workdir: Path) -> SetResult:
    """syncer's steps on the set, checked against what is expected on `version`."""
    expected = expected_on(rw.expect, version)
    result = SetResult(name=rw.name, group=rw.group, expected=expected.reason if expected else "",
                       engine_issue=rw.engine_issue)
    syncer = result.syncer
    app = app_name(rw)
    source = prepare_source(corpus, rw.path, substitute=rw.substitute, workdir=workdir)
    manifests = rendered(source, rw)
    result.objects = len(manifests)
    refs = refs_of(manifests)
    extra = [inventory_ref(rw, app)]
    fresh = sync(cluster, source, rw, what="fresh", app=app, refs=union(refs, extra))
    syncer.runs.append(fresh)
    _check(result, fresh, expected=expected)
    if not fresh.ok:
        return result
    resync = sync(cluster, source, rw, what="resync", app=app, refs=union(refs, extra))
    syncer.runs.append(resync)
    if not resync.ok or resync.written:
        named = f" ({', '.join(resync.written_objects)})" if resync.written_objects else ""
        result.problems.append(f"resync: exit {resync.exit_code}, {resync.written} object(s) written{named}; "
                               f"{resync.error}")
    syncer.diff_exit = diff_exit(cluster, source, rw, app=app)
    if syncer.diff_exit != 0:
        result.problems.append(f"`syncer diff` right after the sync exits {syncer.diff_exit}, not 0")
    for step in rw.then:
        step_source = prepare_source(corpus, step.path, substitute=rw.substitute, workdir=workdir)
        step_refs = refs_of(rendered(step_source, rw))
        all_refs = union(refs, step_refs, extra)
        gone_refs = removed(refs, step_refs)
        step_expected = expected_on(step.expect, version)
        done = sync(cluster, step_source, rw, what=step.kind, app=app, refs=all_refs, previous=gone_refs)
        syncer.runs.append(done)
        _check(result, done, expected=step_expected, what=step.kind)
        if step.recreate_jobs:
            opted_in = prepare_source(corpus, step.path, substitute=rw.substitute, workdir=workdir, recreate_jobs=True)
            again = sync(cluster, opted_in, rw, what=f"{step.kind}, recreate", app=app, refs=all_refs,
                         previous=gone_refs)
            syncer.runs.append(again)
            _check(result, again, expected=None, what=f"{step.kind} with {RECREATE}")
            done = again
        for name in step.pruned:
            if not done.pruned.get(name, False):
                result.problems.append(f"{step.kind} to {step.path}: {name} was not pruned")
        if step_expected is not None and not step.recreate_jobs:
            break
        refs = step_refs
    return result


def _check(result: SetResult, run: Run, *, expected: Expected | None, what: str = "fresh sync") -> None:
    if expected is None:
        if not run.ok:
            result.problems.append(f"{what} failed (exit {run.exit_code}): {run.error}")
        return
    if run.exit_code != 2:
        result.problems.append(f"{what}: expected a validation failure ({expected.reason}), got exit {run.exit_code}")
    if run.written and not expected.writes_first:
        result.problems.append(f"{what}: failed but wrote {run.written} object(s)")
    missing = [text for text in expected.contains if text not in run.error]
    if missing:
        result.problems.append(f"{what}: the error does not name {missing}: {run.error[:2000]}")


OTHERS: tuple[type[Tool], ...] = (Kubectl, Kpt)


def run_version(sets: list[list[RealWorldSet]], *, version: str | None, corpus: Path, others: bool = True,
                progress: Progress = lambda _: None) -> VersionResults:
    """Every group on a fresh control plane of `version` for syncer, and one more for each of
    kubectl and kpt (unless `others` is false, or the tool is not installed)."""
    tools = [tool for tool in OTHERS if others and shutil.which(tool.name)]
    results = VersionResults(kubernetes="", machine=machine(),
                             tools={tool.name: tool_version(tool.name) for tool in tools},
                             updated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    workdir = Path(tempfile.mkdtemp(prefix="syncer-conformance-"))
    try:
        for group in sets:
            started = time.monotonic()
            with control_plane(workdir, version=version) as cluster:
                results.kubernetes = cluster.version()
                server = minor(results.kubernetes)
                progress(f"group {group[0].group} on Kubernetes {results.kubernetes}: syncer")
                group_results = []
                for rw in group:
                    group_results.append(run_set(cluster, rw, version=server, corpus=corpus, workdir=workdir))
                    progress(f"  {rw.name}: {_line(group_results[-1].syncer)}"
                             + (f"; problems: {group_results[-1].problems}" if group_results[-1].problems else ""))
            for tool_type in tools:
                progress(f"group {group[0].group}: {tool_type.name}")
                with control_plane(workdir, version=version) as cluster:
                    tool = tool_type(cluster, workdir)
                    for rw, result in zip(group, group_results):
                        result.tools[tool.name] = run_tool(tool, rw, corpus=corpus, workdir=workdir)
                        progress(f"  {rw.name}: {_line(result.tools[tool.name])}")
            results.sets.update({r.name: r for r in group_results})
            if len(group) == sum(1 for s in SETS if s.group == group[0].group):  # a whole group's time only
                results.group_seconds[str(group[0].group)] = round(time.monotonic() - started, 1)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def _line(tool: ToolResult) -> str:
    return ", ".join(f"{run.what} exit {run.exit_code} {run.seconds:.1f}s {run.written}w" for run in tool.runs)


def machine() -> str:
    cores = os.cpu_count() or 0
    return f"{platform.system()} {platform.machine()}, {cores} cores, Python {platform.python_version()}"


def corpus_root(repository: Path) -> Path:
    """$SYNCER_REALWORLD, else `shared/realworld` beside the repository or one of its parents
    (a worktree sits deeper than the main checkout)."""
    if os.environ.get(CORPUS_ENV):
        return Path(os.environ[CORPUS_ENV]).resolve()
    for parent in repository.resolve().parents:
        if (parent / "shared" / "realworld").is_dir():
            return parent / "shared" / "realworld"
    return repository.resolve().parent / "shared" / "realworld"

