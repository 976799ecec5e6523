"""`syncer history`: an app's last syncs, newest first, as they were recorded: from the App's
`status.history` (`--app NAME -n NS`, read with the user's own rights) or from a CLI app's
ApplySet parent (`--name APP`, where `syncer sync` and `syncer run --config` record them).
The table (or with -o json|yaml the `History` document) is the result, on stdout."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from syncer.apply.applyset import PARENT_PREFIX
from syncer.apply.history import HistoryEntry
from syncer.apply.status import read_history
from syncer.cli import cli
from syncer.cli.common import cluster_options, connect, output_option
from syncer.cli.output import document, message_console, print_document, result_console
from syncer.cli.status import age
from syncer.apply.changeset import summary_text
from syncer.daemon.appclient import read_app
from syncer.errors import ConfigError, NotFound
from syncer.kube import ClientOptions, default_namespace

COLUMNS = ("STARTED", "REVISION", "TRIGGER", "RESULT", "CHANGES", "DURATION", "PLAN")


def entry_cells(entry: HistoryEntry) -> tuple[str, ...]:
    trigger = entry.trigger.text() + (f" x{entry.count}" if entry.count > 1 else "")
    if entry.result == "Interrupted":
        changes = (f"{entry.already_applied} of {entry.planned} already applied"
                   if entry.planned is not None else "-")
    else:
        changes = summary_text(entry.summary) if entry.summary else "-"
    return (f"{entry.started} ({age(entry.started)})", entry.revision[:12], trigger, entry.result, changes,
            f"{entry.seconds:.1f}s", entry.plan_digest.removeprefix("sha256:")[:12] or "-")


def plain_table(rows: list[tuple[str, ...]]) -> str:
    table = [COLUMNS, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table)


@cli.command("history")
@click.option("--app", "app_object", default=None, metavar="NAME", help="The App object NAME of --namespace.")
@click.option("--name", "app", default=None, metavar="APP",
              help="The app APP synced by `syncer sync` or `syncer run --config` (its inventory's namespace is "
                   "--namespace).")
@click.option("-n", "--namespace", default=None, help="The App's or the inventory's namespace (default: the "
                                                      "context's namespace).")
@cluster_options
@output_option
def history_command(*, app_object: str | None, app: str | None, namespace: str | None, kubeconfig: str | None,
                    context: str | None, output: str, request_timeout: float) -> None:
    """Show an app's last syncs, newest first: when, which revision, what started it (the
    daemon's interval, a webhook, a heal with the objects that drifted, a reconcile request,
    a user's `syncer sync`), the result, the changes, the duration and the plan's digest.
    Syncs that were interrupted (the process killed mid-sync) show as Interrupted, with what
    the next sync found already applied."""
    if bool(app_object) == bool(app):
        raise ConfigError("give exactly one of --app NAME (an App object) and --name APP (an app synced by the CLI)")
    namespace = namespace or default_namespace(ClientOptions(kubeconfig=kubeconfig, context=context))[0]
    kube = connect(kubeconfig=kubeconfig, context=context, request_timeout=request_timeout)
    try:
        if app_object:
            live = read_app(kube, namespace=namespace, name=app_object)
            raw = (live.get("status") or {}).get("history") or []
            entries = [e for e in (HistoryEntry.from_dict(item) for item in raw if isinstance(item, dict)) if e]
            source, name = f"App/{namespace}/{app_object}", app_object
        else:
            assert app is not None
            parent = kube.get(kube.resource_for("v1", "ConfigMap"), PARENT_PREFIX + app, namespace=namespace)
            if parent is None:
                raise NotFound(f"ConfigMap/{namespace}/{PARENT_PREFIX}{app}",
                               f"app {app} has no inventory in namespace {namespace}; pass -n for another namespace "
                               "or run `syncer status -A` to list every app")
            entries = list(read_history(parent))
            source, name = f"ConfigMap/{namespace}/{PARENT_PREFIX}{app}", app
    finally:
        kube.close()
    if output != "text":
        print_document(document("History", {"app": name, "namespace": namespace, "source": source,
                                            "items": [e.to_dict() for e in entries]}), output=output)
        return
    if not entries:
        message_console().print(Text(f"{source}: no syncs recorded"))
        return
    out = result_console()
    cells = [entry_cells(e) for e in entries]
    if not out.is_terminal:
        out.print(Text(plain_table(cells)))
        return
    table = Table(*COLUMNS, box=None, header_style="bold", pad_edge=False)
    styles = {"Succeeded": "green", "Failed": "bold red", "Interrupted": "bold yellow"}
    for entry, cell in zip(entries, cells):
        table.add_row(*cell, style=styles.get(entry.result, ""))
    out.print(table)
