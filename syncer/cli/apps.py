"""`syncer reconcile|suspend|resume|approve APP -n NS`: ask the daemon for a sync now, stop and
restart an App's syncs, or approve the plan an App with `spec.approval: manual` waits on. They
only change the App object, with the user's own rights; the daemon (`syncer run` without
`--config`) acts on it within seconds through its watch.

`reconcile --wait` follows the App's status until the daemon reports the sync it asked for
(`status.lastHandledReconcileAt` equal to the annotation it set) and exits 0 when that sync
succeeded and the App is not Stalled, 2 otherwise (also when no daemon answered in time).

Output: the command's result goes to stdout — `sync requested` without --wait, the App's
Ready condition (or its AppReconcile document) with --wait, `suspended`/`resumed` — as
`kubectl rollout restart` and `kubectl rollout pause` print theirs; while --wait follows the
App (and with -o json|yaml), `sync requested` is progress and goes to stderr.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from syncer.cli import cli
from syncer.cli.common import Duration, cluster_options, connect, output_option
from syncer.cli.output import document, print_document
from syncer.daemon.appclient import patch_app, read_app, request_reconcile, subject
from syncer.daemon.appstatus import condition_status, sync_result
from syncer.apply.sync import PlanRefused
from syncer.errors import ConfigError
from syncer.kube import Kube
from syncer.model import Object

POLL_SECONDS = 0.5


def app_argument(fn: click.decorators.FC) -> click.decorators.FC:
    fn = click.option("-n", "--namespace", default="default", show_default=True, help="The App's namespace.")(fn)
    return click.argument("app")(fn)


@cli.command("reconcile")
@app_argument
@click.option("--wait", is_flag=True, help="Follow the status until the sync ends; exit 0 if it succeeded.")
@click.option("--timeout", type=Duration(minimum=1), default="5m", show_default=True,
              help="How long --wait waits for the daemon (90s, 5m, or plain seconds).")
@cluster_options
@output_option
def reconcile_command(*, app: str, namespace: str, wait: bool, timeout: float, kubeconfig: str | None,
                      context: str | None, output: str, request_timeout: float) -> None:
    """Ask the daemon to sync an App now (the annotation syncer.dev/reconcile-requested-at)."""
    kube = connect(kubeconfig=kubeconfig, context=context, request_timeout=request_timeout)
    try:
        live = read_app(kube, namespace=namespace, name=app)
        if (live.get("spec") or {}).get("suspend"):
            raise ConfigError(f"{subject(namespace, app)}: suspended; `syncer resume {app} -n {namespace}` first")
        requested = request_reconcile(kube, live)
        # The result without --wait; progress with it, and with -o json|yaml, whose document is
        # the App's status once the sync ended (without --wait there is none).
        click.echo(f"{subject(namespace, app)}: sync requested ({requested})", err=wait or output != "text")
        if not wait:
            return
        deadline = time.monotonic() + timeout
        while True:
            live = read_app(kube, namespace=namespace, name=app)
            status = live.get("status") or {}
            if (status.get("lastHandledReconcileAt") == requested
                    and status.get("observedGeneration") == live["metadata"].get("generation")):
                break
            if time.monotonic() >= deadline:
                click.echo(f"{subject(namespace, app)}: no daemon reported the sync within {timeout:.0f}s; "
                           "is `syncer run` running and serving this namespace?", err=True)
                sys.exit(2)
            time.sleep(POLL_SECONDS)
    finally:
        kube.close()
    sys.exit(report_app(live, output=output))


def one_app(argument: str | None, option: str | None, *, usage: str) -> str:
    """The App a command names by its argument or its --app option (both: the same one)."""
    name = option or argument
    if name is None or (argument and option and argument != option):
        raise click.UsageError(usage)
    return name


def report_app(live: Object, *, output: str) -> int:
    """Print the App's outcome once a sync the user asked for ended (reconcile, approve,
    rollback); the exit code: 0 when the sync succeeded and it is not Stalled."""
    status = live.get("status") or {}
    ok = sync_result(status) == "Succeeded" and condition_status(status, "Stalled") != "True"
    if output != "text":
        metadata = live["metadata"]
        print_document(document("AppReconcile", {"app": metadata["name"], "namespace": metadata["namespace"],
                                                 "status": status}), output=output)
    else:
        ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        metadata = live["metadata"]
        click.echo(f"{subject(metadata['namespace'], metadata['name'])}: Ready={ready.get('status')} "
                   f"({ready.get('reason')}): {ready.get('message')}")
    return 0 if ok else 2


def _set_suspend(
    *, app: str, namespace: str, suspend: bool, kubeconfig: str | None, context: str | None, request_timeout: float,
) -> None:
    kube = connect(kubeconfig=kubeconfig, context=context, request_timeout=request_timeout)
    try:
        live = read_app(kube, namespace=namespace, name=app)
        patch_app(kube, live, {"spec": {"suspend": suspend}})
    finally:
        kube.close()
    click.echo(f"{subject(namespace, app)}: {'suspended' if suspend else 'resumed'}")


@cli.command("suspend")
@app_argument
@cluster_options
def suspend_command(
    *, app: str, namespace: str, kubeconfig: str | None, context: str | None, request_timeout: float,
) -> None:
    """Stop syncing an App (spec.suspend: true) until `syncer resume`."""
    _set_suspend(app=app, namespace=namespace, suspend=True, kubeconfig=kubeconfig, context=context,
                 request_timeout=request_timeout)


@cli.command("resume")
@app_argument
@cluster_options
def resume_command(
    *, app: str, namespace: str, kubeconfig: str | None, context: str | None, request_timeout: float,
) -> None:
    """Sync a suspended App again (spec.suspend: false); the daemon syncs it at once."""
    _set_suspend(app=app, namespace=namespace, suspend=False, kubeconfig=kubeconfig, context=context,
                 request_timeout=request_timeout)


@cli.command("approve")
@click.argument("app", required=False)
@click.option("--app", "app_option", default=None, metavar="NAME", help="The App (instead of the argument).")
@click.option("-n", "--namespace", default="default", show_default=True, help="The App's namespace.")
@click.option("--digest", default=None, metavar="D",
              help="The digest of the plan you reviewed (status.pendingPlan.digest): refused, exit 3, when the "
                   "App now waits on another plan.")
@click.option("--wait", is_flag=True, help="Follow the status until the approved plan is applied (or refused).")
@click.option("--timeout", type=Duration(minimum=1), default="5m", show_default=True,
              help="How long --wait waits for the daemon.")
@cluster_options
@output_option
def approve_command(*, app: str | None, app_option: str | None, namespace: str, digest: str | None, wait: bool,
                    timeout: float, kubeconfig: str | None, context: str | None, output: str,
                    request_timeout: float) -> None:
    """Approve the plan an App with spec.approval: manual waits on (spec.approvedPlan): the
    daemon applies exactly that plan, or refuses it before any write when the cluster or the
    source moved since, and plans again."""
    name = one_app(app, app_option, usage="name one App: syncer approve APP -n NS (or --app NAME)")
    kube = connect(kubeconfig=kubeconfig, context=context, request_timeout=request_timeout)
    try:
        live = read_app(kube, namespace=namespace, name=name)
        pending = (live.get("status") or {}).get("pendingPlan") or {}
        if not (live.get("spec") or {}).get("approval") == "manual" or not pending.get("digest"):
            raise ConfigError(f"{subject(namespace, name)}: no plan waits for approval (spec.approval must be manual, "
                              "and status.pendingPlan set by the daemon)")
        if digest is not None and digest != pending["digest"]:
            raise PlanRefused(f"{subject(namespace, name)}: the App now waits on plan {pending['digest']} of revision "
                              f"{str(pending.get('revision'))[:12]}, not {digest}; review it again")
        patched = patch_app(kube, live, {"spec": {"approvedPlan": pending["digest"]}})
        revision = str(pending.get("revision"))
        click.echo(f"{subject(namespace, name)}: approved plan {pending['digest']} of revision {revision[:12]}",
                   err=wait or output != "text")
        if not wait:
            return
        live = _follow_approval(kube, namespace=namespace, name=name, pending=pending, timeout=timeout,
                                generation=int(patched["metadata"].get("generation") or 0))
    finally:
        kube.close()
    sys.exit(report_app(live, output=output))


def _follow_approval(kube: Kube, *, namespace: str, name: str, pending: dict[str, Any], timeout: float,
                     generation: int) -> Object:
    """The App once the daemon synced the approved revision (applied, or failed); exit 3 when
    it planned again instead (the plan moved), 2 when no daemon answered in time. Only a
    status that answers the approval (`generation`, the App's with it) counts."""
    deadline = time.monotonic() + timeout
    while True:
        live = read_app(kube, namespace=namespace, name=name)
        status = live.get("status") or {}
        if int(status.get("observedGeneration") or 0) < generation:
            status = {}
        now_pending = (status.get("pendingPlan") or {}).get("digest")
        last_sync = status.get("lastSync") or {}
        moved = (last_sync.get("revision") == pending.get("revision")
                 and (last_sync.get("failure") or {}).get("cause") == "PlanRefused")
        if moved or (now_pending and now_pending != pending["digest"]):
            raise PlanRefused(f"{subject(namespace, name)}: the plan moved since it was approved; nothing was "
                              f"written, and the App plans it again: review it again")
        if not now_pending and (status.get("lastAppliedRevision") == pending.get("revision")
                                or (last_sync.get("revision") == pending.get("revision")
                                    and last_sync.get("result") == "Failed")):
            return live  # applied, or its sync failed: `_report` says which
        if time.monotonic() >= deadline:
            click.echo(f"{subject(namespace, name)}: the approved plan was not applied within {timeout:.0f}s; is "
                       "`syncer run` running and serving this namespace?", err=True)
            sys.exit(2)
        time.sleep(POLL_SECONDS)
