"""The `syncer` command line. Thin: each command wires pipeline stages together and turns
their results into output and an exit code. One module per command."""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from syncer import __version__
from syncer.errors import SyncerError


# Each command's module, imported only when the command runs (or help lists it): a sync
# should not pay for importing the daemon's scheduler or the control plane's code.
_COMMAND_MODULES = {
    "dev-cluster": "syncer.cli.devcluster",
    "diff": "syncer.cli.diff",
    "reconcile": "syncer.cli.apps",
    "render": "syncer.cli.render",
    "resume": "syncer.cli.apps",
    "run": "syncer.cli.run",
    "status": "syncer.cli.status",
    "suspend": "syncer.cli.apps",
    "sync": "syncer.cli.sync",
}


class _Group(click.Group):
    """Loads command modules lazily, and turns expected failures (SyncerError) into a
    message on stderr and their exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _COMMAND_MODULES:
            importlib.import_module(_COMMAND_MODULES[cmd_name])  # registers itself on `cli`
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SyncerError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(error.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncer")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """A declarative GitOps apply engine for Kubernetes."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main() -> None:
    cli(prog_name="syncer")
