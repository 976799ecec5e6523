"""`syncer dev-cluster up|down|status`: a local control plane for trying syncer out and for
CI, running in the background between commands.

    export KUBECONFIG=$(syncer dev-cluster up)
    syncer sync ...
    syncer dev-cluster down

The output rule of every command (a result on stdout, progress and messages on stderr): the
result of `up` and `status` is the kubeconfig path alone, so `$(...)` captures it, and what
they say about the cluster goes to stderr; the result of `down` is its `stopped` line.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from syncer.cli import cli
from syncer.devcluster import (
    ControlPlane,
    RunningControlPlane,
    alive_components,
    is_running,
    read_state,
    stop_detached,
)
from syncer.devcluster.assets import VERSION_ENV, known_versions, resolve_version

DEFAULT_DIR = Path.home() / ".cache" / "syncer" / "dev-cluster"

_dir_option = click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="Work directory of the control plane (data, certificates, kubeconfig, logs).",
)


@cli.group("dev-cluster")
def dev_cluster() -> None:
    """A local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager).

    No scheduler or kubelet: objects are stored and reconciled by controllers, but pods
    never run.
    """


@dev_cluster.command("up")
@_dir_option
@click.option(
    "--audit-log",
    is_flag=True,
    help="Record every API request (metadata only) in <dir>/logs/audit.log.",
)
@click.option(
    "--kubernetes-version",
    "kubernetes_version",
    metavar="1.N",
    default=None,
    help=(
        f"Minor version of Kubernetes to start (known: {', '.join(known_versions())}; default: "
        f"${VERSION_ENV}, else the newest). One not built yet is built first, once."
    ),
)
def up(workdir: Path, audit_log: bool, kubernetes_version: str | None) -> None:
    """Start the control plane in the background (or reuse the one running in --dir) and
    print its kubeconfig path."""
    workdir = workdir.expanduser().resolve()
    wanted = resolve_version(kubernetes_version)
    state = read_state(workdir)
    if state is not None and is_running(state):
        if kubernetes_version is not None and state.server_version != f"v{wanted}":
            raise click.ClickException(
                f"the dev cluster running in {workdir} is Kubernetes {state.server_version}, "
                f"not {wanted}; `syncer dev-cluster down` first"
            )
        click.echo(
            f"dev cluster already running in {workdir} ({state.server}, Kubernetes "
            f"{state.server_version})",
            err=True,
        )
        if audit_log and state.audit_log is None:
            click.echo(
                "note: it runs without an audit log; `syncer dev-cluster down` and "
                "`up --audit-log` to get one",
                err=True,
            )
    else:
        if state is not None:
            click.echo(
                f"replacing the unhealthy dev cluster in {workdir} ({_what_is_wrong(state)})",
                err=True,
            )
            stop_detached(workdir)
        click.echo(f"starting a dev cluster (Kubernetes {wanted}) in {workdir} ...", err=True)
        state = ControlPlane(
            workdir=workdir, kubernetes_version=wanted, audit_log=audit_log, detached=True
        ).start()
        click.echo(
            f"dev cluster running at {state.server}: Kubernetes {state.server_version}",
            err=True,
        )
        if not state.server_version.startswith(f"v{wanted.rsplit('.', 1)[0]}."):
            click.echo(
                f"note: Kubernetes {wanted} was asked for, but the binaries of "
                f"KUBEBUILDER_ASSETS={os.environ.get('KUBEBUILDER_ASSETS', '')} are "
                f"{state.server_version}",
                err=True,
            )
    if state.audit_log is not None:
        click.echo(f"audit log: {state.audit_log}", err=True)
    click.echo(f"  export KUBECONFIG={state.kubeconfig}", err=True)
    click.echo(str(state.kubeconfig))


@dev_cluster.command("down")
@_dir_option
@click.option("--keep-logs", is_flag=True, help="Keep <dir>/logs after stopping.")
def down(workdir: Path, keep_logs: bool) -> None:
    """Stop the control plane running in --dir and remove its files."""
    workdir = workdir.expanduser().resolve()
    state = stop_detached(workdir, keep_logs=keep_logs)
    if state is None:
        click.echo(f"no dev cluster in {workdir}; nothing to stop")
        return
    click.echo(f"dev cluster in {workdir} stopped")
    if keep_logs:
        click.echo(f"logs kept in {state.logs}")


@dev_cluster.command("status")
@_dir_option
@click.pass_context
def status(ctx: click.Context, workdir: Path) -> None:
    """Say whether a control plane runs in --dir (exit code 0) or not (exit code 1); when
    it runs, print its kubeconfig path."""
    workdir = workdir.expanduser().resolve()
    state = read_state(workdir)
    if state is None:
        click.echo(f"no dev cluster in {workdir}", err=True)
        ctx.exit(1)
    if is_running(state):
        click.echo(
            f"dev cluster running in {workdir} at {state.server}: Kubernetes "
            f"{state.server_version}",
            err=True,
        )
        click.echo(f"  export KUBECONFIG={state.kubeconfig}", err=True)
        click.echo(str(state.kubeconfig))
        return
    click.echo(
        f"dev cluster in {workdir} is unhealthy ({_what_is_wrong(state)}); logs in {state.logs}; "
        "`syncer dev-cluster down` cleans it up",
        err=True,
    )
    ctx.exit(1)


def _what_is_wrong(state: RunningControlPlane) -> str:
    stopped = [name for name, alive in alive_components(state).items() if not alive]
    return f"{', '.join(stopped)} not running" if stopped else "API server not ready"
