"""`syncer rollback APP -n NS --to REV | --steps N | --release`: go back to a revision the app's
history applied, and hold it there.

The command changes only the App, with the user's own rights: it sets `spec.hold`
(`syncer.hold`), and the daemon syncs the revision with the App's identity, with the same
plan, guards and prune rules as any sync. The hold keeps the App there while the tracked ref
renders as the revision rolled back from did; a commit that changes the App's render, or
`--release` (which removes `spec.hold`), ends it, and the App moves to the head again.
Argo CD refuses a rollback while auto-sync is on, and Flux has none: with a hold the daemon
keeps running and the rollback is not undone at its next look at Git.

Output: `rolled back …` / `hold released` on stdout; with --wait (where they are progress, on
stderr), the App's Ready condition once the daemon reports the revision (or its failure), or
its status as an AppReconcile document with -o json|yaml. Exit 0, or 2 on failure (no daemon
answered in time included).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from typing import Any

import click

from syncer.apply.applyset import Inventory
from syncer.apply.holdrecord import recorded_hold, write_hold
from syncer.apply.status import now_rfc3339, read_history, status_from_annotations
from syncer.cli import cli
from syncer.cli.appselect import command_target
from syncer.cli.apps import one_app, report_app
from syncer.cli.common import (
    Duration, app_options, cli_user, cluster_options, connect, live_capabilities, output_option, resolve_namespace,
)
from syncer.cli.options import render_from_options, source_options
from syncer.cli.sync import run_sync
from syncer.daemon.appclient import patch_app, read_app, subject
from syncer.daemon.rollback import rollback_hold
from syncer.errors import ConfigError
from syncer.hold import Hold, pick_revision
from syncer.kube import Kube
from syncer.model import Object

POLL_SECONDS = 0.5


@cli.command("rollback")
@click.argument("app_argument", metavar="[APP]", required=False)
@source_options
@app_options
@cluster_options
@output_option
@click.option("--to", "to", default=None, metavar="REV",
              help="A revision from the app's history (`syncer history`): a full or abbreviated commit SHA.")
@click.option("--steps", type=click.IntRange(min=1), default=None, metavar="N",
              help="Go back N distinct revisions in the app's history (1: the one before the current).")
@click.option("--release", is_flag=True, help="End the hold: the App moves to the tracked ref's head again (a CLI "
                                              "app's next plain `syncer sync` is no longer refused).")
@click.option("--wait", is_flag=True, help="An App: follow its status until the daemon applied the revision (or "
                                           "failed).")
@click.option("--timeout", type=Duration(minimum=1), default="5m", show_default=True,
              help="How long --wait waits for the daemon.")
@click.option("--lock-timeout", type=Duration(), default="2m", show_default=True,
              help="A CLI app: how long to wait while another sync of the same app runs.")
def rollback_command(*, app_argument: str | None, app: str | None, app_object: str | None, to: str | None,
                     steps: int | None, release: bool, wait: bool, timeout: float, lock_timeout: float,
                     field_manager: str, concurrency: int, qps: float, ignore_file: str | None,
                     kubeconfig: str | None, context: str | None, output: str, request_timeout: float,
                     **source: Any) -> None:
    """Go back to an earlier revision from the app's history and hold it there, until a commit
    changes the app's render or --release. An App (APP or --app NAME, -n its namespace): sets
    spec.hold with your rights, and the daemon syncs the revision with the App's identity. A
    CLI app (--name, with the source flags of `syncer sync`): syncs the revision now, as
    `syncer sync --revision` would, and records the hold on its parent."""
    if sum(choice is not None and choice is not False for choice in (to, steps, release or None)) != 1:
        raise click.UsageError("give one of --to REV, --steps N or --release")
    resolve_namespace(source, kubeconfig=kubeconfig, context=context)
    namespace = str(source["namespace"])
    if app is not None:
        if app_argument or app_object:
            raise click.UsageError("name one app: an App (APP or --app NAME) or a CLI app (--name)")
        if wait:
            raise click.UsageError("--wait follows an App's daemon; a CLI app's rollback syncs before it exits")
        _roll_back_cli_app(app=app, namespace=namespace, to=to, steps=steps, release=release, source=source,
                           field_manager=field_manager, concurrency=concurrency, qps=qps, ignore_file=ignore_file,
                           lock_timeout=lock_timeout, kubeconfig=kubeconfig, context=context, output=output)
        return
    name = one_app(app_argument, app_object,
                   usage="name one app: syncer rollback APP -n NS (or --app NAME), or --name for a CLI app")
    kube = connect(kubeconfig=kubeconfig, context=context, request_timeout=request_timeout)
    try:
        live = read_app(kube, namespace=namespace, name=name)
        if release:
            live = _release(kube, live, progress=wait or output != "text")
            target = None
        else:
            user = cli_user(kubeconfig=kubeconfig, context=context)
            hold = rollback_hold(live, to=to, steps=steps, requested_by=user)
            live = patch_app(kube, live, {"spec": {"hold": hold.to_spec()}})
            click.echo(f"{subject(namespace, name)}: {hold.describe()}, held until a commit changes the App's render "
                       f"or `syncer rollback {name} -n {namespace} --release`", err=wait or output != "text")
            target = hold.revision
        if not wait:
            return
        live = _follow(kube, live, target=target, timeout=timeout)
    finally:
        kube.close()
    sys.exit(report_app(live, output=output))


def _roll_back_cli_app(
    *, app: str, namespace: str, to: str | None, steps: int | None, release: bool, source: dict[str, Any],
    field_manager: str, concurrency: int, qps: float, ignore_file: str | None, lock_timeout: float,
    kubeconfig: str | None, context: str | None, output: str,
) -> None:
    """A CLI app: release the hold its parent records, or sync the revision picked from its
    history with the hold recorded once applied (exits as `syncer sync` does)."""
    kube = connect(kubeconfig=kubeconfig, context=context)
    try:
        parent_ref = Inventory.for_app(app=app, namespace=namespace).parent
        parent = kube.get(kube.resource_for("v1", "ConfigMap"), parent_ref.name, namespace=namespace)
        if parent is None:
            raise ConfigError(f"app {app}: no {parent_ref}: it was never synced in namespace {namespace}")
        annotations = dict((parent.get("metadata") or {}).get("annotations") or {})
        held = recorded_hold(annotations, parent=str(parent_ref))
        if release:
            if held is None:
                raise ConfigError(f"app {app}: {parent_ref} records no hold; nothing to release")
            write_hold(kube, app=app, namespace=namespace, hold=None)
            click.echo(f"app {app}: hold released ({held.describe()}); a plain `syncer sync` moves it again",
                       err=output != "text")
            return
        recorded = status_from_annotations(annotations)
        current = recorded.applied_revision if recorded is not None else ""
        if not current:
            raise ConfigError(f"app {app}: {parent_ref} records no applied revision, so there is nothing to go back from")
        try:
            choice = pick_revision([entry.revision for entry in read_history(parent) if entry.result == "Succeeded"],
                                   current=current, to=to, steps=steps)
        except ValueError as error:
            raise ConfigError(f"app {app}: {error}") from None
        hold = Hold(revision=choice.revision, from_revision=held.from_revision if held else current,
                    requested_at=now_rfc3339(), requested_by=cli_user(kubeconfig=kubeconfig, context=context))
    finally:
        kube.close()
    click.echo(f"app {app}: {hold.describe()}; syncing it", err=True)
    rendering: list[str] = []
    values = {**source, "revision": hold.revision}
    with command_target(values, app=app, app_object=None, field_manager=field_manager, ignore_file=ignore_file,
                        kubeconfig=kubeconfig, context=context) as target:
        snapshot, manifests = render_from_options(target.source, warnings=rendering, capabilities=live_capabilities(
            kubeconfig=kubeconfig, context=context, impersonate=target.impersonate))
    if snapshot.revision != hold.revision:
        raise ConfigError(f"app {app}: --repo {source.get('repo')} gave {snapshot.revision[:12]} for "
                          f"{hold.revision[:12]}: roll back from the app's Git repository")
    options = replace(target.options, concurrency=concurrency, lock_timeout=lock_timeout, diff_text=False,
                      rollback=hold)
    run_sync(manifests, options=options, revision=snapshot.revision, kubeconfig=kubeconfig, context=context,
             qps=qps, impersonate=None, output=output, namespace_from="", verbose=False, rendering=rendering)


def _release(kube: Kube, live: Object, *, progress: bool) -> Object:
    metadata = live["metadata"]
    where = subject(metadata["namespace"], metadata["name"])
    if not (live.get("spec") or {}).get("hold"):
        raise ConfigError(f"{where}: not held (no spec.hold); nothing to release")
    patched = patch_app(kube, live, {"spec": {"hold": None}})
    click.echo(f"{where}: hold released; the App moves to the tracked ref's head", err=progress)
    return patched


def _follow(kube: Kube, patched: Object, *, target: str | None, timeout: float) -> Object:
    """The App once the daemon answered the change of its spec (its generation): the revision
    rolled back to applied, or its sync failed; after --release, the first status that has no
    hold. Exit 2 when no daemon answered in time."""
    metadata = patched["metadata"]
    namespace, name, generation = metadata["namespace"], metadata["name"], int(metadata.get("generation") or 0)
    deadline = time.monotonic() + timeout
    while True:
        live = read_app(kube, namespace=namespace, name=name)
        status: dict[str, Any] = live.get("status") or {}
        answered = int(status.get("observedGeneration") or 0) >= generation
        last_sync = status.get("lastSync") or {}
        if answered and target is None and "hold" not in status and last_sync.get("result"):
            return live
        if answered and target is not None and (status.get("lastAppliedRevision") == target
                                               or (last_sync.get("revision") == target
                                                   and last_sync.get("result") == "Failed")):
            return live
        if time.monotonic() >= deadline:
            click.echo(f"{subject(namespace, name)}: the daemon did not report the change within {timeout:.0f}s; is "
                       "`syncer run` running and serving this namespace?", err=True)
            sys.exit(2)
        time.sleep(POLL_SECONDS)
