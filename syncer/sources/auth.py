"""Credentials for Git: how they reach git without being written down anywhere else.

Secrets never go into a URL, a command line or a config file, because all three are visible
to other users (`ps`), end up in logs, or persist in the cache clone. Instead:

* ssh: `GIT_SSH_COMMAND` names the key file and pins host-key checking to a known_hosts
  file (`StrictHostKeyChecking=yes`: an unknown or changed host key is an error, never a
  prompt and never silently accepted).
* https: a small `GIT_ASKPASS` script answers git's username/password prompts from
  variables set only in the environment of the git process, and only for the repository's
  own host (a redirect elsewhere gets nothing). Credential helpers are switched off for
  these processes so a user's `credential.helper=store` cannot save the token to disk.

The token is read from its file or variable on every git call, so a rotated token (e.g. a
re-mounted Kubernetes Secret) is picked up without a restart.
"""

from __future__ import annotations

import os
import re
import shlex
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from syncer.errors import ConfigError, SourceError
from syncer.sources.giturl import RepoURL

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
DEFAULT_HTTP_USERNAME = "git"
"""Used with a token when no user name is given; GitHub and GitLab accept any name with a token."""

_USERNAME_VAR = "SYNCER_GIT_USERNAME"
_PASSWORD_VAR = "SYNCER_GIT_PASSWORD"
_HOST_VAR = "SYNCER_GIT_HOST"

ASKPASS_SCRIPT = f"""#!/bin/sh
# Written by syncer. Answers git's credential prompts from variables syncer sets only in the
# environment of the git process it starts: this file holds no secret. It answers only for
# the repository's own host, so a redirect to another host gets nothing.
case "$1" in
  *"://${_HOST_VAR}'"*|*"@${_HOST_VAR}'"*) ;;
  *) exit 1 ;;
esac
case "$1" in
  Username*) printf '%s\\n' "${_USERNAME_VAR}" ;;
  *) printf '%s\\n' "${_PASSWORD_VAR}" ;;
esac
"""

_MIN_SECRET_LENGTH = 3
"""Shorter "secrets" are not scrubbed: replacing every `a` in a message would garble it."""


@dataclass(frozen=True)
class GitAuth:
    """How to authenticate to a Git server. All fields are optional; files are read lazily."""

    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None
    """Defaults to ~/.ssh/known_hosts. Host-key verification is always on."""
    username: str | None = None
    token_file: Path | None = None
    token_env: str | None = None
    """The name of an environment variable holding the token (not the token itself)."""


@dataclass(frozen=True)
class HttpCredentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"HttpCredentials(username={self.username!r}, password='***')"


def check_auth(url: RepoURL, auth: GitAuth) -> None:
    """Refuse combinations that cannot work before anything is sent over the network."""
    has_token = auth.token_file is not None or auth.token_env is not None
    if auth.token_file is not None and auth.token_env is not None:
        raise ConfigError(f"repository {url}: give the token either as a file or as an environment variable, not both")
    if url.transport == "ssh":
        if has_token or auth.username is not None:
            raise ConfigError(
                f"repository {url}: a user name or token is for https:// URLs; for ssh use "
                "--ssh-key (the login name belongs in the URL, e.g. git@host:org/repo.git)"
            )
        return
    if auth.ssh_key_file is not None or auth.known_hosts_file is not None:
        raise ConfigError(f"repository {url}: --ssh-key and --known-hosts only apply to ssh URLs")
    if url.transport == "file":
        if has_token or auth.username is not None:
            raise ConfigError(f"repository {url}: credentials do not apply to a local repository")
        return
    if has_token and url.password is not None:
        raise ConfigError(
            f"repository {url}: credentials are both in the URL and in a token option; "
            "remove them from the URL"
        )
    if auth.username is not None and not has_token and url.password is None:
        raise ConfigError(f"repository {url}: a user name needs a token (--token-file or --token-env)")
    if url.transport == "http" and (has_token or url.password is not None):
        raise ConfigError(
            f"repository {url}: refusing to send credentials over plain http; use https://"
        )


def http_credentials(url: RepoURL, auth: GitAuth) -> HttpCredentials | None:
    """The user name and token for an https repository, or None when it is public."""
    password = url.password if url.password is not None else _read_token(auth)
    if password is None:
        return None
    username = auth.username or url.username or DEFAULT_HTTP_USERNAME
    return HttpCredentials(username=username, password=password)


def known_hosts_file(auth: GitAuth) -> Path:
    return (auth.known_hosts_file or DEFAULT_KNOWN_HOSTS).expanduser()


def ssh_command(auth: GitAuth) -> str:
    """The `GIT_SSH_COMMAND` for every ssh connection: strict host keys, no prompts."""
    known_hosts = known_hosts_file(auth)
    args = [
        "ssh",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={_ssh_path(known_hosts, 'known_hosts file')}",
    ]  # fmt: skip
    if auth.ssh_key_file is not None:
        key = auth.ssh_key_file.expanduser()
        args += ["-i", _ssh_path(key, "ssh key file"), "-o", "IdentitiesOnly=yes"]
    return " ".join(shlex.quote(arg) for arg in args)


def check_ssh_files(auth: GitAuth, *, host: str) -> None:
    """Fail with advice before ssh fails with a terse message."""
    known_hosts = known_hosts_file(auth)
    if not known_hosts.is_file():
        raise SourceError(
            f"ssh known_hosts file {known_hosts} does not exist, so the host key of {host} "
            f"cannot be verified (unknown hosts are never accepted): check the key's "
            f"fingerprint, then add it with `ssh-keyscan -H {_host_only(host)} >> {known_hosts}`, "
            "or pass --known-hosts"
        )
    if auth.ssh_key_file is not None:
        key = auth.ssh_key_file.expanduser()
        if not key.is_file() or not os.access(key, os.R_OK):
            raise ConfigError(f"ssh key file {key} does not exist or is not readable")


def git_environment(url: RepoURL, auth: GitAuth, *, askpass: Path) -> dict[str, str]:
    """Variables for one git process talking to `url`. Never log the result: it holds secrets."""
    env = {"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never"}
    if url.transport == "ssh":
        env["GIT_SSH_COMMAND"] = ssh_command(auth)
    elif url.transport in ("https", "http"):
        credentials = http_credentials(url, auth)
        if credentials is not None:
            env.update(
                {
                    "GIT_ASKPASS": str(askpass),
                    _USERNAME_VAR: credentials.username,
                    _PASSWORD_VAR: credentials.password,
                    _HOST_VAR: url.host,
                    # An empty credential.helper clears the list, so no helper stores the token.
                    "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": "credential.helper",
                    "GIT_CONFIG_VALUE_0": "",
                }
            )
    return env


def secrets_of(url: RepoURL, auth: GitAuth) -> list[str]:
    """Every secret that could show up in git's output, in the forms it could take."""
    found: list[str] = []
    for secret in (url.password, _read_token(auth, missing_ok=True)):
        if secret and len(secret) >= _MIN_SECRET_LENGTH:
            found += [secret, quote(secret, safe="")]
    return found


def scrub(text: str, secrets: list[str]) -> str:
    """Remove secrets and any URL userinfo from text that may be shown or logged."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    text = re.sub(r"(?i)\b(https?://)[^/\s@]+@", r"\1***@", text)
    return re.sub(r"(?im)^(.*authorization:\s*).*$", r"\1***", text)


def ensure_askpass(directory: Path) -> Path:
    """Write the askpass helper once; it is the same for every repository."""
    path = directory / "askpass.sh"
    if path.is_file() and path.read_text() == ASKPASS_SCRIPT:
        return path
    directory.mkdir(parents=True, exist_ok=True)
    # Per thread too: the daemon's apps share one cache directory and start at the same time.
    temporary = directory / f".askpass.{os.getpid()}.{threading.get_ident()}.tmp"
    temporary.write_text(ASKPASS_SCRIPT)
    temporary.chmod(0o700)
    temporary.replace(path)
    return path


def _read_token(auth: GitAuth, *, missing_ok: bool = False) -> str | None:
    if auth.token_file is not None:
        path = auth.token_file.expanduser()
        try:
            token = path.read_text().strip()
        except OSError as error:
            if missing_ok:
                return None
            raise ConfigError(f"token file {path}: cannot read it ({error.strerror})") from None
        if not token and not missing_ok:
            raise ConfigError(f"token file {path} is empty")
        return token or None
    if auth.token_env is not None:
        token = os.environ.get(auth.token_env, "").strip()
        if not token and not missing_ok:
            raise ConfigError(f"environment variable {auth.token_env} (the git token) is not set or empty")
        return token or None
    return None


def _ssh_path(path: Path, what: str) -> str:
    """ssh splits option values on whitespace, so such paths cannot be passed safely."""
    text = str(path)
    if re.search(r"[\s\"']", text):
        raise ConfigError(f"{what} {text!r}: the path must not contain whitespace or quotes")
    return text


def _host_only(host: str) -> str:
    """`host:2222` -> `-p 2222 host` is ssh-keyscan's notation; keep it simple for the hint."""
    name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    return f"-p {port} {name}" if port else host
