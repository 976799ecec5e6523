"""The `syncer` command line. Thin: each command wires pipeline stages together and turns
their results into output and an exit code. One module per command."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from syncer import __version__
from syncer.errors import SyncerError


class _Group(click.Group):
    """Turns expected failures (SyncerError) into a message on stderr and their exit code."""

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


# The command modules register themselves on `cli`, so they are imported after it exists.
from syncer.cli import devcluster, diff, render, run, status, sync  # noqa: E402, F401
