"""Credentials for each request: a token (given, or re-read from a file as it rotates), basic
auth, or an exec credential plugin's answer, cached until it is about to expire.

Each kind caches what it read and is asked for the `Authorization` header on every request
(`Transport.send`); asking is a clock comparison until something has to be read again.
The rules are kubectl's (client-go `plugin/pkg/client/auth/exec`, `transport/token_source`):
a token file is read again every minute (the kubelet rotates a projected service-account
token long before it expires); an exec plugin's credential is reused until its
`expirationTimestamp` (here: until a minute before it), or forever when it has none, and is
asked for again after the server answered 401.
"""

from __future__ import annotations

import atexit
import base64
import datetime
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from syncer.errors import ConfigError

log = logging.getLogger(__name__)

TOKEN_FILE_PERIOD = 60.0
"""Seconds a token read from a file is used before the file is read again (client-go's)."""
EXPIRY_MARGIN = datetime.timedelta(seconds=60)
"""An exec plugin runs again this long before its credential expires: a request signed just
before the expiry must not arrive just after it."""
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")


class Credentials(Protocol):
    """What authenticates a request. `headers()` is called for every request and is cheap
    while nothing has to be read again; `expire()` drops a cached credential after a 401."""

    def headers(self) -> Mapping[str, str]: ...

    def expire(self) -> None: ...


@dataclass(frozen=True)
class FixedHeaders:
    """No credentials, a token from the kubeconfig or the command line, or basic auth."""

    values: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def bearer(cls, token: str) -> FixedHeaders:
        return cls({"Authorization": f"Bearer {token}"})

    @classmethod
    def basic(cls, username: str, password: str) -> FixedHeaders:
        encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
        return cls({"Authorization": f"Basic {encoded}"})

    def headers(self) -> Mapping[str, str]:
        return self.values

    def expire(self) -> None:
        pass


class TokenFile:
    """A bearer token read from a file (a kubeconfig's `tokenFile`, a pod's service-account
    token), read again every `TOKEN_FILE_PERIOD` seconds: the kubelet replaces a projected
    token well before it expires, and a daemon runs for months."""

    def __init__(self, path: str, *, where: str) -> None:
        self._path = path
        self._where = where
        self._lock = threading.Lock()
        self._cached: tuple[dict[str, str], float] | None = None
        self.headers()  # a missing or empty file is an error at start, not at the first request

    def headers(self) -> Mapping[str, str]:
        now = time.monotonic()
        cached = self._cached
        if cached is not None and now < cached[1]:
            return cached[0]
        with self._lock:
            try:
                token = Path(self._path).read_text().strip()
            except OSError as error:
                if cached is not None:  # keep the last token through a moment of rotation
                    log.warning("%s: cannot read the token file %s again: %s", self._where, self._path, error)
                    return cached[0]
                raise ConfigError(f"{self._where}: cannot read the token file {self._path}: "
                                  f"{error.strerror or error}") from None
            if not token:
                raise ConfigError(f"{self._where}: the token file {self._path} is empty")
            header = {"Authorization": f"Bearer {token}"}
            self._cached = (header, now + TOKEN_FILE_PERIOD)
        return header

    def expire(self) -> None:
        self._cached = None


@dataclass(frozen=True)
class ExecConfig:
    """A kubeconfig user's `exec` section, paths resolved."""

    command: str
    args: tuple[str, ...]
    env: Mapping[str, str]
    api_version: str
    interactive_mode: str
    install_hint: str
    cluster: Mapping[str, Any] | None
    """What the plugin is told of the cluster (`provideClusterInfo`), else None."""


def parse_exec(section: Any, *, where: str, base_dir: Path, cluster: Mapping[str, Any] | None) -> ExecConfig:
    """A kubeconfig's `exec` section, checked as client-go checks it; `where` names the file
    and the user, `cluster` is the cluster entry (for `provideClusterInfo`)."""
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: exec must be a mapping")
    api_version = section.get("apiVersion")
    if api_version not in EXEC_API_VERSIONS:
        raise ConfigError(f"{where}: exec.apiVersion {api_version!r} is not supported; use one of "
                          f"{', '.join(EXEC_API_VERSIONS)}")
    command = section.get("command")
    if not command or not isinstance(command, str):
        raise ConfigError(f"{where}: exec.command is missing")
    if os.sep in command and not os.path.isabs(command):
        command = str(base_dir / command)  # relative to the kubeconfig file, as kubectl resolves it
    args = section.get("args") or []
    env = section.get("env") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"{where}: exec.args must be a list of strings")
    if not isinstance(env, list) or not all(isinstance(e, dict) and isinstance(e.get("name"), str) for e in env):
        raise ConfigError(f"{where}: exec.env must be a list of {{name, value}}")
    mode = section.get("interactiveMode") or ("IfAvailable" if api_version.endswith("v1beta1") else "")
    if mode not in ("Never", "IfAvailable", "Always"):
        raise ConfigError(f"{where}: exec.interactiveMode must be Never, IfAvailable or Always (required in "
                          f"{EXEC_API_VERSIONS[0]}), not {mode!r}")
    provided = None
    if section.get("provideClusterInfo") and cluster is not None:
        provided = {k: cluster[k] for k in ("server", "tls-server-name", "insecure-skip-tls-verify",
                                            "certificate-authority-data", "proxy-url", "disable-compression")
                    if k in cluster}
        for extension in cluster.get("extensions") or []:
            if isinstance(extension, dict) and extension.get("name") == "client.authentication.k8s.io/exec":
                provided["config"] = extension.get("extension")
    return ExecConfig(command=command, args=tuple(args), env={e["name"]: str(e.get("value", "")) for e in env},
                      api_version=api_version, interactive_mode=mode,
                      install_hint=str(section.get("installHint") or ""), cluster=provided)


@dataclass(frozen=True)
class ExecCredential:
    """A plugin's answer: a token, or a client certificate and key (PEM), until `expires`."""

    token: str | None
    certificate: str | None
    key: str | None
    expires: datetime.datetime | None


def _parse_time(text: Any, *, where: str) -> datetime.datetime:
    try:
        parsed = datetime.datetime.fromisoformat(str(text))
    except ValueError:
        raise ConfigError(f"{where}: status.expirationTimestamp {text!r} is not an RFC 3339 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def run_exec(config: ExecConfig, *, where: str) -> ExecCredential:
    """Run the plugin once and read its ExecCredential; every failure names the plugin."""
    name = f"{where}: exec plugin {config.command}"
    interactive = config.interactive_mode != "Never" and sys.stdin.isatty()
    if config.interactive_mode == "Always" and not interactive:
        raise ConfigError(f"{name}: it needs an interactive terminal (interactiveMode: Always), and there is none")
    spec: dict[str, Any] = {"interactive": interactive}
    if config.cluster is not None:
        spec["cluster"] = dict(config.cluster)
    env = {**os.environ, **config.env, "KUBERNETES_EXEC_INFO": json.dumps(
        {"apiVersion": config.api_version, "kind": "ExecCredential", "spec": spec})}
    try:
        done = subprocess.run([config.command, *config.args], env=env, stdout=subprocess.PIPE,
                              stderr=None if interactive else subprocess.PIPE, stdin=None if interactive else subprocess.DEVNULL,
                              text=True, check=False)
    except OSError as error:
        hint = f"; {config.install_hint.strip()}" if config.install_hint else ""
        raise ConfigError(f"{name}: cannot run it: {error.strerror or error}{hint}") from None
    if done.returncode != 0:
        said = (done.stderr or "").strip()
        raise ConfigError(f"{name}: exited with {done.returncode}" + (f": {said}" if said else ""))
    try:
        answer = json.loads(done.stdout)
    except ValueError as error:
        raise ConfigError(f"{name}: its output is not an ExecCredential in JSON: {error}") from None
    if not isinstance(answer, dict) or answer.get("kind") != "ExecCredential":
        raise ConfigError(f"{name}: its output is not an ExecCredential")
    if answer.get("apiVersion") != config.api_version:
        raise ConfigError(f"{name}: it answered apiVersion {answer.get('apiVersion')!r}, the kubeconfig asked for "
                          f"{config.api_version}")
    status = answer.get("status")
    if not isinstance(status, dict):
        raise ConfigError(f"{name}: its ExecCredential has no status")
    token = status.get("token") or None
    certificate, key = status.get("clientCertificateData") or None, status.get("clientKeyData") or None
    if bool(certificate) != bool(key):
        raise ConfigError(f"{name}: its ExecCredential has clientCertificateData or clientKeyData, not both")
    if not token and not certificate:
        raise ConfigError(f"{name}: its ExecCredential has neither a token nor a client certificate")
    expires = status.get("expirationTimestamp")
    return ExecCredential(token=token, certificate=certificate, key=key,
                          expires=_parse_time(expires, where=name) if expires else None)


class ExecPlugin:
    """Credentials from an exec plugin (EKS, GKE, AKS, kubelogin log in this way), cached until
    `EXPIRY_MARGIN` before they expire. A client certificate it returns is written to files
    the connection pool reads for each new connection, so a renewed one is used without a new
    pool."""

    def __init__(self, config: ExecConfig, *, where: str) -> None:
        self.config = config
        self._where = where
        self._lock = threading.Lock()
        self._header: dict[str, str] = {}
        self._expires: datetime.datetime | None = None
        self._fresh = False
        self.certificate_files: tuple[str, str] | None = None
        self._refresh()

    def _refresh(self) -> None:
        credential = run_exec(self.config, where=self._where)
        self._header = {"Authorization": f"Bearer {credential.token}"} if credential.token else {}
        if credential.certificate and credential.key:
            self.certificate_files = _write_private(credential.certificate, credential.key,
                                                    into=self.certificate_files)
        self._expires = credential.expires
        self._fresh = True

    def headers(self) -> Mapping[str, str]:
        if self._fresh and (self._expires is None
                            or datetime.datetime.now(datetime.timezone.utc) < self._expires - EXPIRY_MARGIN):
            return self._header
        with self._lock:
            if not self._fresh or (self._expires is not None and datetime.datetime.now(
                    datetime.timezone.utc) >= self._expires - EXPIRY_MARGIN):
                self._refresh()
            return self._header

    def expire(self) -> None:
        self._fresh = False


def _write_private(certificate: str, key: str, *, into: tuple[str, str] | None) -> tuple[str, str]:
    """PEM data as files only this user can read (Python's TLS loads a client certificate from
    files only), removed at exit; rewritten in place when `into` is given."""
    if into is None:
        directory = tempfile.mkdtemp(prefix="syncer-credentials-")
        atexit.register(shutil.rmtree, directory, True)
        into = (os.path.join(directory, "client.crt"), os.path.join(directory, "client.key"))
    for path, content in zip(into, (certificate, key), strict=True):
        descriptor = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(content)
        os.replace(path + ".new", path)
    return into


def data_as_files(certificate: bytes, key: bytes) -> tuple[str, str]:
    """A kubeconfig's client-certificate-data and client-key-data as private files."""
    return _write_private(certificate.decode(), key.decode(), into=None)
