"""Command-line options shared by every command that reads a source (render, diff, sync).

    @cli.command("diff")
    @source_options
    def diff_command(*, output: str, **source: Any) -> None:
        snapshot, manifests = render_from_options(source)

`source_options` adds plain click options (repo, revision, path, namespace, create_namespace,
working_tree, cache_dir, ssh_key, known_hosts, username, token_file, token_env, a chart's
helm_values, helm_set, release_name, kube_version and api_versions, and the render's bounds
max_render_bytes, max_objects and helm_allow_host, which `syncer run` shares through
`limit_options`); the
command collects them with `**source` and hands them to `render_from_options` or `source_from_options`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from syncer.sources.limits import BYTES_FLAG, OBJECTS_FLAG

from syncer.errors import ConfigError
from syncer.model import Manifest
from syncer.sources import (
    GitAuth,
    HelmSettings,
    RenderLimits,
    Snapshot,
    Source,
    open_source,
    render,
    runs_helm,
    uncommitted_changes,
    with_created_namespace,
)
from syncer.sources import sops
from syncer.sources.sops import AgeIdentities
from syncer.sources.helm import with_capabilities

Capabilities = Callable[[], tuple[tuple[int, int, int] | None, tuple[str, ...]]]
"""The live server's version and group-versions, asked only when a chart is rendered."""

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
    create_namespace: bool = False
    """Add the Namespace `namespace` to the render when the manifests do not define it."""
    limits: RenderLimits = RenderLimits()
    helm: HelmSettings = HelmSettings()
    age_key_files: tuple[Path, ...] = ()
    """Files of age identities that decrypt the SOPS-encrypted documents of the render."""
    decryption: AgeIdentities | None = None
    """Age identities read already (an App's `spec.decryption`); the key files are not read then."""

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
            create_namespace=bool(values.get("create_namespace")),
            limits=render_limits(values),
            helm=helm_settings(values),
            age_key_files=tuple(values.get("sops_age_key_file") or ()),
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

    def age_identities(self) -> AgeIdentities | None:
        if self.decryption is not None or not self.age_key_files:
            return self.decryption
        texts = []
        for path in self.age_key_files:
            try:
                texts.append(path.expanduser().read_text())
            except OSError as error:
                raise ConfigError(f"--sops-age-key-file {path}: {error.strerror}") from None
        return AgeIdentities.from_texts(texts, source=", ".join(str(path) for path in self.age_key_files))

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
    values: Mapping[str, Any] | SourceOptions, *, capabilities: Capabilities | None = None,
    warnings: list[str] | None = None,
) -> tuple[Snapshot, list[Manifest]]:
    """Fetch the source the options name and render their path: the start of every command.
    A chart is rendered with the capabilities of the cluster `capabilities` reads (diff and
    sync), else with those the flags give (render). What the render left out (Helm hooks) is
    added to `warnings` for the command's result to carry, or without it, said on stderr."""
    options = _options(values)
    dirty = options.uncommitted_changes()
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        click.echo(f"warning: {options.repo} has uncommitted changes ({shown}); syncer reads its last commit. "
                   "Pass --working-tree to use the files on disk.", err=True)
    snapshot = options.open().fetch()
    return snapshot, render_snapshot(options, snapshot, capabilities=capabilities, warnings=warnings)


def render_snapshot(
    options: SourceOptions, snapshot: Snapshot, *, capabilities: Capabilities | None = None,
    warnings: list[str] | None = None, keep_encrypted: bool = False,
) -> list[Manifest]:
    """The manifests of the options' path in `snapshot`, as `render_from_options` renders them.
    With `keep_encrypted` and no age identities, SOPS-encrypted documents stay as written
    instead of being refused: the offline diff compares them encrypted."""
    settings = options.helm
    if capabilities is not None and runs_helm(snapshot, options.path):
        version, api_versions = capabilities()
        settings = with_capabilities(settings, version=version, api_versions=api_versions)
    found: list[str] = []
    manifests = render(snapshot, options.path, namespace=options.namespace, limits=options.limits,
                       helm_settings=settings, warnings=found)
    if warnings is not None:
        warnings.extend(found)
    for warning in found if warnings is None else ():
        click.echo(f"warning: {warning}", err=True)
    identities = options.age_identities()
    if identities or not keep_encrypted:
        manifests = sops.decrypt(manifests, identities=identities)
    if options.create_namespace:
        manifests = with_created_namespace(manifests, options.namespace)
    return manifests


def render_limits(values: Mapping[str, Any]) -> RenderLimits:
    """The render's bounds from the options `limit_options` adds (defaults where absent)."""
    defaults = RenderLimits()
    return RenderLimits(max_total_bytes=values.get("max_render_bytes") or defaults.max_total_bytes,
                        max_objects=values.get("max_objects") or defaults.max_objects,
                        helm_hosts=tuple(values.get("helm_allow_host") or ()))


_KUBE_VERSION = re.compile(r"v?\d+\.\d+(\.\d+)?")


def helm_settings(values: Mapping[str, Any]) -> HelmSettings:
    """A chart's settings from the options `source_options` adds."""
    kube_version = values.get("kube_version")
    if kube_version is not None and not _KUBE_VERSION.fullmatch(kube_version):
        raise ConfigError(f"--kube-version {kube_version!r}: not a Kubernetes version (1.30 or v1.30.2)")
    for assignment in values.get("helm_set") or ():
        if "=" not in assignment:
            raise ConfigError(f"--helm-set {assignment!r}: expected KEY=VALUE")
    return HelmSettings(release_name=values.get("release_name") or None,
                        values_files=tuple(values.get("helm_values") or ()),
                        set_values=tuple(values.get("helm_set") or ()), kube_version=kube_version,
                        api_versions=tuple(values.get("api_versions") or ()))


_SIZE = re.compile(r"(\d+)(Ki|Mi|Gi|k|K|M|G)?")
_UNITS = {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3}


def parse_size(text: str) -> int:
    """Bytes as Kubernetes writes a quantity of memory: `64Mi`, `100M`, `1Gi`, or plain bytes."""
    found = _SIZE.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a size: use bytes or a quantity such as 64Mi, 100M or 1Gi")
    return int(found.group(1)) * _UNITS[found.group(2)]


class ByteSize(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            size = parse_size(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)
        if size < 1:
            self.fail("must be at least 1 byte", param, ctx)
        return size


_LIMIT_OPTIONS = [
    click.option(BYTES_FLAG, "max_render_bytes", type=ByteSize(), default="64Mi", show_default=True,
                 help="Per app: refuse a render of more than this many bytes of manifests (files read plus Kustomize "
                      "output: 64Mi, 100M, 1Gi or plain bytes), counted before anything more is read."),
    click.option(OBJECTS_FLAG, "max_objects", type=click.IntRange(min=1), default=RenderLimits.max_objects,
                 show_default=True, help="Per app: refuse a render of more than this many objects (List items count), "
                                         "counted while the files are read."),
    click.option("--helm-allow-host", "helm_allow_host", multiple=True, metavar="HOST",
                 help="A chart repository or OCI registry host (HOST or HOST:PORT) that a chart's dependencies which "
                      "are not vendored in charts/ may be downloaded from (repeatable; default none)."),
]  # fmt: skip


def limit_options(command: Callable[..., R]) -> Callable[..., R]:
    """The render's bounds: on every command that renders, and on `syncer run` (per app)."""
    for option in reversed(_LIMIT_OPTIONS):
        command = option(command)
    return command


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
    click.option("--create-namespace", is_flag=True, default=False,
                 help="Create the --namespace (as part of the app, pruned with it) when the "
                      "manifests do not define it."),
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
    click.option("--helm-values", "helm_values", multiple=True, metavar="FILE",
                 help="A Helm chart's values file in the repository, relative to the chart (repeatable, in order)."),
    click.option("--helm-set", "helm_set", multiple=True, metavar="KEY=VALUE",
                 help="A Helm chart value, as helm's --set (repeatable; applied after the values files)."),
    click.option("--release-name", default=None,
                 help="A Helm chart's release name (default: the app's --name, else the chart's name)."),
    click.option("--kube-version", default=None, metavar="VERSION",
                 help="The Kubernetes version a Helm chart is rendered for (default: the cluster's; without one, "
                      "helm's default)."),
    click.option("--api-versions", "api_versions", multiple=True, metavar="GROUP/VERSION",
                 help="API versions a Helm chart sees as served (repeatable; default: the cluster's)."),
    click.option("--sops-age-key-file", type=click.Path(dir_okay=False, path_type=Path), multiple=True,
                 envvar="SOPS_AGE_KEY_FILE", metavar="FILE",
                 help="age identities (as age-keygen writes them) that decrypt SOPS-encrypted manifests, in "
                      "memory; repeatable. Default: $SOPS_AGE_KEY_FILE."),
]  # fmt: skip


def source_options(command: Callable[..., R]) -> Callable[..., R]:
    """Add the source options to a click command, as keyword arguments named like the options."""
    for option in reversed([*_OPTIONS, *_LIMIT_OPTIONS]):
        command = option(command)
    return command
