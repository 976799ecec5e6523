"""`syncer install`: put syncer's daemon into a cluster, or print what that takes (`--export`).

One source of truth: the Helm chart `charts/syncer`. Its default render (`helm template
syncer charts/syncer --namespace syncer-system --include-crds`, by the pinned helm) is
shipped in this package as `install.yaml`, written by `scripts/render-install` and held
byte-identical to a fresh render by `tests/unit/test_chart.py`; no helm is needed at install
time. Each option of this command is one value of the chart, applied to that render as a
small edit of plain data per object (`InstallOptions.edit`), and the same test renders the
chart with those values and requires the same objects, so the two cannot drift apart:

    --namespace NS          helm's --namespace (the release namespace)
    --image REF             image.repository and image.tag
    --replicas N            replicas
    --shard                 sharding.enabled=true
    --watch-namespace NS    watchNamespaces
    --arg ARG               extraArgs
    --no-watch-cache        rbac.watchCache=false

The objects are applied by `syncer sync`'s own path (`syncer.cli.sync.run_sync`): the app
`syncer` with its inventory (ConfigMap `syncer-syncer`) and lock in NS, the namespace created
as `--create-namespace` creates it, so installing again with fewer options prunes what they
added, and an install that changes nothing writes nothing.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from typing import Any

import click

from syncer import __version__
from syncer.apply import SyncOptions
from syncer.cli import cli
from syncer.cli.common import Duration, cluster_options, output_option
from syncer.cli.render import dump_yaml
from syncer.cli.sync import run_sync
from syncer.config import _dns_label
from syncer.errors import ConfigError
from syncer.model import Manifest, Object, Origin
from syncer.sources import RenderLimits, with_created_namespace
from syncer.sources.limits import Budget
from syncer.sources.yamlload import Document, load_yaml

RENDER_FILE = "install.yaml"
"""The chart's default render, package data of syncer.cli (scripts/render-install)."""
RENDER_ORIGIN = f"syncer/cli/{RENDER_FILE}"
"""Where messages say an object comes from."""
DEFAULT_NAMESPACE = "syncer-system"
"""The release namespace of that render."""
APP = "syncer"
"""The install's app name: its inventory is the ConfigMap syncer-syncer in the namespace."""
WATCH_CACHE_ROLE = "syncer-watch"
"""The ClusterRole (and its binding) of the chart's rbac.watchCache."""


@dataclass(frozen=True)
class InstallOptions:
    """What `syncer install` may change of the chart's default render: each field is one chart
    value (the module's docstring maps them)."""

    namespace: str = DEFAULT_NAMESPACE
    image: str | None = None
    replicas: int | None = None
    shard: bool = False
    watch_namespaces: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    watch_cache: bool = True

    def edit(self, obj: Object) -> Object | None:
        """One object of the default render with these options' values (None: left out)."""
        if not self.watch_cache and _is_watch_cache_rbac(obj):
            return None
        return _edit_deployment(_in_namespace(obj, self.namespace), self)


def default_render() -> list[Document]:
    """The chart's default render, read by the sources' loader (so each object knows its line)."""
    data = importlib.resources.files("syncer.cli").joinpath(RENDER_FILE).read_bytes()
    documents, problems = load_yaml(data, file=RENDER_ORIGIN, budget=Budget(RenderLimits()))
    if problems:  # the tests render and read it: only a damaged installation gets here
        raise ConfigError(f"{RENDER_ORIGIN}: {'; '.join(str(problem) for problem in problems)}; reinstall syncer")
    return documents


def install_manifests(options: InstallOptions) -> list[Manifest]:
    """The objects `syncer install` applies: the Namespace, then the edited render."""
    manifests = [Manifest(obj=edited, origin=Origin(RENDER_ORIGIN, document=document.index, line=document.line))
                 for document in default_render() if (edited := options.edit(document.obj)) is not None]
    return with_created_namespace(manifests, options.namespace)


def _is_watch_cache_rbac(obj: Object) -> bool:
    return obj["kind"] in ("ClusterRole", "ClusterRoleBinding") and obj["metadata"]["name"] == WATCH_CACHE_ROLE


def _in_namespace(obj: Object, namespace: str) -> Object:
    """The release namespace moved: the namespaced objects' own, and the daemon's account's in
    the bindings' subjects."""
    if namespace == DEFAULT_NAMESPACE:
        return obj
    metadata = obj["metadata"]
    moved: Object = {**obj}
    if metadata.get("namespace") == DEFAULT_NAMESPACE:
        moved["metadata"] = {**metadata, "namespace": namespace}
    if "subjects" in obj:
        moved["subjects"] = [
            {**subject, "namespace": namespace}
            if subject.get("kind") == "ServiceAccount" and subject.get("namespace") == DEFAULT_NAMESPACE else subject
            for subject in obj["subjects"]
        ]
    return moved


def _edit_deployment(obj: Object, options: InstallOptions) -> Object:
    """Image, replicas and `syncer run`'s arguments, as the chart's deployment template sets
    them: --shard instead of --leader-elect, then each --watch-namespace, then the extra
    arguments, after the chart's own."""
    if obj["kind"] != "Deployment":
        return obj
    spec = obj["spec"]
    pod = spec["template"]["spec"]
    container = {**pod["containers"][0]}
    if options.image is not None:
        container["image"] = options.image
    args = ["--shard" if options.shard and arg == "--leader-elect" else arg for arg in container["args"]]
    args += [f"--watch-namespace={namespace}" for namespace in options.watch_namespaces]
    container["args"] = [*args, *options.extra_args]
    pod = {**pod, "containers": [container, *pod["containers"][1:]]}
    spec = {**spec, "template": {**spec["template"], "spec": pod}}
    if options.replicas is not None:
        spec["replicas"] = options.replicas
    return {**obj, "spec": spec}


def _namespace_name(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    names = value if isinstance(value, tuple) else (value,)
    for name in names:
        try:
            _dns_label(name)
        except ValueError as error:
            raise click.BadParameter(str(error), ctx=ctx, param=param) from error
    return value


def _image(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and (not value or any(c.isspace() for c in value) or value.startswith(("-", ":", "@"))):
        raise click.BadParameter(f"{value!r} is not an image reference (e.g. registry.example.com/syncer:"
                                 f"{__version__})", ctx=ctx, param=param)
    return value


def _daemon_args(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    """Refused now, not by a crash-looping pod: arguments `syncer run` would not accept."""
    if value:
        from syncer.cli.run import run_command

        shown = " ".join(value)
        if {"-h", "--help"} & set(value):
            raise click.BadParameter(f"{shown}: help is not an argument of the daemon", ctx=ctx, param=param)
        try:
            run_command.make_context("run", list(value))
        except click.UsageError as error:
            raise click.BadParameter(f"syncer run would refuse {shown}: {error.format_message()}",
                                     ctx=ctx, param=param) from error
    return value


@cli.command("install")
@cluster_options
@output_option
@click.option("--export", is_flag=True, help="Print the objects as YAML on stdout instead of applying them.")
@click.option("-n", "--namespace", default=DEFAULT_NAMESPACE, show_default=True, callback=_namespace_name,
              help="The namespace of the daemon, its Leases and the install's inventory (created if missing).")
@click.option("--image", default=None, callback=_image, metavar="REF",
              help=f"The syncer image (default: syncer:{__version__}; build it from the Dockerfile).")
@click.option("--replicas", type=click.IntRange(min=1), default=None, help="Replicas of the daemon (default: 2).")
@click.option("--shard", is_flag=True, help="The replicas share the Apps (syncer run --shard) instead of "
                                            "electing a leader.")
@click.option("--watch-namespace", "watch_namespaces", multiple=True, callback=_namespace_name, metavar="NS",
              help="Serve only the Apps of this namespace (repeatable; default: every namespace).")
@click.option("--arg", "extra_args", multiple=True, callback=_daemon_args, metavar="ARG",
              help="One more argument of `syncer run`, e.g. --arg=--lease-duration=30s (repeatable).")
@click.option("--no-watch-cache", "watch_cache", flag_value=False, default=True,
              help="Leave out the read-only list/watch of every kind (the ClusterRole syncer-watch): each sync "
                   "then lists its objects as the App's service account.")
@click.option("--dry-run", is_flag=True, help="Run everything server-side with dryRun=All; change nothing.")
@click.option("--wait", is_flag=True, help="Wait until the Deployment (and every object) is healthy.")
@click.option("--timeout", type=Duration(minimum=1), default="5m", show_default=True,
              help="How long --wait waits, and the CRD may take to be Established.")
@click.option("--show-unchanged", "verbose", is_flag=True, help="List unchanged objects too.")
def install_command(
    *, export: bool, namespace: str, image: str | None, replicas: int | None, shard: bool,
    watch_namespaces: tuple[str, ...], extra_args: tuple[str, ...], watch_cache: bool, dry_run: bool, wait: bool,
    timeout: float, verbose: bool, kubeconfig: str | None, context: str | None, output: str, request_timeout: float,
) -> None:
    """Install syncer's daemon (the App CRD, RBAC, Deployment and Service of the chart
    charts/syncer) into the cluster, or print it with --export. Installing again applies the
    difference and prunes what the options no longer ask for."""
    options = InstallOptions(namespace=namespace, image=image, replicas=replicas, shard=shard,
                             watch_namespaces=watch_namespaces, extra_args=extra_args, watch_cache=watch_cache)
    if export and output != "text":
        raise click.UsageError("--export prints the objects as YAML; -o is the format of an install's result")
    manifests = install_manifests(options)
    if export:
        click.echo(dump_yaml([manifest.obj for manifest in manifests]), nl=False)
        return
    sync_options = SyncOptions(app=APP, namespace=namespace, dry_run=dry_run, wait=wait, timeout=timeout,
                               diff_text=False)
    run_sync(manifests, options=sync_options, revision=f"v{__version__}", kubeconfig=kubeconfig, context=context,
             qps=1000, impersonate=None, output=output, namespace_from="", verbose=verbose)
