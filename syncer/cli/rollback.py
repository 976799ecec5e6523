"""`syncer rollback APP -n NS --to REV | --steps N | --release`: go back to a revision the App's
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
from typing import Any

import click

from syncer.apply.status import now_rfc3339
from syncer.cli import cli
from syncer.cli.common import Duration, cluster_options, connect, output_option
from syncer.cli.apps import report_app
from syncer.daemon.appclient import patch_app, read_app, subject, whoami
from syncer.errors import ConfigError
from syncer.hold import Hold, parse_hold, pick_revision
from syncer.kube import Kube
from syncer.model import Object

POLL_SECONDS = 0.5


@cli.command("rollback")
@click.argument("app", required=False)
@click.option("--app", "app_option", default=None, metavar="NAME", help="The App (instead of the argument).")
@click.option("-n", "--namespace", default="default", show_default=True, help="The App's namespace.")
@click.option("--to", "to", default=None, metavar="REV",
              help="A revision from the App's history (`syncer history`): a full or abbreviated commit SHA.")
@click.option("--steps", type=click.IntRange(min=1), default=None, metavar="N",
              help="Go back N distinct revisions in the App's history (1: the one before the current).")
@click.option("--release", is_flag=True, help="End the hold: the App moves to the tracked ref's head again.")
@click.option("--wait", is_flag=True, help="Follow the status until the daemon applied the revision (or failed).")
@click.option("--timeout", type=Duration(minimum=1), default="5m", show_default=True,
              help="How long --wait waits for the daemon.")
@cluster_options
@output_option
def rollback_command(*, app: str | None, app_option: str | None, namespace: str, to: str | None, steps: int | None,
                     release: bool, wait: bool, timeout: float, kubeconfig: str | None, context: str | None,
                     output: str, request_timeout: float) -> None:
    """Sync an earlier revision of an App from its history, and hold it there (spec.hold) until
    a commit changes the App's render or --release."""
    name = app_option or app
    if name is None or (app and app_option and app != app_option):
        raise click.UsageError("name one App: syncer rollback APP -n NS (or --app NAME)")
    if sum(choice is not None and choice is not False for choice in (to, steps, release or None)) != 1:
        raise click.UsageError("give one of --to REV, --steps N or --release")
    kube = connect(kubeconfig=kubeconfig, context=context, request_timeout=request_timeout)
    try:
        live = read_app(kube, namespace=namespace, name=name)
        if release:
            live = _release(kube, live, progress=wait or output != "text")
            target = None
        else:
            hold = rollback_hold(live, to=to, steps=steps, requested_by=whoami(kube))
            patched = patch_app(kube, live, {"spec": {"hold": hold.to_spec()}})
            click.echo(f"{subject(namespace, name)}: {hold.describe()}, held until a commit changes the App's render "
                       f"or `syncer rollback {name} -n {namespace} --release`", err=wait or output != "text")
            target = hold.revision
            live = patched
        if not wait:
            return
        live = _follow(kube, live, target=target, timeout=timeout)
    finally:
        kube.close()
    sys.exit(report_app(live, output=output))


def rollback_hold(live: Object, *, to: str | None, steps: int | None, requested_by: str) -> Hold:
    """The hold `syncer rollback` sets: the revision picked from the App's history, and the
    revision it goes back from (the one the App is at, or the current hold's `from`, so that
    going back further still ends at the same commit)."""
    where = subject(live["metadata"]["namespace"], live["metadata"]["name"])
    status = live.get("status") or {}
    spec_hold = (live.get("spec") or {}).get("hold")
    current = str(status.get("lastAppliedRevision") or "")
    if not current:
        raise ConfigError(f"{where}: nothing applied yet, so there is nothing to go back from")
    revisions = [str(entry.get("revision")) for entry in status.get("history") or []
                 if isinstance(entry, dict) and entry.get("result") == "Succeeded" and entry.get("revision")]
    try:
        choice = pick_revision(revisions, current=current, to=to, steps=steps)
        from_revision = (parse_hold(spec_hold).from_revision if spec_hold
                         else str(status.get("lastAttemptedRevision") or current))
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    if choice.revision == from_revision:
        raise ConfigError(f"{where}: {choice.revision[:12]} is the revision the hold goes back from; "
                          f"`syncer rollback --release` returns to it")
    return Hold(revision=choice.revision, from_revision=from_revision, requested_at=now_rfc3339(),
                requested_by=requested_by)


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
