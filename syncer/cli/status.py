"""`syncer status [APP]`: what the last sync of each app did, read from the apps' ApplySet
parents (see `syncer.apply.status`). The list is a table, one app is shown in full (the whole
error, the last attempted and the last applied revision). The table (or the one app) is the
result and goes to stdout, as `kubectl get` and `flux get` print theirs, so `syncer status |
grep` finds rows; "no syncer apps found" goes to stderr, as kubectl's "No resources found"
does, so that an empty result is an empty stdout."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table
from rich.text import Text

from syncer.apply.status import AppStatusRow, list_app_statuses, read_app_status
from syncer.cli import cli
from syncer.cli.appselect import app_lines, load_app
from syncer.cli.common import cluster_options, connect, output_option
from syncer.apply.changeset import summary_text
from syncer.cli.output import document, message_console, print_document, result_console
from syncer.config import load_config
from syncer.errors import ConfigError, Forbidden, NotFound
from syncer.kube import ClientOptions, Kube, default_namespace

if TYPE_CHECKING:
    from syncer.daemon.appspec import AppSpec

COLUMNS = ("APP", "NAMESPACE", "RESULT", "REVISION", "SYNCED", "CHANGES", "ERROR")
MAX_ERROR = 100


def age(timestamp: str, *, now: datetime | None = None) -> str:
    """`2024-05-01T10:00:00Z` -> `5m ago` (kubectl's style of age), or the text as it is."""
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp or "-"
    seconds = int(((now or datetime.now(timezone.utc)) - then).total_seconds())
    if seconds < 0:
        return timestamp
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _short_error(error: str) -> str:
    first = error.splitlines()[0] if error else ""
    shortened = len(first) > MAX_ERROR or "\n" in error
    if len(first) > MAX_ERROR:
        first = first[: MAX_ERROR - 3] + "..."
    return first + (" (more: syncer status APP)" if shortened else "")


def row_cells(row: AppStatusRow) -> tuple[str, ...]:
    status = row.status
    if status is None:
        return (row.app, row.namespace, "-", "-", "never", "-", "")
    changes = ", ".join(f"{n} {action}" for action, n in status.summary.items()) or "-"
    return (row.app, row.namespace, status.result, status.revision[:12], age(status.time), changes,
            _short_error(status.error))


def plain_table(rows: list[tuple[str, ...]]) -> str:
    table = [COLUMNS, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table)


def detail_lines(row: AppStatusRow) -> list[str]:
    """One app in full, as `kubectl describe` shows an object: every field, the whole error."""
    status = row.status
    lines = [f"App:              {row.app}", f"Inventory:        ConfigMap/{row.namespace}/syncer-{row.app}"]
    if status is None:
        return [*lines, "Result:           never synced"]
    lines += [
        f"Result:           {status.result}",
        f"Last sync:        {status.time} ({age(status.time)})",
        f"Last attempted:   {status.revision}",
        f"Last applied:     {status.applied_revision or 'none'}",
        f"Changes:          {summary_text(status.summary) if status.summary else 'none'}",
    ]
    if status.error:
        lines.append("Error:")
        lines += [f"  {line}" for line in status.error.splitlines()]
    return lines


def _rows_from_config(kube: Kube, path: str) -> list[AppStatusRow]:
    config = load_config(Path(path))
    return [AppStatusRow(app=app.name, namespace=app.namespace,
                         status=read_app_status(kube, app=app.name, namespace=app.namespace))
            for app in config.apps]


@cli.command("status")
@click.argument("app", required=False)
@click.option("--app", "app_object", default=None, metavar="NAME",
              help="Show the App object NAME of --namespace: its source, target namespace and identity, and its "
                   "inventory's last sync, read with the App's service account.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Show the apps of this configuration file (also those never synced).")
@click.option("-n", "--namespace", default=None,
              help="Namespace of the apps' inventories (with APP or --app: default the context's namespace; "
                   "without: all namespaces).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Show the apps of all namespaces (the default).")
@cluster_options
@output_option
def status_command(
    *, app: str | None, app_object: str | None, config_path: str | None, namespace: str | None,
    all_namespaces: bool, kubeconfig: str | None, context: str | None, output: str, request_timeout: float,
) -> None:
    """Show each app's last sync (result, revision, when, changes, error), as `syncer sync`
    and `syncer run` record it on the app's ApplySet parent (ConfigMap syncer-<app>).
    With APP, show that app in full: the whole error, the last attempted and the last
    applied revision. With --app, show an App object's app in full, and where it syncs from and to."""
    one = app or app_object
    if sum(bool(x) for x in (config_path, namespace and not one, all_namespaces, app, app_object)) > 1:
        raise ConfigError("give at most one of APP, --app, --config, --namespace and --all-namespaces")
    if one:
        namespace = namespace or default_namespace(ClientOptions(kubeconfig=kubeconfig, context=context))[0]
    spec: AppSpec | None = None
    kube = connect(kubeconfig=kubeconfig, context=context, request_timeout=request_timeout)
    try:
        if app_object and namespace:
            spec = load_app(kube, namespace=namespace, name=app_object)
            if spec.user is not None:
                kube.close()
                kube = connect(kubeconfig=kubeconfig, context=context, request_timeout=request_timeout,
                               impersonate=spec.user)
            home = spec.config.id.namespace
            rows = [AppStatusRow(app=app_object, namespace=home,
                                 status=read_app_status(kube, app=app_object, namespace=home))]
        elif app and namespace:
            status = read_app_status(kube, app=app, namespace=namespace)
            if status is None and not _parent_exists(kube, app=app, namespace=namespace):
                raise NotFound(f"ConfigMap/{namespace}/syncer-{app}",
                               f"app {app} has no inventory in namespace {namespace}; pass -n for another namespace "
                               "or run `syncer status -A` to list every app")
            rows = [AppStatusRow(app=app, namespace=namespace, status=status)]
        elif config_path:
            rows = _rows_from_config(kube, config_path)
        else:
            rows = list_app_statuses(kube, namespace=namespace)
    except Forbidden as error:
        hint = "" if namespace or config_path else "; to look in one namespace, pass --namespace"
        raise Forbidden(error.subject, f"{error.message}{hint}", status=error.status) from error
    finally:
        kube.close()
    if output != "text":
        if one:
            print_document(document("AppStatus", rows[0].to_dict()), output=output)
        else:
            print_document(document("AppStatusList", {"items": [row.to_dict() for row in rows]}), output=output)
        return
    out = result_console()
    if one:
        for line in [*detail_lines(rows[0]), *(app_lines(spec) if spec is not None else [])]:
            out.print(Text(line))
        return
    if not rows:
        where = f"namespace {namespace}" if namespace else "the cluster"
        message_console().print(Text(f"no syncer apps found in {where}"))
        return
    cells = [row_cells(row) for row in rows]
    if not out.is_terminal:
        out.print(Text(plain_table(cells)))
        return
    table = Table(*COLUMNS, box=None, header_style="bold", pad_edge=False)
    styles = {"Succeeded": "green", "Failed": "bold red"}
    for row, cell in zip(rows, cells):
        table.add_row(*cell, style=styles.get(row.status.result, "") if row.status else "dim")
    out.print(table)


def _parent_exists(kube: Kube, *, app: str, namespace: str) -> bool:
    return kube.get(kube.resource_for("v1", "ConfigMap"), f"syncer-{app}", namespace=namespace) is not None
