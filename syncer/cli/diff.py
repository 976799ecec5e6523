"""`syncer diff`: what a sync would change, exactly. Exit 0 no changes, 1 changes, 2 error
(the `kubectl diff` convention), so CI can gate on it. Needs only read and dry-run access.
With --from and --to, what a change to the source changes, with no cluster at all
(`syncer.cli.revisiondiff`)."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import click

from syncer.cli import cli, verbosity
from syncer.cli.appselect import command_target
from syncer.cli.common import (
    app_options,
    cluster_options,
    dry_run_plan,
    live_capabilities,
    output_option,
    prune_options,
    resolve_namespace,
    with_prune_options,
)
from syncer.cli.options import render_from_options, source_options
from syncer.cli.revisiondiff import offline_diff
from syncer.cli.output import (
    diff_json,
    message_console,
    print_diff_text,
    print_document,
    result_console,
)


@cli.command("diff")
@source_options
@app_options
@cluster_options
@output_option
@click.option("--no-prune", "prune", flag_value=False, default=True,
              help="Do not show objects that a sync would prune.")
@click.option("--from", "from_revision", default=None, metavar="REV",
              help="With --to: compare the rendered path at two revisions (branch, tag or commit SHA), with no "
                   "cluster and no kubeconfig; instead of --revision, --working-tree and --app.")
@click.option("--to", "to_revision", default=None, metavar="REV", help="See --from.")
@prune_options
def diff_command(
    *, app: str | None, app_object: str | None, field_manager: str, concurrency: int, qps: float,
    ignore_file: str | None, kubeconfig: str | None, context: str | None, output: str, prune: bool,
    from_revision: str | None, to_revision: str | None, **source: Any,
) -> None:
    """Show what `syncer sync` would change: a three-way diff of Git, the live cluster and what
    syncer applied last. Secret values are never shown. With --app, what the daemon's next
    sync of that App would change, seen with the App's service account. With --from and --to,
    what changes between two revisions of the source, object by object, without a cluster."""
    if from_revision is not None or to_revision is not None:
        offline_diff(source, app=app, from_revision=from_revision, to_revision=to_revision, output=output,
                     prune=prune)
        return
    namespace_from = resolve_namespace(source, kubeconfig=kubeconfig, context=context)
    rendering: list[str] = []
    with command_target(source, app=app, app_object=app_object, field_manager=field_manager, ignore_file=ignore_file,
                        kubeconfig=kubeconfig, context=context) as target:
        snapshot, manifests = render_from_options(target.source, warnings=rendering, capabilities=live_capabilities(
            kubeconfig=kubeconfig, context=context, impersonate=target.impersonate))
    options = replace(with_prune_options(target.options, source), concurrency=concurrency,
                      prune=target.options.prune and prune, dry_run=True, diff_text=True)
    err = message_console()
    plan = dry_run_plan(manifests, options=options, revision=snapshot.revision, kubeconfig=kubeconfig,
                        context=context, qps=qps, impersonate=target.impersonate, err=err)
    plan = replace(plan, warnings=(*rendering, *plan.warnings))
    if output == "text":
        print_diff_text(plan, out=result_console(), err=err, namespace_from=namespace_from,
                        not_changes=verbosity(click.get_current_context()) > 0)
    else:
        print_document(diff_json(plan), output=output)
    sys.exit(1 if plan.has_changes else 0)
