"""`syncer diff --from REV --to REV`: what a change to the source changes, with no cluster.

For pull-request CI that must not reach a cluster: both revisions of the app's path are
rendered as every command renders them (plain YAML, Kustomize, Helm, SOPS when a key is given)
and their objects compared one by one, Secrets masked, by the diff's own `compare`. Nothing
reads a kubeconfig: namespaced objects that name no namespace get `-n`, else `default`, and a
chart is rendered for `--kube-version`/`--api-versions` or helm's defaults. Whether a kind is
namespaced is known offline only for built-in kinds and for CRDs in either render
(`syncer.sources.revisions`). Exit codes are `diff`'s: 0 no changes, 1 changes, 2 an error.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from syncer.apply.changeset import summary_text
from syncer.cli.appselect import given
from syncer.cli.options import SourceOptions, render_snapshot
from syncer.cli.output import (
    SUMMARY_ALWAYS,
    _diff_line_style as diff_line_style,
    document,
    header,
    message_console,
    print_document,
    result_console,
)
from syncer.diff import ObjectDiff
from syncer.diff.revisions import compare_renders
from syncer.errors import SourceError, SyncerError
from syncer.model import Action, Manifest, ObjectRef
from syncer.sources import is_git_repository, sops
from syncer.sources.revisions import align_scopes, path_exists

OFFLINE_ACTIONS = (Action.CREATED, Action.CONFIGURED, Action.UNCHANGED, Action.DELETED)
"""What a revision diff can say of an object: no server decides anything else."""
REFUSED_FLAGS = {"revision": "--revision", "working_tree": "--working-tree", "app_object": "--app",
                 "ignore_file": "--ignore-differences"}
"""Flags that mean nothing beside --from/--to (parameter -> flag)."""


@dataclass(frozen=True)
class RenderedRevision:
    """One side of the diff: the revision as given, the commit it named, its objects."""

    flag: str
    revision: str
    sha: str
    manifests: list[Manifest]
    path_missing: bool = False
    """The path is not in this revision (an app added or removed by the change): no objects."""


@dataclass(frozen=True)
class RevisionDiff:
    source: SourceOptions
    before: RenderedRevision
    after: RenderedRevision
    diffs: list[ObjectDiff]
    origins: dict[ObjectRef, str]
    """Where each object is written: at the second revision, or the first for a deleted one."""
    warnings: list[str]
    notes: list[str]

    @property
    def has_changes(self) -> bool:
        return any(diff.action is not Action.UNCHANGED for diff in self.diffs)

    def summary(self) -> dict[str, int]:
        counts = Counter(diff.action for diff in self.diffs)
        return {str(action): counts.get(action, 0) for action in OFFLINE_ACTIONS}


def check_offline_selection(*, from_revision: str | None, to_revision: str | None) -> None:
    """--from and --to go together, and replace --revision, --working-tree and --app."""
    clashing = [flag for name, flag in REFUSED_FLAGS.items() if given(name)]
    if clashing:
        raise click.UsageError(f"--from/--to compare two revisions of --repo with no cluster; drop "
                               f"{', '.join(clashing)}")
    if from_revision is None or to_revision is None:
        missing = "--to" if to_revision is None else "--from"
        raise click.UsageError(f"{missing} is missing: --from REV and --to REV are given together")


def render_revision(source: SourceOptions, *, flag: str, revision: str, warnings: list[str]) -> RenderedRevision:
    """The source's path rendered at `revision`. An error names the flag and revision it is
    about (a render error names the file too)."""
    options = replace(source, revision=revision, working_tree=False)
    try:
        snapshot = options.open().fetch()
        if not path_exists(snapshot, options.path):
            return RenderedRevision(flag=flag, revision=revision, sha=snapshot.revision, manifests=[],
                                    path_missing=True)
        found: list[str] = []
        manifests = render_snapshot(options, snapshot, warnings=found, keep_encrypted=True)
    except SyncerError as error:
        error.args = (f"{flag} {revision}: {error}",)  # the same error, with its type and problems
        raise
    warnings += [f"{flag} {revision}: {warning}" for warning in found]
    return RenderedRevision(flag=flag, revision=revision, sha=snapshot.revision, manifests=manifests)


def revision_diff(source: SourceOptions, *, from_revision: str, to_revision: str, prune: bool) -> RevisionDiff:
    warnings: list[str] = []
    before = render_revision(source, flag="--from", revision=from_revision, warnings=warnings)
    after = render_revision(source, flag="--to", revision=to_revision, warnings=warnings)
    if before.path_missing and after.path_missing:
        raise SourceError(f"path {source.path!r} is in neither revision of {source.repo} ({from_revision}, "
                          f"{to_revision}); check --path (it is relative to the repository root)")
    aligned = align_scopes(before.manifests, after.manifests)
    diffs = compare_renders(aligned.before, aligned.after, sides=(from_revision, to_revision))
    if not prune:
        diffs = [diff for diff in diffs if diff.action is not Action.DELETED]
    origins = {m.ref: str(m.origin) for m in aligned.before}
    origins.update({m.ref: str(m.origin) for m in aligned.after})
    return RevisionDiff(source=source, before=before, after=after, diffs=diffs, origins=origins,
                        warnings=warnings, notes=_notes(source, before=before, after=after,
                                                        unknown_scope=aligned.unknown_scope))


def _notes(
    source: SourceOptions, *, before: RenderedRevision, after: RenderedRevision, unknown_scope: tuple[str, ...],
) -> list[str]:
    """What the reader must know to read the diff right."""
    notes = [f"path {source.path} is not in {side.flag} {side.revision}: "
             f"{'every object is new' if side is before else 'every object is removed'}"
             for side in (before, after) if side.path_missing]
    if unknown_scope:
        notes.append(f"{', '.join(unknown_scope)}: not a built-in kind and no CRD in either revision defines it, so "
                     f"whether it is namespaced is not known without a cluster; its objects are compared with "
                     f"the namespace their manifests give (none when they give none), not -n")
    encrypted = sorted({str(m.ref) for side in (before, after) for m in sops.encrypted_manifests(side.manifests)})
    if encrypted:
        notes.append(f"{', '.join(encrypted)}: encrypted with SOPS and no age key given (--sops-age-key-file), "
                     "so compared as encrypted: a re-encryption shows as a change even when no value changed")
    return notes


def revision_diff_json(result: RevisionDiff) -> dict[str, Any]:
    """`syncer diff --from A --to B -o json`: the `RevisionDiff` document of docs/schema/v1.json."""
    return document("RevisionDiff", {
        "repo": result.source.repo,
        "path": result.source.path,
        "namespace": result.source.namespace,
        "from": {"revision": result.before.revision, "sha": result.before.sha},
        "to": {"revision": result.after.revision, "sha": result.after.sha},
        "hasChanges": result.has_changes,
        "warnings": list(result.warnings),
        "notes": list(result.notes),
        "summary": result.summary(),
        "changes": [{
            "action": str(diff.action),
            "apiVersion": diff.api_version,
            "kind": diff.ref.kind,
            "namespace": diff.ref.namespace,
            "name": diff.ref.name,
            "message": "",
            "origin": result.origins[diff.ref],
            "diff": diff.diff,
            "fields": [field.to_dict() for field in diff.fields if field.is_change],
        } for diff in result.diffs if diff.action is not Action.UNCHANGED],
    })


def print_revision_diff(result: RevisionDiff) -> None:
    """As `diff` prints: a header and a unified diff per changed object, notes, a summary line
    (stdout); warnings on stderr."""
    out, err = result_console(), message_console()
    for diff in result.diffs:
        if diff.action is Action.UNCHANGED:
            continue
        out.print(Text(f"{header(diff)}  ({result.origins[diff.ref]})", style="bold"))
        for line in diff.diff.splitlines():
            out.print(Text(line, style=diff_line_style(line)))
    for note in result.notes:
        out.print(Text(f"note: {note}", style="dim"))
    for warning in result.warnings:
        err.print(Text(f"warning: {warning}", style="yellow"))
    before, after = result.before, result.after
    out.print(Text(
        f"diff: {result.source.repo} path {result.source.path}, {before.revision} ({before.sha[:12]}) to "
        f"{after.revision} ({after.sha[:12]}), namespace {result.source.namespace}: "
        f"{summary_text(result.summary(), always=SUMMARY_ALWAYS)}",
        style="bold",
    ))


def offline_diff(
    source: Mapping[str, Any], *, app: str | None, from_revision: str | None, to_revision: str | None,
    output: str, prune: bool,
) -> None:
    """The whole command: check the flags, render both revisions, print, exit 0 or 1."""
    check_offline_selection(from_revision=from_revision, to_revision=to_revision)
    assert from_revision is not None and to_revision is not None
    repo = str(source.get("repo") or ".")
    local = Path(repo).expanduser()
    if "://" not in repo and local.is_dir() and not is_git_repository(local):
        raise click.UsageError(f"--from/--to need a Git repository, and {repo} is a plain directory")
    options = SourceOptions.from_values({**source, "namespace": source.get("namespace") or "default",
                                         "revision": None, "working_tree": False,
                                         "release_name": source.get("release_name") or app})
    result = revision_diff(options, from_revision=from_revision, to_revision=to_revision, prune=prune)
    if output == "text":
        print_revision_diff(result)
    else:
        print_document(revision_diff_json(result), output=output)
    sys.exit(1 if result.has_changes else 0)
