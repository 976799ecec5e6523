"""`syncer completion bash|zsh|fish`: the shell completion script, from click's own completion.

    source <(syncer completion bash)        # or put it in ~/.bashrc
    syncer completion fish > ~/.config/fish/completions/syncer.fish
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from syncer.cli import cli

COMPLETE_VAR = "_SYNCER_COMPLETE"
"""The variable click's completion protocol uses for a program named `syncer`."""


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_command(shell: str) -> None:
    """Print the completion script for SHELL on stdout (commands, options and choices)."""
    completion_class = get_completion_class(shell)
    if completion_class is None:  # click knows these three; the Choice above is the same list
        raise click.BadParameter(f"no completion for {shell}")
    click.echo(completion_class(cli, {}, "syncer", COMPLETE_VAR).source())
