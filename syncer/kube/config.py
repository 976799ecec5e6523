"""From a kubeconfig (or a pod's service account) to a `Connection`: the server, its TLS
settings and the credentials, as kubectl reads them.

syncer reads kubeconfig files itself rather than through the official client's loader:
that loader comes with the `kubernetes` package, whose import costs ~0.25 s and ~33 MB of
RSS at every start of the CLI and the daemon (bench/RESULTS.md), for ~700 model classes syncer
never uses (its requests go through `transport.py`). The rules are kubectl's (client-go
`tools/clientcmd`): several files merged, the first definition of a name wins and so does the
first `current-context`; relative paths are relative to the file that holds them; `-data`
fields win over their file fields. Credentials: `credentials.py`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml

from syncer.errors import ConfigError
from syncer.kube.credentials import Credentials, ExecPlugin, FixedHeaders, TokenFile, data_as_files, parse_exec

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


SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SERVICE_ACCOUNT_NAMESPACE = SERVICE_ACCOUNT_DIR / "namespace"
_insecure_servers_warned: set[str] = set()


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to talk to it: what `Transport` needs, and no more."""

    server: str
    credentials: Credentials = field(default_factory=FixedHeaders, repr=False)
    ca_file: str | None = None
    ca_data: str | None = field(default=None, repr=False)
    """PEM text of the CA (`certificate-authority-data`, decoded)."""
    insecure: bool = False
    tls_server_name: str | None = None
    client_certificate: tuple[str, str] | None = None
    """Files of the client certificate and its key."""
    proxy_url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    where: str = ""
    """`kubeconfig a.yaml, context dev` or `in-cluster service account`, for messages."""


@dataclass(frozen=True)
class KubeconfigContext:
    """The context a kubeconfig selects: its name, namespace and where it was read."""

    name: str
    namespace: str | None
    where: str
    """`kubeconfig a.yaml:b.yaml, context dev`, for messages."""
    user: str = ""
    """The context's user entry: who a sync's history says ran it."""


@dataclass(frozen=True)
class Entry:
    """A named cluster, user or context of a kubeconfig, with the file that defined it."""

    name: str
    value: Mapping[str, Any]
    file: str

    @property
    def base_dir(self) -> Path:
        return Path(self.file).resolve().parent


@dataclass(frozen=True)
class Kubeconfig:
    """Several kubeconfig files merged as kubectl merges them."""

    listed: str
    """The files as the user gave them, for messages."""
    clusters: Mapping[str, Entry]
    users: Mapping[str, Entry]
    contexts: Mapping[str, Entry]
    current_context: str | None


def kubeconfig_paths(kubeconfig: str | None) -> list[str]:
    """The kubeconfig files in the order kubectl reads them: the option (or $KUBECONFIG) as a
    list separated by `os.pathsep`, else ~/.kube/config. Files that do not exist are skipped,
    as kubectl skips them; an empty list means there is no kubeconfig at all."""
    listed = kubeconfig or os.environ.get("KUBECONFIG") or ""
    candidates = [p for p in listed.split(os.pathsep) if p] or [str(Path.home() / ".kube" / "config")]
    found = [p for p in (os.path.expanduser(c) for c in candidates) if Path(p).is_file()]
    return list(dict.fromkeys(found))


_SECTIONS = {"clusters": "cluster", "users": "user", "contexts": "context"}


def read_kubeconfig(kubeconfig: str | None) -> Kubeconfig:
    """The merged kubeconfig: for clusters, users and contexts the first file that defines a
    name wins, and the first file that sets `current-context` sets it."""
    listed = kubeconfig or os.environ.get("KUBECONFIG") or ""
    paths = kubeconfig_paths(kubeconfig)
    shown = listed or (paths[0] if paths else "~/.kube/config")
    if not paths:
        raise ConfigError(f"kubeconfig {shown}: no such file; pass --kubeconfig or set KUBECONFIG")
    merged: dict[str, dict[str, Entry]] = {section: {} for section in _SECTIONS}
    current: str | None = None
    for path in paths:
        try:
            document = yaml.load(Path(path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except OSError as error:
            raise ConfigError(f"kubeconfig {path}: cannot read it: {error.strerror or error}") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"kubeconfig {path}: not valid YAML: {error}") from None
        if document is None:
            continue
        if not isinstance(document, dict):
            raise ConfigError(f"kubeconfig {path}: not a kubeconfig (a mapping with clusters, users, contexts)")
        for section, item in _SECTIONS.items():
            entries = document.get(section) or []
            if not isinstance(entries, list):
                raise ConfigError(f"kubeconfig {path}: {section} must be a list")
            for index, entry in enumerate(entries):
                if not isinstance(entry, dict) or not entry.get("name"):
                    raise ConfigError(f"kubeconfig {path}: {section}[{index}] has no name")
                value = entry.get(item) or {}
                if not isinstance(value, dict):
                    raise ConfigError(f"kubeconfig {path}: {section}[{index}] ({entry['name']}): {item} must be a mapping")
                merged[section].setdefault(str(entry["name"]), Entry(str(entry["name"]), value, path))
        if current is None and document.get("current-context"):
            current = str(document["current-context"])
    return Kubeconfig(listed=shown, clusters=merged["clusters"], users=merged["users"],
                      contexts=merged["contexts"], current_context=current)


def _selected_context(options: ClientOptions) -> tuple[Kubeconfig, Entry, str]:
    """The merged kubeconfig, the context options.context (else its current context) names,
    and `kubeconfig FILES, context NAME` for messages."""
    config = read_kubeconfig(options.kubeconfig)
    where = f"kubeconfig {config.listed}"
    wanted = options.context or config.current_context
    names = ", ".join(sorted(config.contexts)) or "none"
    if not wanted:
        raise ConfigError(f"{where}: no current context; pass --context (one of {names})")
    where += f", context {wanted}"
    if wanted not in config.contexts:
        raise ConfigError(f"{where}: no such context; the contexts are: {names}")
    return config, config.contexts[wanted], where


def _uses_kubeconfig(options: ClientOptions) -> bool:
    return bool(kubeconfig_paths(options.kubeconfig) or options.kubeconfig or os.environ.get("KUBECONFIG")
                or options.context or not os.environ.get("KUBERNETES_SERVICE_HOST"))


def current_context(options: ClientOptions) -> KubeconfigContext | None:
    """The kubeconfig context syncer would use, or None when it would use the pod's service
    account. Reads files only; the commands take the default of --namespace from it."""
    if not _uses_kubeconfig(options):
        return None
    _, context, where = _selected_context(options)
    namespace, user = context.value.get("namespace"), context.value.get("user")
    return KubeconfigContext(name=context.name, namespace=str(namespace) if namespace else None, where=where,
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


def load_connection(options: ClientOptions) -> Connection:
    """The connection the kubeconfig files describe (explicit, $KUBECONFIG — several files
    merged as kubectl merges them — or ~/.kube/config) or, inside a pod with none, the pod's
    service account's."""
    connection = _from_kubeconfig(options) if _uses_kubeconfig(options) else _in_cluster()
    headers = {"User-Agent": _user_agent()}
    if options.impersonate:
        headers["Impersonate-User"] = options.impersonate
    credentials, certificate = connection.credentials, connection.client_certificate
    if options.bearer_token is not None:
        credentials, certificate = FixedHeaders.bearer(options.bearer_token), None
    if connection.insecure:
        _quiet_insecure_warnings(connection.server)
    return Connection(server=connection.server, credentials=credentials, ca_file=connection.ca_file,
                      ca_data=connection.ca_data, insecure=connection.insecure,
                      tls_server_name=connection.tls_server_name, client_certificate=certificate,
                      proxy_url=connection.proxy_url, headers=headers, where=connection.where)


def _user_agent() -> str:
    from syncer import __version__
    return f"syncer/{__version__}"


def _from_kubeconfig(options: ClientOptions) -> Connection:
    config, context, where = _selected_context(options)
    cluster_name = context.value.get("cluster")
    if not cluster_name:
        raise ConfigError(f"{where}: the context names no cluster")
    if cluster_name not in config.clusters:
        raise ConfigError(f"{where}: cluster {cluster_name!r} is not defined in kubeconfig {config.listed}")
    cluster = config.clusters[cluster_name]
    cluster_where = f"kubeconfig {cluster.file}, cluster {cluster.name}"
    server = str(cluster.value.get("server") or "").rstrip("/")
    if not server:
        raise ConfigError(f"{cluster_where}: no server")
    ca_data = _base64(cluster.value, "certificate-authority-data", where=cluster_where)
    ca_file = None if ca_data else _path(cluster, "certificate-authority", where=cluster_where)
    credentials: Credentials = FixedHeaders()
    certificate: tuple[str, str] | None = None
    user_name = context.value.get("user")
    if user_name:
        if user_name not in config.users:
            raise ConfigError(f"{where}: user {user_name!r} is not defined in kubeconfig {config.listed}")
        credentials, certificate = _user_credentials(config.users[user_name], cluster=cluster.value)
    return Connection(
        server=server, credentials=credentials, ca_file=ca_file,
        ca_data=ca_data.decode() if ca_data else None,
        insecure=bool(cluster.value.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.value.get("tls-server-name") or None, client_certificate=certificate,
        proxy_url=cluster.value.get("proxy-url") or None, where=where)


def _user_credentials(user: Entry, *, cluster: Mapping[str, Any]) -> tuple[Credentials, tuple[str, str] | None]:
    """A user entry's credentials and client certificate files. In the official client's
    order: a token (or token file), else an exec plugin, else basic auth; a client
    certificate goes with any of them."""
    where = f"kubeconfig {user.file}, user {user.name}"
    fields = user.value
    certificate: tuple[str, str] | None = None
    certificate_data = _base64(fields, "client-certificate-data", where=where)
    key_data = _base64(fields, "client-key-data", where=where)
    certificate_file = None if certificate_data else _path(user, "client-certificate", where=where)
    key_file = None if key_data else _path(user, "client-key", where=where)
    if bool(certificate_data or certificate_file) != bool(key_data or key_file):
        raise ConfigError(f"{where}: a client certificate needs its key, and a key its certificate "
                          "(client-certificate[-data] and client-key[-data])")
    if certificate_data or key_data:
        certificate = data_as_files(certificate_data or Path(str(certificate_file)).read_bytes(),
                                    key_data or Path(str(key_file)).read_bytes())
    elif certificate_file and key_file:
        certificate = (certificate_file, key_file)
    credentials: Credentials = FixedHeaders()
    if fields.get("token"):
        credentials = FixedHeaders.bearer(str(fields["token"]))
    elif fields.get("tokenFile"):
        token_file = _path(user, "tokenFile", where=where)
        credentials = TokenFile(str(token_file), where=where)
    elif fields.get("exec"):
        plugin = ExecPlugin(parse_exec(fields["exec"], where=where, base_dir=user.base_dir, cluster=cluster),
                            where=where)
        certificate = plugin.certificate_files or certificate
        credentials = plugin
    elif fields.get("username") and fields.get("password"):
        credentials = FixedHeaders.basic(str(fields["username"]), str(fields["password"]))
    elif fields.get("auth-provider"):
        credentials = _auth_provider(fields["auth-provider"], where=where)
    return credentials, certificate


def _auth_provider(provider: Any, *, where: str) -> Credentials:
    """An `oidc` auth-provider's id-token is used as it is; renewing it, and the `gcp` and
    `azure` providers kubectl removed in 1.26, are an exec plugin's job now (kubelogin,
    gke-gcloud-auth-plugin, kubelogin for Azure)."""
    name = provider.get("name") if isinstance(provider, dict) else None
    token = ((provider.get("config") or {}) if isinstance(provider, dict) else {}).get("id-token")
    if name == "oidc" and token:
        return FixedHeaders.bearer(str(token))
    raise ConfigError(f"{where}: auth-provider {name!r} is not supported (kubectl dropped the gcp and azure "
                      "providers): log in with an exec plugin (e.g. gke-gcloud-auth-plugin, kubelogin)")


def _base64(fields: Mapping[str, Any], key: str, *, where: str) -> bytes | None:
    text = fields.get(key)
    if not text:
        return None
    try:
        return base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: {key} is not base64") from None


def _path(entry: Entry, key: str, *, where: str) -> str | None:
    """A file an entry names, relative to the kubeconfig file that holds it; it must exist."""
    given = entry.value.get(key)
    if not given:
        return None
    path = entry.base_dir / os.path.expanduser(str(given))
    if not path.is_file():
        raise ConfigError(f"{where}: {key} {path}: no such file")
    return str(path)


def _in_cluster() -> Connection:
    """The pod's service account: the API server from KUBERNETES_SERVICE_HOST and _PORT, its CA
    and a token the kubelet rotates (read again every minute)."""
    where = "in-cluster service account"
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST", ""), os.environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConfigError(f"{where}: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set")
    ca_file = SERVICE_ACCOUNT_DIR / "ca.crt"
    if not ca_file.is_file() or not ca_file.stat().st_size:
        raise ConfigError(f"{where}: no CA certificate at {ca_file}")
    token = TokenFile(str(SERVICE_ACCOUNT_DIR / "token"), where=where)
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    return Connection(server=server, credentials=token, ca_file=str(ca_file), where=where)


def _quiet_insecure_warnings(server: str) -> None:
    """With `insecure-skip-tls-verify` urllib3 warns on every request (kubectl says nothing);
    syncer says it once per server and silences urllib3's InsecureRequestWarning."""
    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    if server not in _insecure_servers_warned:
        _insecure_servers_warned.add(server)
        log.warning("TLS certificates of %s are not verified (insecure-skip-tls-verify in the kubeconfig)", server)
