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

VERBOSE_KEY = "syncer.verbose"
OUTPUT_KEY = "syncer.output"
"""ctx.meta keys (shared by every context of one invocation): the -v count so far, and the
-o format, so that an error in `-o json|yaml` mode is a document on stdout too."""

# Each command's module, imported only when the command runs (or help lists it): a sync
# should not pay for importing the daemon's scheduler or the control plane's code.
_COMMAND_MODULES = {
    "apply": "syncer.cli.applyplan",
    "approve": "syncer.cli.apps",
    "completion": "syncer.cli.completion",
    "dev-cluster": "syncer.cli.devcluster",
    "diff": "syncer.cli.diff",
    "history": "syncer.cli.history",
    "install": "syncer.cli.install",
    "plan": "syncer.cli.plan",
    "reconcile": "syncer.cli.apps",
    "render": "syncer.cli.render",
    "resume": "syncer.cli.apps",
    "rollback": "syncer.cli.rollback",
    "run": "syncer.cli.run",
    "status": "syncer.cli.status",
    "suspend": "syncer.cli.apps",
    "sync": "syncer.cli.sync",
    "version": "syncer.cli.version",
}


def configure_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)


def verbosity(ctx: click.Context) -> int:
    """How many -v were given, before and after the command name."""
    return int(ctx.meta.get(VERBOSE_KEY, 0))


def _add_verbosity(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value:
        ctx.meta[VERBOSE_KEY] = verbosity(ctx) + value
        configure_logging(verbosity(ctx))
    return value


def _verbose_option() -> click.Option:
    return click.Option(["-v", "--verbose", "log_verbosity"], count=True, expose_value=False, callback=_add_verbosity,
                        help="More log output (-v info, -vv debug); also before the command.")


def _with_verbose_option(command: click.Command) -> click.Command:
    """Every command takes -v, as kubectl's and flux's do after the command name."""
    if not any("-v" in param.opts for param in command.params):
        command.params.append(_verbose_option())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_verbose_option(sub)
    return command


class _Group(click.Group):
    """Loads command modules lazily, and turns expected failures (SyncerError) into a
    message on stderr (and a document on stdout in -o json|yaml mode) and their exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _COMMAND_MODULES:
            importlib.import_module(_COMMAND_MODULES[cmd_name])  # registers itself on `cli`
        command = super().get_command(ctx, cmd_name)
        return _with_verbose_option(command) if command is not None else None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SyncerError as error:
            click.echo(f"error: {error}", err=True)
            output = ctx.meta.get(OUTPUT_KEY, "text")
            if output != "text":
                from syncer.cli.output import error_document, print_document

                print_document(error_document(error), output=output)
            ctx.exit(error.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncer")
@click.option("-v", "--verbose", count=True, expose_value=False, callback=_add_verbosity,
              help="More log output (-v info, -vv debug); also after the command.")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """A declarative GitOps apply engine for Kubernetes."""
    if not verbosity(ctx):
        configure_logging(0)


def main() -> None:
    cli(prog_name="syncer")
