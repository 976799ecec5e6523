"""Options shared by the commands that talk to a cluster (`diff`, `sync`, `status`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from rich.console import Console

from syncer.apply.options import DEFAULT_FIELD_MANAGER, SyncOptions
from syncer.apply.planned import Plan
from syncer.cli import OUTPUT_KEY
from syncer.config import MAX_DURATION, DurationBounds, format_duration, parse_duration
from syncer.diff import IgnoreRule, parse_ignore_rules
from syncer.errors import ConfigError
from syncer.kube import ClientOptions, Kube, current_context, default_namespace
from syncer.model import Manifest, parse_confirmation, parse_prune_budget

F = TypeVar("F", bound=Callable[..., Any])


DEFAULT_REQUEST_TIMEOUT = ClientOptions.request_timeout


def cluster_options(fn: F) -> F:
    """--kubeconfig, --context (in a pod with neither, the pod's service account is used) and
    --request-timeout."""
    fn = click.option(
        "--request-timeout", type=Duration(minimum=1), default=format_duration(DEFAULT_REQUEST_TIMEOUT),
        show_default=True, envvar="SYNCER_REQUEST_TIMEOUT",
        help="How long one API request may take, retries included (30s, 1m, or plain seconds); a hung API "
             "server fails within this.",
    )(fn)
    fn = click.option("--context", default=None, help="Kubeconfig context (default: the current one).")(fn)
    fn = click.option(
        "--kubeconfig", type=click.Path(dir_okay=False), default=None, envvar="KUBECONFIG",
        help="Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).",
    )(fn)
    return fn


def app_options(fn: F) -> F:
    """--name or --app, --field-manager, --concurrency, --qps and --ignore-differences."""
    fn = click.option(
        "--ignore-differences", "ignore_file", type=click.Path(exists=True, dir_okay=False), default=None,
        help="YAML list of rules (Argo CD's ignoreDifferences format) for fields left out of the comparison.",
    )(fn)
    fn = click.option("--qps", type=click.FloatRange(min=0), default=1000, show_default=True,
                      help="Requests per second at most (0: no limit).")(fn)
    fn = click.option("--concurrency", type=click.IntRange(1, 256), default=16, show_default=True,
                      help="Requests in flight at once.")(fn)
    fn = click.option("--field-manager", default=DEFAULT_FIELD_MANAGER, show_default=True,
                      help="Server-side apply field manager; the default is `syncer run`'s too, so that a sync by "
                           "hand and the daemon own the same fields.")(fn)
    fn = click.option("--app", "app_object", default=None, metavar="NAME",
                      help="Act on what the App object NAME in --namespace syncs: its repo, revision, path, "
                           "targetNamespace, ignoreDifferences, prune, wait and timeout, its Git credentials "
                           "(secretRef), and every request as its serviceAccountName. Replaces --repo, --path and "
                           "--name; --revision still overrides the App's (to see a branch before it is merged).")(fn)
    fn = click.option("--name", "app", default=None,
                      help="The app's name: names its ApplySet inventory and lock (or --app).")(fn)
    return fn


class _Parsed(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A flag's value through the parser an app's spec uses too (its ValueError is the message)."""

    def __init__(self, name: str, parse: Callable[[str], object]) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value  # converted already
        try:
            return self._parse(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def prune_options(fn: F) -> F:
    """--confirm-prune, --max-prune and --confirm-prune-all: what prune may delete, for every
    command that plans a sync (`with_prune_options` puts them into its SyncOptions)."""
    fn = click.option("--confirm-prune-all", is_flag=True,
                      help="Let this sync past the prune budget (protected kinds still need --confirm-prune).")(fn)
    fn = click.option("--max-prune", type=_Parsed("N|P%", parse_prune_budget), default=None,
                      help="The prune budget: a sync that would delete more of the app's members than N objects or "
                           "P% of them stops before its first write (default 50%; a percentage never stops fewer "
                           "than 5 deletions); with --app, the App's spec.maxPrune unless given.")(fn)
    fn = click.option("--confirm-prune", "confirm_prune", type=_Parsed("KIND/NAME", parse_confirmation),
                      multiple=True, metavar="KIND/NAME",
                      help="Let prune delete this Namespace, CustomResourceDefinition, PersistentVolume "
                           "(KIND/NAME) or PersistentVolumeClaim (KIND/NAMESPACE/NAME); repeatable. Without it "
                           "they are kept (protected).")(fn)
    return fn


def with_prune_options(options: SyncOptions, values: dict[str, Any]) -> SyncOptions:
    """The options with the prune flags of `prune_options` applied (and removed from `values`):
    confirmations add to the App's, --max-prune replaces its budget."""
    confirmations = tuple(values.pop("confirm_prune", None) or ())
    budget = values.pop("max_prune", None)
    return replace(options, confirm_prune=options.confirm_prune | frozenset(confirmations),
                   max_prune=budget if budget is not None else options.max_prune,
                   confirm_prune_all=bool(values.pop("confirm_prune_all", False)))


def _remember_output(ctx: click.Context, param: click.Parameter, value: str) -> str:
    ctx.meta[OUTPUT_KEY] = value
    return value


def output_option(fn: F) -> F:
    return click.option("-o", "--output", type=click.Choice(["text", "json", "yaml"]), default="text",
                        show_default=True, callback=_remember_output, is_eager=True,
                        help="The result on stdout: text for people, or a json|yaml document alone.")(fn)


class Duration(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """Every duration flag of every command: the format of the configuration file and the App
    spec (`90s`, `5m`, `1h30m`, or plain seconds `300`, as kubectl reads its durations), through
    the one parser, `parse_duration`. Its environment variables (SYNCER_REQUEST_TIMEOUT) too."""

    name = "duration"

    def __init__(self, *, minimum: float = 0.0, maximum: float = MAX_DURATION) -> None:
        self.bounds = DurationBounds(minimum=minimum, maximum=maximum)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value  # a default given in seconds, or a value converted already
        try:
            return parse_duration(value, allow_zero=self.bounds.minimum == 0, bounds=self.bounds)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def resolve_namespace(source: dict[str, Any], *, kubeconfig: str | None, context: str | None) -> str:
    """Fill in --namespace as kubectl does when it is not given: the context's namespace (or
    the pod's own), else `default`. Returns where it came from, for the output ("" when given)."""
    if source.get("namespace"):
        return ""
    source["namespace"], origin = default_namespace(ClientOptions(kubeconfig=kubeconfig, context=context))
    return origin


def connect(
    *, kubeconfig: str | None, context: str | None, concurrency: int = 16, qps: float | None = None,
    request_timeout: float | None = None, impersonate: str | None = None,
) -> Kube:
    """The cluster client of a command. Without `request_timeout`, the running command's
    --request-timeout is used (`diff` and `sync` receive it among their source options).
    `impersonate`: every request is made as this user, as with `kubectl --as`."""
    if request_timeout is None:
        click_context = click.get_current_context(silent=True)
        given = click_context.params.get("request_timeout") if click_context is not None else None
        request_timeout = float(given) if given is not None else DEFAULT_REQUEST_TIMEOUT
    options = ClientOptions(kubeconfig=kubeconfig, context=context, pool_size=max(concurrency, 4) * 2,
                            request_timeout=request_timeout, impersonate=impersonate)
    if qps is not None:
        options = replace(options, qps=qps, burst=max(1, int(qps)))
    return Kube.connect(options)


def cli_user(*, kubeconfig: str | None, context: str | None) -> str:
    """Who runs the command, for the sync history: the kubeconfig context's user entry (read
    from the file, no request), or the pod's service account in a cluster."""
    found = current_context(ClientOptions(kubeconfig=kubeconfig, context=context))
    return found.user if found is not None else "the pod's service account"


def live_capabilities(
    *, kubeconfig: str | None, context: str | None, impersonate: str | None,
) -> Callable[[], tuple[tuple[int, int, int] | None, tuple[str, ...]]]:
    """Reads the server's version and group-versions, for rendering a chart as Argo CD does
    (`.Capabilities`); asked only when the path is a chart."""
    def read() -> tuple[tuple[int, int, int] | None, tuple[str, ...]]:
        kube = connect(kubeconfig=kubeconfig, context=context, impersonate=impersonate)
        try:
            return kube.server_version(), kube.served_group_versions()
        finally:
            kube.close()

    return read


def dry_run_plan(
    manifests: Sequence[Manifest], *, options: SyncOptions, revision: str, kubeconfig: str | None,
    context: str | None, qps: float, impersonate: str | None, err: Console,
) -> Plan:
    """The plan `diff` prints and `plan` records (options with dry_run), with progress on `err`."""
    from syncer.apply import plan_sync
    from syncer.cli.output import StepProgress

    progress = StepProgress(err, total=len(manifests), label="checking")
    kube = connect(kubeconfig=kubeconfig, context=context, concurrency=options.concurrency, qps=qps,
                   impersonate=impersonate)
    try:
        with progress.running(kube.stats):
            return plan_sync(kube, manifests, options=options, revision=revision)
    finally:
        kube.close()


def load_ignore_rules(path: str | None) -> tuple[IgnoreRule, ...]:
    if not path:
        return ()
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read ignore rules: {error}") from error
    if isinstance(raw, dict):
        raw = raw.get("ignoreDifferences", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: expected a list of ignore rules (or a mapping with ignoreDifferences)")
    return tuple(parse_ignore_rules(raw, where=path))
