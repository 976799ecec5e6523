"""`syncer run`: the in-cluster daemon. Keeps every App of the cluster (or, with `--config`,
every app of a configuration file) in sync, serves health, readiness, metrics and webhooks,
and stops cleanly on SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from syncer.cli import cli, verbosity
from syncer.cli.common import Duration, cluster_options
from syncer.cli.options import limit_options, render_limits
from syncer.config import load_config
from syncer.daemon import AppSource, AppsOptions, ClusterApps, Daemon, DaemonOptions, ElectionOptions, FileApps
from syncer.dashboard import DashboardOptions, check_options, serve
from syncer.daemon.http import DEFAULT_LISTEN, parse_listen
from syncer.daemon.logs import configure_logging
from syncer.daemon.notify import Receiver
from syncer.daemon.notifytarget import parse_allow_list
from syncer.errors import ConfigError
from syncer.kube import ClientOptions

log = logging.getLogger("syncer.run")

SECRET_ENV = "SYNCER_WEBHOOK_SECRET"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""SIGHUP stops like SIGTERM rather than reloading: a reload would have to swap apps, their
schedules and metrics under running syncs, while a restart starts from a state that is
known to be consistent (and one log line says which signal arrived)."""
NOTIFY_SECRET_ENV = "SYNCER_NOTIFY_SECRET"


def read_webhook_secret(path: str | None, *, env: str = SECRET_ENV,
                        option: str = "--webhook-secret-file") -> bytes | None:
    """From the file (trailing newline dropped, as `kubectl create secret --from-file` keeps
    it) or else the variable `env`; None when neither is set (webhooks off)."""
    if path:
        try:
            secret = Path(path).read_text().strip()
        except OSError as error:
            raise ConfigError(f"{option} {path}: cannot read it: {error.strerror or error}") from None
        if not secret:
            raise ConfigError(f"{option} {path}: the file is empty")
        return secret.encode()
    secret = os.environ.get(env, "").strip()
    return secret.encode() if secret else None


def notify_receiver(url: str | None, secret_file: str | None) -> Receiver | None:
    secret = read_webhook_secret(secret_file, env=NOTIFY_SECRET_ENV, option="--notify-secret-file")
    if url is None:
        if secret_file:
            raise ConfigError("--notify-secret-file needs --notify-url")
        return None
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--notify-url {url}: not an http:// or https:// URL")
    return Receiver(url=url, secret=secret, allow=None)  # the operator's own: any address


@cli.command("run")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
              help="File mode: the apps to keep in sync (YAML; see examples/deploy-file-mode/). "
                   "Without it, the cluster's App objects are served.")
@click.option("--watch-namespace", "watch_namespaces", multiple=True,
              help="Serve only the Apps of this namespace (repeatable; default: all namespaces).")
@click.option("--require-service-account", is_flag=True,
              help="Refuse Apps without spec.serviceAccountName (they sync with the daemon's own rights otherwise).")
@click.option("--notify-url", default=None,
              help="Webhook told (signed JSON) when any App fails, recovers or changes health.")
@click.option("--notify-secret-file", type=click.Path(dir_okay=False), default=None,
              help=f"File with the HMAC secret for --notify-url (else ${NOTIFY_SECRET_ENV}).")
# -- what tenants' Apps may reach (syncer.daemon.appspec.TenantPolicy) -----------------------
@click.option("--allow-local-repos", is_flag=True,
              help="Let Apps name local paths and file:// repositories, read with the daemon's filesystem rights "
                   "(never its Git cache or credentials). Off: only remote URLs.")
@click.option("--notify-allow", "notify_allow", multiple=True, metavar="HOST|CIDR",
              help="Let App notification receivers reach this host or network although it is loopback, "
                   "link-local, a cloud metadata or an unspecified address (repeatable).")
# -- what one App may cost (syncer.sources.limits, syncer.sources.renderpool) -----------------
@limit_options
@click.option("--render-workers", type=click.IntRange(min=0), default=2, show_default=True,
              help="Worker processes that render Apps, so that a render's memory goes back to the system when "
                   "it is done (a worker that grew exits); 0 renders inside the daemon.")
# -------------------------------------------------------------------------------------------
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True,
              help="HOST:PORT for /healthz, /readyz, /metrics and /webhook; the default listens on all "
                   "interfaces (probes reach the pod's IP), 127.0.0.1:8080 keeps it local.")
# -- the dashboard (syncer.dashboard) --------------------------------------------------------
@click.option("--ui", "ui", is_flag=True,
              help="Serve the web dashboard (the Apps, their objects and Events, live) on --ui-listen.")
@click.option("--ui-listen", default="127.0.0.1:8081", show_default=True,
              help="HOST:PORT of the dashboard; reach the default with kubectl port-forward. Beyond loopback only "
                   "with --ui-auth kubernetes.")
@click.option("--ui-auth", type=click.Choice(["none", "kubernetes"]), default="none", show_default=True,
              help="kubernetes: users sign in with a bearer token (TokenReview) and see the Apps of the namespaces "
                   "where they may get Apps (SubjectAccessReview). none: everyone who reaches the port sees every App.")
@click.option("--ui-actions", is_flag=True,
              help="Reconcile, suspend and resume buttons, for users who may patch the App (sent with their own "
                   "token). Off: the dashboard is read-only.")
# -------------------------------------------------------------------------------------------
@click.option("--leader-elect", is_flag=True,
              help="Elect a leader among replicas through a Lease; only the leader syncs.")
@click.option("--shard", is_flag=True,
              help="Share the apps among all replicas (each holds a membership Lease; apps map to live replicas "
                   "by consistent hashing). Exclusive with --leader-elect.")
@click.option("--leader-election-namespace", envvar="POD_NAMESPACE", default="default", show_default=True,
              help="Namespace of the syncer-leader Lease, or of the membership Leases with --shard "
                   "(default: $POD_NAMESPACE, else default).")
@click.option("--lease-duration", type=Duration(minimum=3), default="15s", show_default=True,
              help="Time without renewal after which a standby takes over, or (--shard) after which the other "
                   "replicas take a silent replica's apps (renewal every third of it).")
@click.option("--watch/--no-watch", "watch", default=True, show_default=True,
              help="Watch the apps' objects: a change to one syncs its app within seconds (selfHeal) and a "
                   "resync that changes nothing sends no API request. --no-watch LISTs on every tick instead.")
@click.option("--relist-interval", type=Duration(minimum=10), default="10m", show_default=True,
              help="The watches' safety net: every watched kind is listed again this often.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per line, for log collectors.")
@cluster_options
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="SYNCER_CACHE_DIR", default=None,
              help="Where Git clones are cached (default: $SYNCER_CACHE_DIR, else ~/.cache/syncer/repos).")
@click.option("--webhook-secret-file", type=click.Path(dir_okay=False), default=None,
              help=f"File with the webhook secret (else ${SECRET_ENV}); without one, /webhook is off.")
@click.option("--shutdown-timeout", type=Duration(), default="1m", show_default=True,
              help="How long a running sync may take to finish after SIGTERM (or SIGHUP, SIGINT).")
@click.pass_context
def run_command(
    ctx: click.Context, *, config_path: str | None, watch_namespaces: tuple[str, ...],
    require_service_account: bool, notify_url: str | None, notify_secret_file: str | None, listen: str,
    leader_elect: bool, shard: bool, leader_election_namespace: str, lease_duration: float, watch: bool,
    relist_interval: float, log_format: str, kubeconfig: str | None, context: str | None, request_timeout: float,
    cache_dir: str | None, webhook_secret_file: str | None, shutdown_timeout: float, allow_local_repos: bool,
    notify_allow: tuple[str, ...], max_render_bytes: int, max_objects: int, helm_allow_host: tuple[str, ...],
    render_workers: int, ui: bool, ui_listen: str, ui_auth: str, ui_actions: bool,
) -> None:
    """Keep the cluster's Apps (or the apps of a configuration file) in sync: poll Git for each
    on its interval (or at once on a webhook or a reconcile request), apply new revisions, and
    revert drift as soon as the watches see it. Runs until SIGTERM, SIGINT or SIGHUP, then lets
    running syncs finish and exits 0.
    SIGHUP does not reload the configuration: like SIGTERM it stops, and the restart (the
    Deployment's, or systemd's) reads it anew."""
    configure_logging(json_lines=log_format == "json", verbose=verbosity(ctx))
    config = load_config(Path(config_path)) if config_path else None
    receiver = notify_receiver(notify_url, notify_secret_file)
    if config is not None and (watch_namespaces or require_service_account or receiver or allow_local_repos
                               or notify_allow):
        raise ConfigError("--watch-namespace, --require-service-account, --notify-url, --allow-local-repos and "
                          "--notify-allow serve Apps: they do not apply with --config")
    try:
        allowed_targets = parse_allow_list(notify_allow)
    except ValueError as error:
        raise ConfigError(f"--notify-allow: {error}") from None
    try:
        address = parse_listen(listen)
    except ValueError as error:
        raise ConfigError(f"--listen: {error}") from None
    dashboard_options = None
    if ui:
        if config is not None:
            raise ConfigError("--ui shows App objects: it does not apply with --config")
        try:
            dashboard_address = parse_listen(ui_listen)
        except ValueError as error:
            raise ConfigError(f"--ui-listen: {error}") from None
        dashboard_options = DashboardOptions(listen=dashboard_address, auth="kubernetes" if ui_auth == "kubernetes"
                                             else "none", actions=ui_actions)
        check_options(dashboard_options)
    elif ui_actions or ui_auth != "none":
        raise ConfigError("--ui-auth and --ui-actions configure the dashboard: add --ui")
    if leader_elect and shard:
        raise ConfigError("--leader-elect and --shard exclude each other: one replica syncs every app, or every "
                          "replica syncs its share")
    election = ElectionOptions.for_lease(lease_duration, namespace=leader_election_namespace) if leader_elect else None
    members = ElectionOptions.for_lease(lease_duration, namespace=leader_election_namespace) if shard else None
    options = DaemonOptions(
        listen=address, cache_dir=Path(cache_dir) if cache_dir else None,
        webhook_secret=read_webhook_secret(webhook_secret_file), election=election, shard=members, watch=watch,
        relist_interval=relist_interval, render_workers=render_workers,
        render_limits=render_limits({"max_render_bytes": max_render_bytes, "max_objects": max_objects,
                                     "helm_allow_host": helm_allow_host}),
    )

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("still waiting for running syncs to finish (up to %.0fs)", shutdown_timeout)
        else:
            log.info("%s received: no new syncs start; waiting for running ones", signal.Signals(signum).name)
        stop.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)
    client = ClientOptions(kubeconfig=kubeconfig, context=context, request_timeout=request_timeout)
    source: AppSource
    if config is not None:
        source = FileApps(config)
    else:
        source = ClusterApps(AppsOptions(namespaces=watch_namespaces, require_service_account=require_service_account,
                                         notify=receiver, allow_local_repos=allow_local_repos,
                                         notify_allow=allowed_targets))
    daemon = Daemon(source, client=client, options=options)
    daemon.start()
    try:
        dashboard = serve(daemon, client=client, options=dashboard_options) if dashboard_options is not None else None
    except BaseException:
        daemon.stop(timeout=shutdown_timeout)
        raise
    while not stop.wait(1.0):
        pass
    if dashboard is not None:
        dashboard.stop()
    still_running = daemon.stop(timeout=shutdown_timeout)
    if still_running:
        log.error("gave up waiting after %.0fs for the sync of %s; exiting while it runs",
                  shutdown_timeout, ", ".join(still_running))
        logging.shutdown()
        # The sync threads cannot be interrupted; without _exit the interpreter would wait.
        os._exit(1)
    log.info("stopped")
