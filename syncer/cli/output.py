"""Printers: turn plans, change sets and errors into text for people or documents for programs.
The engine never prints; only these functions do.

The output contract (README, "Output"), kubectl's, flux's and Argo CD's: a command's *result*
goes to stdout — the diff, per-object lines and the summary, the status table, the version text,
or with `-o json|yaml` the document alone; progress, warnings, logs and errors go to stderr. So
`syncer status | grep` and `syncer diff | less -R` see the result, and a pipe never sees a
progress line. Each stream is coloured only when it is itself a terminal (results by stdout,
progress by stderr) and `NO_COLOR` is not set; with `NO_COLOR` neither holds escape codes. Every
JSON or YAML document carries `schemaVersion` and `kind` and is valid against
docs/schema/v1.json.
"""

from __future__ import annotations

import json
import os
from collections import Counter
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

import click
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from syncer import SCHEMA_VERSION
from syncer.apply.changeset import ACTIONS, Change, ChangeSet, summary_text
from syncer.apply.planned import Plan
from syncer.diff import Cause, FieldChange, ObjectDiff
from syncer.errors import ClusterError, RenderError, SyncerError, ValidationFailed
from syncer.kube import RequestStats
from syncer.model import Action

_MARKS = {Action.CREATED: "+", Action.CONFIGURED: "~", Action.RECREATED: "±", Action.DELETED: "-",
          Action.UNCHANGED: "="}
_ACTION_STYLES = {
    Action.CREATED: "green", Action.CONFIGURED: "yellow", Action.RECREATED: "magenta", Action.UNCHANGED: "dim",
    Action.DELETED: "red", Action.KEPT: "cyan", Action.SKIPPED: "cyan", Action.FAILED: "bold red",
}
_CAUSE_STYLES = {Cause.GIT: "green", Cause.DRIFT: "yellow", Cause.REMOVED: "red", Cause.DEFAULT: "dim",
                 Cause.FOREIGN: "dim"}
SUMMARY_ALWAYS = (Action.CREATED, Action.CONFIGURED, Action.UNCHANGED, Action.DELETED)
"""The counts a summary line always shows; the rarer actions only when they occur."""
PLAIN_PROGRESS_INTERVAL = 5.0
"""Seconds between progress lines when stderr is not a terminal (CI logs)."""


def no_color() -> bool:
    """`NO_COLOR` set to anything but the empty string (no-color.org)."""
    return bool(os.environ.get("NO_COLOR"))


def console(stream: TextIO) -> Console:
    """A console writing to `stream`, coloured only when that stream is a terminal: results
    take `console(sys.stdout)`, progress and warnings `console(sys.stderr)`, so that `syncer diff
    2>/dev/null | cat` is plain while its progress bar still moves on the terminal. Under
    NO_COLOR it emits no escape codes at all: rich's own `no_color` drops colours but keeps
    bold and dim."""
    plain = no_color()
    return Console(file=stream, highlight=False, soft_wrap=True, color_system=None if plain else "auto",
                   no_color=plain)


def result_console() -> Console:
    """Where a command's text result goes: stdout."""
    return console(sys.stdout)


def message_console() -> Console:
    """Where progress, warnings and errors go: stderr."""
    return console(sys.stderr)


# -- documents (stdout) -------------------------------------------------------------------------

def document(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """A machine-readable document: `schemaVersion` and `kind` first, then the body."""
    return {"schemaVersion": SCHEMA_VERSION, "kind": kind, **body}


def print_document(data: dict[str, Any], *, output: str) -> None:
    """A document on stdout as JSON or YAML."""
    if output == "yaml":
        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)
    else:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def error_document(error: SyncerError) -> dict[str, Any]:
    """An error as a document, so that `-o json` callers always read JSON from stdout."""
    detail: dict[str, Any] = {"type": type(error).__name__, "message": str(error), "exitCode": error.exit_code}
    if isinstance(error, ClusterError):
        detail.update(subject=error.subject, status=error.status, reason=error.reason)
    if isinstance(error, RenderError):
        detail["problems"] = [{"where": p.where, "message": p.message} for p in error.problems]
    if isinstance(error, ValidationFailed):
        detail["problems"] = [{"where": f.subject, "message": f.message} for f in error.failures]
    return document("Error", {"error": detail})


def inventory_of(app: str, namespace: str) -> str:
    return f"ConfigMap/{namespace}/syncer-{app}"


def diff_summary(plan: Plan) -> dict[str, int]:
    """How many objects get each action (the same keys as a sync's summary)."""
    counts = Counter(action for _, action in plan.decisions())
    return {str(action): counts.get(action, 0) for action in ACTIONS}


def diff_json(plan: Plan) -> dict[str, Any]:
    """`syncer diff -o json`: what a sync would do, in the words a sync reports it with."""
    diffs = {d.ref: d for d in plan.diffs()}
    decisions = {d.ref: d for d in plan.prune}
    changes: list[dict[str, Any]] = []
    for ref, action in plan.decisions():
        if action is Action.UNCHANGED:
            continue
        diff, decision = diffs.get(ref), decisions.get(ref)
        changes.append({
            "action": str(action),
            "reason": decision.reason if decision else "",
            "apiVersion": diff.api_version if diff else (decision.api_version if decision else ""),
            "kind": ref.kind,
            "namespace": ref.namespace,
            "name": ref.name,
            "message": decision.message if decision else "",
            "diff": diff.diff if diff else "",
            "removedFields": list(diff.removed) if diff else [],
            "fields": [f.to_dict() for f in diff.fields] if diff else [],
        })
    return document("Diff", {
        "app": plan.options.app,
        "inventory": inventory_of(plan.options.app, plan.options.inventory_namespace),
        "revision": plan.revision,
        "hasChanges": plan.has_changes,
        "blocked": plan.blocked,
        "warnings": list(plan.warnings),
        "summary": diff_summary(plan),
        "changes": changes,
    })


def sync_json(changes: ChangeSet, *, namespace: str) -> dict[str, Any]:
    """`syncer sync -o json`: the change set, with the result in the status' words."""
    body = changes.to_dict()
    return document("Sync", {
        **body,
        "inventory": inventory_of(changes.app, namespace),
        "result": "Succeeded" if changes.ok else "Failed",
    })


# -- text results (stdout) ------------------------------------------------------------------------

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


def field_lines(fields: Sequence[FieldChange], *, not_changes: bool) -> list[Text]:
    """`  .spec.replicas  drift: kubectl-scale at 2026-12-02T13:10:00Z`: one line per changed
    field with its cause; with `not_changes` (`-v`), also the differences that are not
    changes (defaults, other managers' fields)."""
    shown = [f for f in fields if f.is_change or not_changes]
    width = max((len(f.path) for f in shown), default=0)
    return [Text(f"  {f.path:<{width}}  {f.describe()}", style=_CAUSE_STYLES.get(f.cause, ""))
            for f in shown]


def print_diff_text(
    plan: Plan, *, out: Console, err: Console, namespace_from: str = "", not_changes: bool = False,
) -> None:
    """The diff (each object's changed fields with their causes, then its unified diff), its
    notes and its summary line on `out`; warnings on `err`."""
    for diff in plan.diffs():
        if diff.action is Action.UNCHANGED:
            continue
        out.print(Text(header(diff), style="bold"))
        for text in field_lines(diff.fields, not_changes=not_changes):
            out.print(text)
        for line in diff.diff.splitlines():
            out.print(Text(line, style=_diff_line_style(line)))
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
        err.print(Text(f"warning: {warning}", style="yellow"))
    out.print(Text(
        f"diff: app {plan.options.app} at {plan.revision} "
        f"({_where(plan.options.app, plan.options.inventory_namespace, namespace_from)}): "
        f"{summary_text(diff_summary(plan), always=SUMMARY_ALWAYS)}",
        style="bold",
    ))
    if plan.blocked:
        out.print(Text(f"diff: a sync would refuse this plan: {plan.blocked}", style="bold red"))


def _where(app: str, namespace: str, namespace_from: str) -> str:
    origin = f", namespace from {namespace_from}" if namespace_from else ""
    return f"inventory {inventory_of(app, namespace)}{origin}"


def change_line(change: Change) -> Text:
    text = Text()
    text.append(f"{change.action:<10} ", style=_ACTION_STYLES.get(change.action, ""))
    text.append(change.ref.qualified() if change.ref.group else str(change.ref))
    if change.message:
        text.append(f"  {change.message}", style="dim" if change.action is not Action.FAILED else "red")
    return text


def print_changeset(
    changes: ChangeSet, *, out: Console, err: Console, namespace: str, namespace_from: str = "",
    verbose: bool = False, not_changes: bool = False,
) -> None:
    """Per-object lines (each followed by its changed fields and their causes) and the summary
    on `out`; warnings and the error that stopped the sync on `err`. `verbose`: unchanged
    objects too; `not_changes`: the fields that differ but are not changes too."""
    for change in changes.changes:
        if change.action is not Action.UNCHANGED or verbose:
            out.print(change_line(change))
            for text in field_lines(change.fields, not_changes=not_changes):
                out.print(text)
    for warning in changes.warnings:
        err.print(Text(f"warning: {warning}", style="yellow"))
    prefix = "dry run: " if changes.dry_run else ""
    out.print(Text(f"{prefix}app {changes.app} at {changes.revision} ({_where(changes.app, namespace, namespace_from)}): "
                   + summary_text(changes.summary(), always=SUMMARY_ALWAYS), style="bold"))
    if changes.error:
        err.print(Text(f"error: {changes.error}", style="bold red"))


# -- progress (stderr) --------------------------------------------------------------------------

class StepProgress:
    """Progress of a diff or a sync: a bar on a terminal, and without one (CI) a plain line
    every PLAIN_PROGRESS_INTERVAL seconds, so that long work is never silent.

    Planning (listing, then a server-side dry-run per object that may change) has no callback
    into the CLI; its progress is read from the client's request counter, so the bar moves
    while the server checks objects and the engine needs no hook for it.
    """

    def __init__(self, out: Console, total: int, *, label: str = "syncing",
                 plain_interval: float = PLAIN_PROGRESS_INTERVAL) -> None:
        self._out = out
        self._total = total
        self._label = label
        self._plain_interval = plain_interval
        self._live = out.is_terminal and not no_color() and not out.is_dumb_terminal
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=out, transient=True, disable=not self._live,
        )
        self._task = self._progress.add_task("planning", total=total)
        self._lock = threading.Lock()
        self._stats: RequestStats | None = None
        self._checks_before = 0
        self._step = ""
        self._done = 0
        self._started = time.monotonic()
        self._applying = False

    def on_step(self, index: int, total: int, size: int) -> None:
        with self._lock:
            self._applying = True
            self._step = f"step {index + 1}/{total} ({size} objects)"

    def on_change(self, change: Change) -> None:
        with self._lock:
            self._applying = True
            self._done += 1

    def state(self) -> tuple[str, int]:
        """What is going on and how many of the objects are done with it."""
        with self._lock:
            if self._applying:
                return (f"{self._label} {self._step}".rstrip(), self._done)
            checks = (self._stats.by_verb["dry-run"] - self._checks_before) if self._stats else 0
            return ("checking with the server", min(checks, self._total))

    def _tick(self, stop: threading.Event) -> None:
        interval = 0.2 if self._live else self._plain_interval
        while not stop.wait(interval):
            description, done = self.state()
            if self._live:
                self._progress.update(self._task, description=description, completed=done)
            else:
                elapsed = time.monotonic() - self._started
                self._out.print(Text(f"{description}: {done}/{self._total} objects ({elapsed:.0f}s)"))

    @contextmanager
    def running(self, stats: RequestStats | None = None) -> Iterator[StepProgress]:
        self._stats = stats
        self._checks_before = stats.by_verb["dry-run"] if stats else 0
        self._started = time.monotonic()
        stop = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(stop,), name="progress", daemon=True)
        with self._progress:
            ticker.start()
            try:
                yield self
            finally:
                stop.set()
                ticker.join()
