"""`syncer diff`: what a sync would change, exactly. Exit 0 no changes, 1 changes, 2 error
(the `kubectl diff` convention), so CI can gate on it. Needs only read and dry-run access."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import click

from syncer.apply import plan_sync
from syncer.cli import cli, verbosity
from syncer.cli.appselect import command_target
from syncer.cli.common import (
    app_options,
    cluster_options,
    connect,
    live_capabilities,
    output_option,
    resolve_namespace,
)
from syncer.cli.options import render_from_options, source_options
from syncer.cli.output import (
    StepProgress,
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
def diff_command(
    *, app: str | None, app_object: str | None, field_manager: str, concurrency: int, qps: float,
    ignore_file: str | None, kubeconfig: str | None, context: str | None, output: str, prune: bool, **source: Any,
) -> None:
    """Show what `syncer sync` would change: a three-way diff of Git, the live cluster and what
    syncer applied last. Secret values are never shown. With --app, what the daemon's next
    sync of that App would change, seen with the App's service account."""
    namespace_from = resolve_namespace(source, kubeconfig=kubeconfig, context=context)
    rendering: list[str] = []
    with command_target(source, app=app, app_object=app_object, field_manager=field_manager, ignore_file=ignore_file,
                        kubeconfig=kubeconfig, context=context) as target:
        snapshot, manifests = render_from_options(target.source, warnings=rendering, capabilities=live_capabilities(
            kubeconfig=kubeconfig, context=context, impersonate=target.impersonate))
    options = replace(target.options, concurrency=concurrency, prune=target.options.prune and prune, dry_run=True,
                      diff_text=True)
    err = message_console()
    progress = StepProgress(err, total=len(manifests), label="checking")
    kube = connect(kubeconfig=kubeconfig, context=context, concurrency=concurrency, qps=qps,
                   impersonate=target.impersonate)
    try:
        with progress.running(kube.stats):
            plan = plan_sync(kube, manifests, options=options, revision=snapshot.revision)
    finally:
        kube.close()
    plan = replace(plan, warnings=(*rendering, *plan.warnings))
    if output == "text":
        print_diff_text(plan, out=result_console(), err=err, namespace_from=namespace_from,
                        not_changes=verbosity(click.get_current_context()) > 0)
    else:
        print_document(diff_json(plan), output=output)
    sys.exit(1 if plan.has_changes else 0)
