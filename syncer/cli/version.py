"""`syncer version`: the client's version and the API server's, as `kubectl version` shows them."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from syncer import __version__
from syncer.cli import cli
from syncer.cli.common import cluster_options, connect, output_option
from syncer.cli.output import document, print_document, result_console


@cli.command("version")
@click.option("--client", "client_only", is_flag=True, help="Only the client's version; no cluster needed.")
@cluster_options
@output_option
def version_command(
    *, client_only: bool, kubeconfig: str | None, context: str | None, output: str, request_timeout: float,
) -> None:
    """Show syncer's version and the Kubernetes API server's (GET /version)."""
    server: dict[str, Any] | None = None
    if not client_only:
        kube = connect(kubeconfig=kubeconfig, context=context, request_timeout=request_timeout)
        try:
            server = kube.request("GET", "/version", subject="API server", verb="version")
        finally:
            kube.close()
    if output != "text":
        print_document(document("Version", {"clientVersion": __version__, "serverVersion": server}), output=output)
        return
    out = result_console()
    out.print(Text(f"Client Version: {__version__}"))
    if server is not None:
        out.print(Text(f"Server Version: {server.get('gitVersion', '?')}"))
