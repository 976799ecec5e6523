"""`syncer status`: what the daemon last did for each app, read from the apps' ApplySet
parents (see `syncer.apply.status`). The table is the command's output, so it goes to stdout:
a rich table on a terminal, plain aligned columns when piped."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import click
from rich.table import Table

from syncer.apply.status import AppStatusRow, list_app_statuses, read_app_status
from syncer.cli import cli
from syncer.cli.common import cluster_options, connect, output_option
from syncer.cli.output import console, print_json
from syncer.config import load_config
from syncer.errors import ConfigError, Forbidden
from syncer.kube import Kube

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


def row_cells(row: AppStatusRow) -> tuple[str, ...]:
    status = row.status
    if status is None:
        return (row.app, row.namespace, "-", "-", "never", "-", "")
    error = status.error.splitlines()[0] if status.error else ""
    if len(error) > MAX_ERROR:
        error = error[: MAX_ERROR - 3] + "..."
    changes = ", ".join(f"{n} {action}" for action, n in status.summary.items()) or "-"
    return (row.app, row.namespace, status.result, status.revision[:12], age(status.time), changes, error)


def plain_table(rows: list[tuple[str, ...]]) -> str:
    table = [COLUMNS, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table)


def _rows_from_config(kube: Kube, path: str) -> list[AppStatusRow]:
    config = load_config(Path(path))
    return [AppStatusRow(app=app.name, namespace=app.namespace,
                         status=read_app_status(kube, app=app.name, namespace=app.namespace))
            for app in config.apps]


@cli.command("status")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Show the apps of this configuration file (also those never synced).")
@click.option("-n", "--namespace", default=None, help="Show the apps whose inventory is in this namespace.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Show the apps of all namespaces (the default).")
@cluster_options
@output_option
def status_command(
    *, config_path: str | None, namespace: str | None, all_namespaces: bool, kubeconfig: str | None,
    context: str | None, output: str, request_timeout: float,
) -> None:
    """Show each app's last sync: revision, when, result, changes and error, as recorded by
    `syncer run` on the app's ApplySet parent (ConfigMap syncer-<app>)."""
    if sum(bool(x) for x in (config_path, namespace, all_namespaces)) > 1:
        raise ConfigError("give at most one of --config, --namespace and --all-namespaces")
    kube = connect(kubeconfig=kubeconfig, context=context, request_timeout=request_timeout)
    try:
        if config_path:
            rows = _rows_from_config(kube, config_path)
        else:
            rows = list_app_statuses(kube, namespace=namespace)
    except Forbidden as error:
        hint = "" if namespace or config_path else "; to look in one namespace, pass --namespace"
        raise Forbidden(error.subject, f"{error.message}{hint}", status=error.status) from error
    finally:
        kube.close()
    if output == "json":
        print_json([row.to_dict() for row in rows])
        return
    if not rows:
        where = f"namespace {namespace}" if namespace else "the cluster"
        click.echo(f"no syncer apps found in {where}", err=True)
        return
    cells = [row_cells(row) for row in rows]
    out = console(sys.stdout)
    if not out.is_terminal:
        click.echo(plain_table(cells))
        return
    table = Table(*COLUMNS, box=None, header_style="bold", pad_edge=False)
    styles = {"Succeeded": "green", "Failed": "bold red"}
    for row, cell in zip(rows, cells):
        table.add_row(*cell, style=styles.get(row.status.result, "") if row.status else "dim")
    out.print(table)
