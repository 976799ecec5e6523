"""Command-line options shared by every command that reads a source (render, diff, sync).

    @cli.command("diff")
    @source_options
    def diff_command(*, output: str, **source: Any) -> None:
        snapshot, manifests = render_from_options(source)

`source_options` adds plain click options (repo, revision, path, namespace, working_tree, cache_dir,
ssh_key, known_hosts, username, token_file, token_env); the command collects them with
`**source` and hands them to `render_from_options` or `source_from_options`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from syncer.errors import ConfigError
from syncer.model import Manifest
from syncer.sources import GitAuth, RenderLimits, Snapshot, Source, open_source, render, uncommitted_changes

R = TypeVar("R")

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class SourceOptions:
    """The parsed source options: where the configuration is and how to render it."""

    repo: str = "."
    revision: str | None = None
    path: str = "."
    namespace: str = "default"
    cache_dir: Path | None = None
    auth: GitAuth = GitAuth()
    working_tree: bool = False

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> SourceOptions:
        """From the keyword arguments `source_options` gives a command (others are ignored)."""
        namespace = values.get("namespace") or "default"
        if not _NAMESPACE.fullmatch(namespace):
            raise ConfigError(f"--namespace {namespace!r}: not a valid namespace name (lower-case DNS label)")
        return cls(
            repo=values.get("repo") or ".",
            revision=values.get("revision"),
            path=values.get("path") or ".",
            namespace=namespace,
            cache_dir=values.get("cache_dir"),
            working_tree=bool(values.get("working_tree")),
            auth=GitAuth(
                ssh_key_file=values.get("ssh_key"),
                known_hosts_file=values.get("known_hosts"),
                username=values.get("username"),
                token_file=values.get("token_file"),
                token_env=values.get("token_env"),
            ),
        )

    def open(self) -> Source:
        """The Source (nothing is fetched yet); the daemon keeps it to poll remote_revision()."""
        return open_source(self.repo, revision=self.revision, cache_dir=self.cache_dir, auth=self.auth,
                           working_tree=self.working_tree)

    def uncommitted_changes(self) -> list[str]:
        """Edits on disk that the source will not see: a local checkout read at its HEAD."""
        local = Path(self.repo).expanduser()
        if self.working_tree or self.revision is not None or "://" in self.repo or not local.is_dir():
            return []
        return uncommitted_changes(local, self.path)


def source_from_options(values: Mapping[str, Any] | SourceOptions) -> Source:
    """The Source named by the parsed options; nothing is fetched yet."""
    return _options(values).open()


def render_from_options(
    values: Mapping[str, Any] | SourceOptions,
    *,
    limits: RenderLimits = RenderLimits(),
) -> tuple[Snapshot, list[Manifest]]:
    """Fetch the source the options name and render their path: the start of every command."""
    options = _options(values)
    dirty = options.uncommitted_changes()
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        click.echo(f"warning: {options.repo} has uncommitted changes ({shown}); syncer reads its last commit. "
                   "Pass --working-tree to use the files on disk.", err=True)
    snapshot = options.open().fetch()
    return snapshot, render(snapshot, options.path, namespace=options.namespace, limits=limits)


def _options(values: Mapping[str, Any] | SourceOptions) -> SourceOptions:
    return values if isinstance(values, SourceOptions) else SourceOptions.from_values(values)


_OPTIONS = [
    click.option("--repo", default=".", show_default=True, metavar="URL|DIR",
                 help="Git repository (https://, ssh://, git@host:path, file://, or a local "
                      "repository) or a plain directory."),
    click.option("--revision", default=None, metavar="REF",
                 help="Branch, tag or commit SHA. Default: the remote's default branch."),
    click.option("--path", default=".", show_default=True,
                 help="Directory or file inside the repository to render."),
    click.option("-n", "--namespace", default=None,
                 help="Namespace for namespaced objects that do not name one, and of the app's inventory "
                      "(default: the kubeconfig context's namespace, else default)."),
    click.option("--working-tree", is_flag=True,
                 help="Read a local Git checkout's files as they are on disk, uncommitted edits included "
                      "(default: its last commit)."),
    click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 envvar="SYNCER_CACHE_DIR", help="Where Git clones are cached. Default: ~/.cache/syncer/repos."),
    click.option("--ssh-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Private key for ssh repositories."),
    click.option("--known-hosts", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="known_hosts file for ssh (default ~/.ssh/known_hosts); unknown hosts are refused."),
    click.option("--username", default=None, help="User name for https repositories (with a token)."),
    click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="File holding the https token or password."),
    click.option("--token-env", default=None, metavar="VAR",
                 help="Name of an environment variable holding the https token or password."),
]  # fmt: skip


def source_options(command: Callable[..., R]) -> Callable[..., R]:
    """Add the source options to a click command, as keyword arguments named like the options."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command
