"""Printers: turn plans and change sets into text (coloured on a TTY, plain otherwise, NO_COLOR
honoured by rich) or JSON. The engine never prints; only these functions do."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from syncer.apply.changeset import ACTIONS, Change, ChangeSet, summary_text
from syncer.apply.plan import Plan
from syncer.diff import ObjectDiff
from syncer.model import Action

_MARKS = {Action.CREATED: "+", Action.CONFIGURED: "~", Action.RECREATED: "±", Action.DELETED: "-",
          Action.UNCHANGED: "="}
_ACTION_STYLES = {
    Action.CREATED: "green", Action.CONFIGURED: "yellow", Action.RECREATED: "magenta", Action.UNCHANGED: "dim",
    Action.DELETED: "red", Action.KEPT: "cyan", Action.SKIPPED: "cyan", Action.FAILED: "bold red",
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
    """How many objects get each action (the same keys as a sync's summary)."""
    counts = Counter(action for _, action in plan.decisions())
    return {str(action): counts.get(action, 0) for action in ACTIONS}


def print_diff_text(plan: Plan, *, out: Console) -> None:
    for diff in plan.diffs():
        if diff.action is Action.UNCHANGED:
            continue
        out.print(Text(header(diff), style="bold"))
        for line in diff.diff.splitlines():
            out.print(Text(line, style=_diff_line_style(line)))
        if diff.removed:
            out.print(Text(f"  removes fields syncer set before: {', '.join(diff.removed)}", style="yellow"))
    for planned in plan.objects.values():
        if planned.blocked_by:
            out.print(Text(f"note: {planned.ref} is not checked by the server yet: {planned.waiting_for}", style="dim"))
    for decision in plan.prune:
        if decision.action is not Action.DELETED:
            out.print(Text(f"note: {decision.ref} is no longer in the source; {decision.action} "
                           f"({decision.reason}): {decision.message}", style="dim"))
    for write in plan.inventory_writes():
        out.print(Text(f"note: the app's inventory on {write.inventory.parent} is recorded ({write.stage})",
                       style="dim"))
    for warning in plan.warnings:
        out.print(Text(f"warning: {warning}", style="yellow"))
    out.print(Text(f"revision {plan.revision}: {summary_text(diff_summary(plan))}", style="bold"))


def diff_json(plan: Plan) -> dict[str, Any]:
    diffs = {d.ref: d for d in plan.diffs()}
    reasons = {d.ref: d for d in plan.prune}
    objects = []
    for ref, action in plan.decisions():
        diff = diffs.get(ref)
        decision = reasons.get(ref)
        objects.append({
            "action": str(action),
            "reason": decision.reason if decision else "",
            "message": decision.message if decision else "",
            "apiVersion": diff.api_version if diff else (decision.api_version if decision else ""),
            "kind": ref.kind,
            "namespace": ref.namespace,
            "name": ref.name,
            "diff": diff.diff if diff else "",
            "removedFields": list(diff.removed) if diff else [],
        })
    return {"app": plan.options.app, "revision": plan.revision, "changes": plan.has_changes,
            "summary": diff_summary(plan), "objects": objects, "warnings": list(plan.warnings)}


def change_line(change: Change) -> Text:
    text = Text()
    text.append(f"{change.action:<10} ", style=_ACTION_STYLES.get(change.action, ""))
    text.append(change.ref.qualified() if change.ref.group else str(change.ref))
    if change.message:
        text.append(f"  {change.message}", style="dim" if change.action != "failed" else "red")
    return text


def print_changeset(changes: ChangeSet, *, out: Console, verbose: bool = False) -> None:
    for change in changes.changes:
        if change.action is not Action.UNCHANGED or verbose:
            out.print(change_line(change))
    for warning in changes.warnings:
        out.print(Text(f"warning: {warning}", style="yellow"))
    prefix = "dry run: " if changes.dry_run else ""
    out.print(Text(f"{prefix}app {changes.app} at {changes.revision}: {summary_text(changes.summary())}",
                   style="bold"))
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
