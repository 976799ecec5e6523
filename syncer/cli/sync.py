"""`syncer sync`: make the cluster match the source, in dependency order, pruning what the
source no longer has. Exit 0 on success, 2 on any failure."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, NoReturn

import click

from syncer.apply import ChangeSet, SyncOptions, sync
from syncer.apply.history import Trigger, TriggerKind
from syncer.apply.holdrecord import HeldByRollback, write_hold
from syncer.apply.status import OutcomeRecorder, now_rfc3339
from syncer.apply.sync import Acceptance, PlanRefused
from syncer.cli import cli, verbosity
from syncer.cli.appselect import command_target
from syncer.cli.common import (
    Duration,
    app_options,
    cluster_options,
    cli_user,
    connect,
    live_capabilities,
    output_option,
    prune_options,
    resolve_namespace,
    with_prune_options,
)
from syncer.cli.options import render_from_options, source_options
from syncer.cli.output import (
    StepProgress,
    message_console,
    print_changeset,
    print_document,
    result_console,
    sync_json,
)
from syncer.errors import ClusterError, LockLost, SyncerError
from syncer.kube import Kube
from syncer.model import Manifest

log = logging.getLogger(__name__)


@cli.command("sync")
@source_options
@app_options
@cluster_options
@output_option
@click.option("--no-prune", "prune", flag_value=False, default=True,
              help="Keep objects that are no longer in the source.")
@click.option("--allow-empty", is_flag=True,
              help="Allow a source with no objects to prune everything the app owns.")
@prune_options
@click.option("--dry-run", is_flag=True, help="Run everything server-side with dryRun=All; change nothing.")
@click.option("--wait", is_flag=True, help="Wait until the applied objects are healthy (with --app, also when "
                                            "the App says spec.wait).")
@click.option("--timeout", type=Duration(minimum=1), default="5m", show_default=True,
              help="How long to wait for health (--wait) and for CRDs to be Established (5m, 90s, 300); with "
                   "--app, the App's spec.timeout unless given.")
@click.option("--no-force-conflicts", "force_conflicts", flag_value=False, default=True,
              help="Fail instead of taking over fields that other field managers own.")
@click.option("--lock-timeout", type=Duration(), default="2m", show_default=True,
              help="How long to wait while another sync of the same app runs (a dead sync's lock is taken "
                   "over after its --lock-duration plus its --request-timeout).")
@click.option("--lock-duration", type=Duration(minimum=2), default="30s", show_default=True,
              help="How long the app's lock lasts without renewal; a sync that cannot renew it in time "
                   "stops writing (exit 2).")
@click.option("--show-unchanged", "verbose", is_flag=True, help="List unchanged objects too.")
@click.option("--release-hold", is_flag=True,
              help="Sync although `syncer rollback` holds the app at an earlier revision, and end the hold.")
def sync_command(
    *, app: str | None, app_object: str | None, field_manager: str, concurrency: int, qps: float,
    ignore_file: str | None, kubeconfig: str | None, context: str | None, output: str, prune: bool,
    allow_empty: bool, dry_run: bool, wait: bool, timeout: float, force_conflicts: bool, lock_timeout: float,
    lock_duration: float, verbose: bool, release_hold: bool, **source: Any,
) -> None:
    """Apply the source to the cluster with server-side apply, in dependency order, and prune
    what it no longer has. Every object is validated by the server before the first write.
    With --app, sync what the App object syncs, as the daemon would, with every request made
    as the App's service account; the outcome is recorded where the daemon records its own."""
    namespace_from = resolve_namespace(source, kubeconfig=kubeconfig, context=context)
    rendering: list[str] = []
    with command_target(source, app=app, app_object=app_object, field_manager=field_manager, ignore_file=ignore_file,
                        kubeconfig=kubeconfig, context=context) as target:
        snapshot, manifests = render_from_options(target.source, warnings=rendering, capabilities=live_capabilities(
            kubeconfig=kubeconfig, context=context, impersonate=target.impersonate))
    held = target.app.config.hold if target.app is not None else None
    if held is not None and not dry_run:
        raise HeldByRollback(f"App/{source['namespace']}/{app_object}: a rollback holds it ({held.describe()}): this sync would "
                             f"undo it, so nothing was written; `syncer rollback --release --app {app_object}` ends "
                             "the hold, and the daemon then moves the App to its head")
    base = target.options
    options = replace(
        with_prune_options(base, source), concurrency=concurrency, prune=base.prune and prune, allow_empty=allow_empty, dry_run=dry_run,
        wait=wait or base.wait, timeout=target.flag_or_app("timeout", timeout, base.timeout),
        force_conflicts=force_conflicts, lock_timeout=lock_timeout, lock_duration=int(lock_duration), diff_text=False,
        release_hold=release_hold,
    )
    run_sync(manifests, options=options, revision=snapshot.revision, kubeconfig=kubeconfig, context=context,
             qps=qps, impersonate=target.impersonate, output=output, namespace_from=namespace_from, verbose=verbose,
             rendering=rendering)


def run_sync(
    manifests: list[Manifest], *, options: SyncOptions, revision: str, kubeconfig: str | None, context: str | None,
    qps: float, impersonate: str | None, output: str, namespace_from: str, verbose: bool,
    rendering: Sequence[str] = (), accept: Acceptance | None = None,
) -> NoReturn:
    """Sync the manifests, record the outcome as `syncer run` does, print the result and exit
    (0, or 2 on any failure): `syncer sync` and `syncer install` alike. `rendering` holds the
    render's warnings (a chart's left-out hooks), shown first among the result's. `accept`:
    `syncer apply`'s check of the plan before its first write (`syncer.apply.sync.sync`)."""
    app = options.app
    err = message_console()
    progress = StepProgress(err, total=len(manifests))
    kube = connect(kubeconfig=kubeconfig, context=context, concurrency=options.concurrency, qps=qps,
                   impersonate=impersonate)
    recorder = OutcomeRecorder(kube, app=app, namespace=options.inventory_namespace, create_parent=False)
    trigger = Trigger(TriggerKind.ROLLBACK if options.rollback is not None else TriggerKind.CLI,
                      user=cli_user(kubeconfig=kubeconfig, context=context))
    started, clock = now_rfc3339(), time.monotonic()

    def record(client: Kube, changes: ChangeSet) -> None:
        """Under the app's lock (`syncer.apply.sync`), with the lock-guarded client; a
        rollback's hold (or its release) once the revision is applied."""
        _record(lambda: recorder.record_changes(changes, kube=client), warnings=changes.warnings)
        if changes.applied and (options.rollback is not None or options.release_hold):
            _record(lambda: write_hold(client, app=app, namespace=options.inventory_namespace, hold=options.rollback),
                    warnings=changes.warnings)

    try:
        try:
            with progress.running(kube.stats):
                changes = sync(kube, manifests, options=options, revision=revision, report=progress.on_change,
                               on_step=progress.on_step, record=record, accept=accept, trigger=trigger)
        except (LockLost, PlanRefused, HeldByRollback):
            raise  # the sync that took the lock over records the app's status; a refused plan writes nothing
        except SyncerError as error:
            if not options.dry_run:
                _record(lambda: recorder.record_failure(revision=revision, error=error, trigger=trigger,
                                                        started=started, seconds=time.monotonic() - clock),
                        warnings=None)
            raise
    finally:
        kube.close()
    changes.warnings[:0] = rendering
    if output == "text":
        print_changeset(changes, out=result_console(), err=err, namespace=options.inventory_namespace,
                        namespace_from=namespace_from, verbose=verbose,
                        not_changes=verbosity(click.get_current_context()) > 0)
    else:
        print_document(sync_json(changes, namespace=options.inventory_namespace), output=output)
    sys.exit(0 if changes.ok else 2)


def _record(write: Callable[[], object], *, warnings: list[str] | None) -> None:
    """Record the outcome as `syncer run` does; a status that cannot be written is a warning,
    not a failure of the sync."""
    try:
        write()
    except ClusterError as error:
        message = f"cannot record the app's status: {error}"
        if warnings is None:
            log.warning("%s", message)
        else:
            warnings.append(message)
