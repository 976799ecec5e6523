"""From a kubeconfig (or a pod's service account) to a configured client, as kubectl reads it.

The official client loads the kubeconfig (contexts, client certificates, tokens that exec
plugins and OIDC refresh, proxies) into its `ApiClient`; syncer keeps that and adds kubectl's
rules where the client differs: several files merged, the first `current-context` wins, the
namespace default.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config import kube_config
from kubernetes.config.config_exception import ConfigException

from syncer.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientOptions:
    """How to reach the cluster and how hard to push it."""

    kubeconfig: str | None = None
    context: str | None = None
    qps: float = 1000.0
    """Requests per second this client sends at most (0: no limit). The default only guards
    against runaway loops: on one API server a sync is bounded by its CPU long before this,
    and API Priority and Fairness protects the server's other clients."""
    burst: int = 1000
    request_timeout: float = 30.0
    """Seconds one API request may take in all, retries included (`--request-timeout`). A hung
    or unreachable API server is reported within this, not after minutes of silent retries;
    every API call syncer makes is small (one object, or a page of 500), so 30 s is generous."""
    connect_timeout: float = 5.0
    """Seconds to establish a connection (at most the time left of `request_timeout`)."""
    max_retries: int = 6
    backoff_base: float = 0.2
    backoff_cap: float = 10.0
    pool_size: int = 32
    impersonate: str | None = None
    """A user (e.g. `system:serviceaccount:team-a:deployer`) every request is made as, by
    Kubernetes impersonation: the daemon syncs an App with the rights of its service account."""
    bearer_token: str | None = field(default=None, repr=False)
    """Authenticate with this token instead of the kubeconfig's credentials (same server and
    CA): the dashboard acts for a user with the user's own token, never the daemon's rights."""


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_insecure_servers_warned: set[str] = set()


@dataclass(frozen=True)
class KubeconfigContext:
    """The context a kubeconfig selects: its name, namespace and where it was read."""

    name: str
    namespace: str | None
    where: str
    """`kubeconfig a.yaml:b.yaml, context dev`, for messages."""
    user: str = ""
    """The context's user entry: who a sync's history says ran it."""


def kubeconfig_paths(kubeconfig: str | None) -> list[str]:
    """The kubeconfig files in the order kubectl reads them: the option (or $KUBECONFIG) as a
    list separated by `os.pathsep`, else ~/.kube/config. Files that do not exist are skipped,
    as kubectl skips them; an empty list means there is no kubeconfig at all."""
    listed = kubeconfig or os.environ.get("KUBECONFIG") or ""
    candidates = [p for p in listed.split(os.pathsep) if p] or [str(Path.home() / ".kube" / "config")]
    return [p for p in (os.path.expanduser(c) for c in candidates) if Path(p).is_file()]


def _kubeconfig_loader(options: ClientOptions) -> tuple[Any, str]:
    """The client's KubeConfigLoader over the merged files, with options.context active.

    Merged by the client's KubeConfigMerger, which already keeps the first definition of
    each cluster, user and context, as kubectl does; only `current-context` is fixed up:
    kubectl takes it from the first file that sets one, the merger from the last.
    """
    listed = options.kubeconfig or os.environ.get("KUBECONFIG") or ""
    paths = kubeconfig_paths(options.kubeconfig)
    where = f"kubeconfig {listed or (paths[0] if paths else '~/.kube/config')}"
    if not paths:
        raise ConfigError(f"{where}: no such file; pass --kubeconfig or set KUBECONFIG")
    try:
        merger = kube_config.KubeConfigMerger(os.pathsep.join(paths))
        if merger.config is None:
            raise ConfigError(f"{where}: no configuration found")
        current = next((merger.config_files[p]["current-context"] for p in merger.paths
                        if (merger.config_files[p] or {}).get("current-context")), None)
        merged = merger.config
        if current is not None:
            merged.value["current-context"] = current
        names = [str(c["name"]) for c in merged.value.get("contexts") or []]
        wanted = options.context or current
        if not wanted:
            raise ConfigError(f"{where}: no current context; pass --context (one of {', '.join(names) or 'none'})")
        where += f", context {wanted}"
        if wanted not in names:
            raise ConfigError(f"{where}: no such context; the contexts are: {', '.join(sorted(names)) or 'none'}")
        return kube_config.KubeConfigLoader(config_dict=merged, active_context=wanted, config_base_path=None), where
    except (ConfigException, OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise ConfigError(f"{where}: cannot load the cluster configuration: {error}") from error


def current_context(options: ClientOptions) -> KubeconfigContext | None:
    """The kubeconfig context syncer would use, or None when it would use the pod's service
    account. Reads files only; the commands take the default of --namespace from it."""
    if not kubeconfig_paths(options.kubeconfig) and not options.context and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    loader, where = _kubeconfig_loader(options)
    context = loader.current_context
    namespace = (context.get("context") or {}).get("namespace")
    user = (context.get("context") or {}).get("user")
    return KubeconfigContext(name=str(context["name"]), namespace=str(namespace) if namespace else None, where=where,
                             user=str(user or ""))


def default_namespace(options: ClientOptions) -> tuple[str, str]:
    """The namespace kubectl would use without `-n`, and where it comes from (for output):
    the context's namespace, the pod's own namespace in-cluster, else `default`."""
    context = current_context(options)
    if context is None:
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default", "the pod's namespace"
        except OSError:
            return "default", "default"
    if context.namespace:
        return context.namespace, f"context {context.name}"
    return "default", "default"


def load_api_client(options: ClientOptions) -> k8s_client.ApiClient:
    """An ApiClient from the kubeconfig files (explicit, $KUBECONFIG — several files merged as
    kubectl merges them — or ~/.kube/config) or, inside a pod with none, from the pod's
    service account."""
    configuration = k8s_client.Configuration()
    if kubeconfig_paths(options.kubeconfig) or options.kubeconfig or os.environ.get("KUBECONFIG") or options.context:
        loader, where = _kubeconfig_loader(options)
        try:
            loader.load_and_set(configuration)
        except (ConfigException, OSError) as error:
            raise ConfigError(f"{where}: cannot load the cluster configuration: {error}") from error
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except ConfigException as error:
            raise ConfigError(f"in-cluster service account: cannot load the cluster configuration: {error}") from error
    else:
        raise ConfigError("no cluster configured: pass --kubeconfig, set KUBECONFIG, or run inside a pod")
    if not configuration.verify_ssl:
        _quiet_insecure_warnings(str(configuration.host))
    configuration.connection_pool_maxsize = options.pool_size
    configuration.retries = False
    api = k8s_client.ApiClient(configuration)
    if options.bearer_token is not None:
        configuration.api_key = {"authorization": f"Bearer {options.bearer_token}"}
        configuration.api_key_prefix = {}
        configuration.refresh_api_key_hook = None
        configuration.cert_file = configuration.key_file = None
        configuration.username = configuration.password = ""
    if options.impersonate:
        api.set_default_header("Impersonate-User", options.impersonate)
    return api


def _quiet_insecure_warnings(server: str) -> None:
    """With `insecure-skip-tls-verify` urllib3 warns on every request (kubectl says nothing);
    syncer says it once per server and silences urllib3's InsecureRequestWarning."""
    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    if server not in _insecure_servers_warned:
        _insecure_servers_warned.add(server)
        log.warning("TLS certificates of %s are not verified (insecure-skip-tls-verify in the kubeconfig)", server)


