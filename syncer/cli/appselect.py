"""`--app NAME -n NS`: act from the command line on what an App object syncs.

`syncer diff|sync|status --app NAME -n NS` read the App and take from it what the daemon
takes: repo, revision, path, targetNamespace, createNamespace, ignoreDifferences, prune,
wait, timeout, its Git credentials (`spec.secretRef`) and its identity
(`spec.serviceAccountName`, impersonated as `kubectl --as` does). Nothing is built twice: the
App is checked by the daemon's `app_spec`, its sync options come from `SyncOptions.for_app`
(the daemon's), and its Secret is read by the daemon's `git_auth`, with the App's identity.
So the inventory (ConfigMap `syncer-<name>` in the App's namespace), the namespace of the
objects, the ignored fields and the field manager are the daemon's, and a diff shows what the
daemon's next sync would do.

What differs, on purpose: the command runs with the rights of the user who runs it, on that
user's disk. A local path or `file://` repository is read from the user's disk (the daemon
refuses them without `--allow-local-repos`, since there they are the daemon's disk); an App
without a service account is acted on with the user's own rights (the daemon would use its
own); `spec.notification` is neither checked nor used (a command sends no notifications).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from syncer.apply import SyncOptions
from syncer.cli.common import connect, load_ignore_rules
from syncer.cli.options import SourceOptions
from syncer.config import AppConfig
from syncer.errors import ConfigError, Forbidden
from syncer.kube import Kube
from syncer.sources import GitAuth
from syncer.sources.sops import AgeIdentities

if TYPE_CHECKING:
    from syncer.daemon.appspec import AppSpec

# The daemon's modules are imported where an App is read: `diff` and `sync` without --app
# should not pay for importing the daemon (its package loads the scheduler and the metrics).

APP_REPLACES = {"repo": "--repo", "path": "--path", "app": "--name", "create_namespace": "--create-namespace",
                "ignore_file": "--ignore-differences", "helm_values": "--helm-values", "helm_set": "--helm-set",
                "release_name": "--release-name"}
"""What the App says, which the command line may not say too (parameter -> flag)."""
CREDENTIAL_FLAGS = {"ssh_key": "--ssh-key", "known_hosts": "--known-hosts", "username": "--username",
                    "token_file": "--token-file", "token_env": "--token-env"}
"""Git credentials on the command line: for an App without spec.secretRef only."""


@dataclass(frozen=True)
class Target:
    """What `diff` and `sync` act on, however it was selected: where the manifests come from,
    the app's sync options before the command's own flags, and as whom every request is made."""

    source: SourceOptions
    options: SyncOptions
    impersonate: str | None = None
    app: AppSpec | None = None
    """The App object it came from; None for `--name` and the source flags."""

    def flag_or_app(self, name: str, flag: Any, app: Any) -> Any:
        """The flag's value when it was given, or without an App; else what the App says."""
        return flag if self.app is None or given(name) else app


def given(name: str) -> bool:
    """Whether the running command's parameter `name` was given (command line or environment)."""
    source = click.get_current_context().get_parameter_source(name)
    return source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def check_selection(*, app: str | None, app_object: str | None) -> None:
    """`--app` replaces `--repo`, `--path` and `--name`; without it, `--name` is required."""
    if app_object is None:
        if not app:
            raise click.UsageError("Missing option '--name' (the app's name), or '--app' (an App object's name).")
        return
    clashing = [flag for name, flag in APP_REPLACES.items() if given(name)]
    if clashing:
        raise click.UsageError(f"--app {app_object} takes {', '.join(clashing)} from the App object; "
                               "give either --app or the flags")


@contextmanager
def command_target(
    source: Mapping[str, Any], *, app: str | None, app_object: str | None, field_manager: str,
    ignore_file: str | None, kubeconfig: str | None, context: str | None,
) -> Iterator[Target]:
    """The target of `diff` or `sync`: from the App `app_object` in `source["namespace"]`, or
    from the flags. The App's Git credentials (private files) exist until the block ends, so
    the source is fetched inside it."""
    check_selection(app=app, app_object=app_object)
    if app_object is None:
        assert app is not None
        yield Target(source=SourceOptions.from_values({**source, "release_name": source.get("release_name") or app}),
                     options=SyncOptions(app=app, namespace=source["namespace"], field_manager=field_manager,
                                         ignore=load_ignore_rules(ignore_file)))
        return
    user = connect(kubeconfig=kubeconfig, context=context)
    try:
        spec = load_app(user, namespace=source["namespace"], name=app_object)
        config = with_adoption(user, spec.config)
    finally:
        user.close()
    values = {**source, "repo": config.repo, "path": config.path, "namespace": config.namespace,
              "revision": source.get("revision") or config.revision, "create_namespace": config.create_namespace}
    options = SourceOptions.from_values(values)
    chart = replace(config.chart, kube_version=options.helm.kube_version, api_versions=options.helm.api_versions)
    if spec.values_from:
        chart = replace(chart, values=(*_values_from(spec, kubeconfig=kubeconfig, context=context), *chart.values))
    options = replace(options, helm=chart)
    if spec.decryption_secret is not None:
        options = replace(options, decryption=_decryption(spec, kubeconfig=kubeconfig, context=context))
    with tempfile.TemporaryDirectory(prefix="syncer-credentials-") as credentials:
        if spec.git_secret is not None:
            options = replace(options, auth=_secret_auth(spec, kubeconfig=kubeconfig, context=context,
                                                         directory=Path(credentials)))
        click.echo(f"{app_ref(spec)}: {describe_source(options)}"
                   + (f", as {spec.user}" if spec.user else ""), err=True)
        yield Target(source=options, app=spec, impersonate=spec.user,
                     options=SyncOptions.for_app(config, field_manager=field_manager,
                                                 lock_timeout=SyncOptions.lock_timeout))


def load_app(kube: Kube, *, namespace: str, name: str) -> AppSpec:
    """The App NAMESPACE/NAME, checked as the daemon checks it; ConfigError naming `App/NS/NAME`
    when there is none, InvalidApp listing every problem when it is invalid.

    The policy: the user's own disk is the user's to read (local repositories are allowed);
    whether an App must name a service account is the daemon operator's rule
    (`--require-service-account`), which a command cannot know."""
    from syncer.daemon.appclient import app_resource, subject
    from syncer.daemon.appspec import TenantPolicy, app_spec

    live = kube.get(app_resource(kube), name, namespace=namespace)
    if live is None:
        raise ConfigError(f"{subject(namespace, name)}: not found; -n names the App's namespace "
                          "(`kubectl get apps -A` lists every App)")
    spec = dict(live.get("spec") or {})
    spec.pop("notification", None)  # a command notifies no one; the daemon checks it with its own allow-list
    return app_spec({**live, "spec": spec}, policy=TenantPolicy(allow_local_repos=True))


def with_adoption(kube: Kube, config: AppConfig) -> AppConfig:
    """The App's config with the daemon's upgrade rule: an inventory from before an App was
    (namespace, name) is taken over from its target namespace, unless an App of the same name
    there owns it now (the daemon also leaves one in a namespace it does not watch, which a
    command cannot know; a user who cannot read Apps there takes nothing over)."""
    from syncer.daemon.appclient import app_resource

    if config.namespace == (config.home or config.namespace):
        return config
    try:
        namesake = kube.get(app_resource(kube), config.name, namespace=config.namespace)
    except Forbidden:
        return config
    return config if namesake is not None else replace(config, adopt_from=config.namespace)


def _secret_auth(spec: AppSpec, *, kubeconfig: str | None, context: str | None, directory: Path) -> GitAuth:
    """The App's Git credentials, read with its identity (as the daemon reads them)."""
    from syncer.daemon.appclient import git_auth

    clashing = [flag for name, flag in CREDENTIAL_FLAGS.items() if given(name)]
    if clashing:
        raise click.UsageError(f"{app_ref(spec)} takes its Git credentials from "
                               f"Secret {spec.git_secret} (spec.secretRef); drop {', '.join(clashing)}")
    assert spec.git_secret is not None
    kube = connect(kubeconfig=kubeconfig, context=context, impersonate=spec.user)
    try:
        return git_auth(kube, namespace=spec.app_namespace, secret=spec.git_secret, directory=directory)
    finally:
        kube.close()


def _values_from(spec: AppSpec, *, kubeconfig: str | None, context: str | None) -> tuple[str, ...]:
    """The chart values the App reads from its namespace, read with its identity (as the daemon)."""
    from syncer.daemon.appclient import helm_values

    kube = connect(kubeconfig=kubeconfig, context=context, impersonate=spec.user)
    try:
        return helm_values(kube, namespace=spec.app_namespace, references=spec.values_from)
    finally:
        kube.close()


def _decryption(spec: AppSpec, *, kubeconfig: str | None, context: str | None) -> AgeIdentities:
    """The App's age identities, read with its identity (as the daemon reads them)."""
    from syncer.daemon.appclient import age_identities

    # $SOPS_AGE_KEY_FILE, set for other work, gives way to the App's Secret; the flag is a clash.
    if click.get_current_context().get_parameter_source("sops_age_key_file") == ParameterSource.COMMANDLINE:
        raise click.UsageError(f"{app_ref(spec)} takes its age keys from Secret {spec.decryption_secret} "
                               "(spec.decryption.secretRef); drop --sops-age-key-file")
    assert spec.decryption_secret is not None
    kube = connect(kubeconfig=kubeconfig, context=context, impersonate=spec.user)
    try:
        return age_identities(kube, namespace=spec.app_namespace, secret=spec.decryption_secret)
    finally:
        kube.close()


def app_ref(spec: AppSpec) -> str:
    """`App/NAMESPACE/NAME`: how every message names the App."""
    from syncer.daemon.appclient import subject

    return subject(spec.app_namespace, spec.config.name)


def describe_source(options: SourceOptions) -> str:
    return (f"{options.repo} at {options.revision or 'its default branch'}, path {options.path}, "
            f"objects in namespace {options.namespace}")


def app_lines(spec: AppSpec) -> list[str]:
    """The App's side of `syncer status --app`: where its objects come from and go, and as whom."""
    config = spec.config
    return [
        f"Object:           {app_ref(spec)}",
        f"Source:           {config.repo} at {config.revision or 'its default branch'}, path {config.path}",
        f"Target namespace: {config.namespace}",
        f"Identity:         {spec.user or 'the user running syncer (no serviceAccountName)'}",
    ]
