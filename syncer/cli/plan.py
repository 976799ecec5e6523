"""`syncer plan`: the plan a sync would execute, as a document to review and to apply exactly
(`syncer apply`). The same plan `diff` prints and `sync` executes (`plan_sync`), serialised
with what `apply` needs to render it again and to prove the cluster has not moved since.
Exit 0 no changes, 1 changes, 2 error, as `diff`."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import click

from syncer.apply import Plan
from syncer.apply.planfile import Context, now_text, plan_document, sign
from syncer.cli import OUTPUT_KEY, cli
from syncer.cli.appselect import Target, command_target
from syncer.cli.common import (
    app_options,
    cluster_options,
    connect,
    dry_run_plan,
    live_capabilities,
    prune_options,
    resolve_namespace,
    with_prune_options,
)
from syncer.cli.options import render_from_options, source_options
from syncer.cli.output import message_console, print_diff_text, print_document, result_console
from syncer.cli.planoutput import plan_markdown, read_key_file
from syncer.errors import ClusterError
from syncer.model import Manifest, parse_confirmation, parse_prune_budget

RECORDED_SOURCE = ("repo", "revision", "path", "namespace", "create_namespace", "working_tree", "helm_values",
                   "helm_set", "release_name", "kube_version", "api_versions", "max_render_bytes", "max_objects",
                   "helm_allow_host")
"""The source options a plan records, so that `apply` renders the same thing again. Credentials
(keys, tokens, age identities) and the clone cache are the applying machine's own."""


@dataclass(frozen=True)
class Cluster:
    uid: str
    """The kube-system namespace's uid: one per cluster, as Argo CD and others identify one."""
    version: str


def cluster_identity(*, kubeconfig: str | None, context: str | None) -> Cluster:
    """Read with the user's own rights (an App's identity need not read kube-system)."""
    kube = connect(kubeconfig=kubeconfig, context=context)
    try:
        namespace = kube.get(kube.resource_for("v1", "Namespace"), "kube-system")
        version = kube.server_version()
    finally:
        kube.close()
    if namespace is None:
        raise ClusterError("Namespace/kube-system", "not found: the cluster has no identity to record", status=404)
    return Cluster(uid=str(namespace["metadata"]["uid"]), version=".".join(map(str, version)) if version else "")


def render_target(
    target: Target, *, kubeconfig: str | None, context: str | None, rendering: list[str],
) -> tuple[str, list[Manifest]]:
    snapshot, manifests = render_from_options(target.source, warnings=rendering, capabilities=live_capabilities(
        kubeconfig=kubeconfig, context=context, impersonate=target.impersonate))
    return snapshot.revision, manifests


def recorded_source(
    source: dict[str, Any], *, app: str | None, app_object: str | None, field_manager: str,
    ignore_file: str | None, prune: bool,
) -> dict[str, Any]:
    """What the plan records of the command line: the selection, the render's options and
    the sync options that change the plan (prune's confirmations and budget as given)."""
    recorded = {key: source.get(key) for key in RECORDED_SOURCE}
    recorded = {key: list(value) if isinstance(value, tuple) else value for key, value in recorded.items()}
    budget = source.get("max_prune")
    return {**recorded, "name": app, "appObject": app_object, "fieldManager": field_manager,
            "ignoreDifferences": os.path.abspath(ignore_file) if ignore_file else None, "prune": prune,
            "confirmPrune": sorted(str(ref) for ref in source.get("confirm_prune") or ()),
            "maxPrune": str(budget) if budget is not None else None,
            "confirmPruneAll": bool(source.get("confirm_prune_all"))}


def recorded_prune_options(recorded: dict[str, Any]) -> dict[str, Any]:
    """The prune flags a plan recorded, as `with_prune_options` takes them."""
    budget = recorded.get("maxPrune")
    return {"confirm_prune": tuple(parse_confirmation(text) for text in recorded.get("confirmPrune") or ()),
            "max_prune": parse_prune_budget(budget) if budget is not None else None,
            "confirm_prune_all": bool(recorded.get("confirmPruneAll"))}


def _output_option(fn: Any) -> Any:
    def remember(ctx: click.Context, param: click.Parameter, value: str) -> str:
        ctx.meta[OUTPUT_KEY] = "text" if value == "markdown" else value  # an error is text then
        return value

    return click.option("-o", "--output", type=click.Choice(["text", "json", "yaml", "markdown"]), default="text",
                        show_default=True, callback=remember, is_eager=True,
                        help="text (like diff), the plan document as json|yaml (for `syncer apply`), or markdown "
                             "for a pull-request comment.")(fn)


@cli.command("plan")
@source_options
@app_options
@cluster_options
@_output_option
@click.option("--no-prune", "prune", flag_value=False, default=True, help="Plan no prune.")
@prune_options
@click.option("--plan-key-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Sign the plan with this key (HMAC-SHA256); `syncer apply --plan-key-file` then refuses an "
                   "altered plan.")
def plan_command(
    *, app: str | None, app_object: str | None, field_manager: str, concurrency: int, qps: float,
    ignore_file: str | None, kubeconfig: str | None, context: str | None, output: str, prune: bool,
    plan_key_file: str | None, **source: Any,
) -> None:
    """Plan a sync for review: every object's action and changed fields, the prune set, the
    cluster, and digests of the bodies (never the bodies). Save it with -o json and run it
    with `syncer apply`, which refuses it when the cluster has moved since."""
    key = read_key_file(plan_key_file)
    namespace_from = resolve_namespace(source, kubeconfig=kubeconfig, context=context)
    recorded = recorded_source(source, app=app, app_object=app_object, field_manager=field_manager,
                               ignore_file=ignore_file, prune=prune)
    rendering: list[str] = []
    with command_target(source, app=app, app_object=app_object, field_manager=field_manager, ignore_file=ignore_file,
                        kubeconfig=kubeconfig, context=context) as target:
        revision, manifests = render_target(target, kubeconfig=kubeconfig, context=context, rendering=rendering)
    cluster = cluster_identity(kubeconfig=kubeconfig, context=context)
    options = replace(with_prune_options(target.options, source), concurrency=concurrency,
                      prune=target.options.prune and prune, dry_run=True, diff_text=True)
    err = message_console()
    plan = dry_run_plan(manifests, options=options, revision=revision, kubeconfig=kubeconfig, context=context,
                        qps=qps, impersonate=target.impersonate, err=err)
    plan = replace(plan, warnings=(*rendering, *plan.warnings))
    context_of_plan = Context(source=recorded, cluster_uid=cluster.uid, server_version=cluster.version,
                              salt=os.urandom(16).hex(), created=now_text(datetime.now(timezone.utc)))
    document = plan_document(plan, manifests=manifests, context=context_of_plan)
    if key is not None:
        document = sign(document, key=key)
    if output == "markdown":
        click.echo(plan_markdown(document, diffs=_diffs(plan)), nl=False)
    elif output == "text":
        print_diff_text(plan, out=result_console(), err=err, namespace_from=namespace_from)
        click.echo(f"plan: digest {document['digest']}{' (signed)' if key else ''}; save it with -o json and run "
                   "it with `syncer apply`")
    else:
        print_document(document, output=output)
    sys.exit(1 if plan.has_changes else 0)


def _diffs(plan: Plan) -> dict[str, str]:
    return {str(diff.ref): diff.diff for diff in plan.diffs()}
