"""Printers: turn plans and change sets into text (coloured on a TTY, plain otherwise, NO_COLOR
honoured by rich) or JSON. The engine never prints; only these functions do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from syncer.apply.changeset import Change, ChangeSet
from syncer.apply.plan import Plan
from syncer.diff import ObjectDiff

_MARKS = {"create": "+", "update": "~", "delete": "-", "unchanged": "="}
_ACTION_STYLES = {
    "created": "green", "configured": "yellow", "recreated": "magenta", "unchanged": "dim",
    "deleted": "red", "skipped": "cyan", "failed": "bold red",
}


def console(stream: TextIO) -> Console:
    return Console(file=stream, highlight=False, soft_wrap=True)


def header(diff: ObjectDiff) -> str:
    """`~ apps/v1 Deployment shop/web` (namespace/name, or name for cluster-scoped objects)."""
    where = f"{diff.ref.namespace}/{diff.ref.name}" if diff.ref.namespace else diff.ref.name
    return f"{_MARKS[diff.action]} {diff.api_version} {diff.ref.kind} {where}"


def _diff_line_style(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "bold"
    if line.startswith("+"):
        return "green"
    if line.startswith("-"):
        return "red"
    if line.startswith("@@"):
        return "cyan"
    return ""


def diff_summary(plan: Plan) -> dict[str, int]:
    counts = {"create": 0, "update": 0, "delete": 0, "unchanged": 0}
    for planned in plan.objects.values():
        counts[planned.action] += 1
    if plan.options.prune:
        counts["delete"] += len(plan.deletions)
    return counts


def print_diff_text(plan: Plan, *, out: Console) -> None:
    for diff in plan.diffs():
        if diff.action == "unchanged":
            continue
        out.print(Text(header(diff), style="bold"))
        for line in diff.diff.splitlines():
            out.print(Text(line, style=_diff_line_style(line)))
        if diff.removed:
            out.print(Text(f"  removes fields syncer set before: {', '.join(diff.removed)}", style="yellow"))
    for planned in plan.objects.values():
        if planned.deferred:
            out.print(Text(f"note: {planned.ref} is not checked by the server yet: {planned.deferred}", style="dim"))
    for candidate in plan.prune:
        if candidate.keep:
            out.print(Text(f"note: {candidate.ref} is no longer in the source but {candidate.keep}", style="dim"))
    if plan.options.prune is False and plan.deletions:
        out.print(Text(f"note: {len(plan.deletions)} object(s) are no longer in the source; "
                       "pruning is off", style="dim"))
    for warning in plan.warnings:
        out.print(Text(f"warning: {warning}", style="yellow"))
    counts = diff_summary(plan)
    out.print(Text(
        f"revision {plan.revision}: {counts['create']} to create, {counts['update']} to update, "
        f"{counts['delete']} to delete, {counts['unchanged']} unchanged",
        style="bold",
    ))


def diff_json(plan: Plan) -> dict[str, Any]:
    objects = []
    for diff in plan.diffs():
        objects.append({
            "action": diff.action,
            "apiVersion": diff.api_version,
            "kind": diff.ref.kind,
            "namespace": diff.ref.namespace,
            "name": diff.ref.name,
            "diff": diff.diff,
            "removedFields": list(diff.removed),
        })
    return {"app": plan.options.app, "revision": plan.revision, "summary": diff_summary(plan), "objects": objects}


def change_line(change: Change) -> Text:
    text = Text()
    text.append(f"{change.action:<10} ", style=_ACTION_STYLES.get(change.action, ""))
    text.append(change.ref.qualified() if change.ref.group else str(change.ref))
    if change.message:
        text.append(f"  {change.message}", style="dim" if change.action != "failed" else "red")
    return text


def print_changeset(changes: ChangeSet, *, out: Console, verbose: bool = False) -> None:
    for change in changes.changes:
        if change.action != "unchanged" or verbose:
            out.print(change_line(change))
    for warning in changes.warnings:
        out.print(Text(f"warning: {warning}", style="yellow"))
    summary = changes.summary()
    parts = [f"{summary[a]} {a}" for a in ("created", "configured", "recreated", "unchanged", "deleted", "skipped", "failed")
             if summary[a] or a in ("created", "configured", "unchanged", "deleted")]
    prefix = "dry run: " if changes.dry_run else ""
    out.print(Text(f"{prefix}app {changes.app} at {changes.revision}: " + ", ".join(parts), style="bold"))
    if changes.error:
        out.print(Text(f"error: {changes.error}", style="bold red"))


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


class StepProgress:
    """A progress bar over the objects of a sync, one task per step, on a TTY only."""

    def __init__(self, out: Console, total: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=out, transient=True, disable=not out.is_terminal,
        )
        self._task = self._progress.add_task("syncing", total=total)

    def on_step(self, index: int, total: int, size: int) -> None:
        self._progress.update(self._task, description=f"step {index + 1}/{total} ({size} objects)")

    def on_change(self, change: Change) -> None:
        self._progress.advance(self._task)

    @contextmanager
    def running(self) -> Iterator[StepProgress]:
        with self._progress:
            yield self
