"""Parsing and vetting of repository locations before any of them reaches `git`.

Git treats some location strings as commands (`ext::sh -c ...`, other `<helper>::` remote
helpers) or as options (anything starting with `-`), and `https://user:token@host/` URLs
would store the token in the clone's config and show it in every message. Every location is
therefore parsed here into a credential-free URL plus the credentials that were embedded in
it, and anything that is not a plain https, http, ssh or file location is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from git.cmd import Git
from git.exc import UnsafeProtocolError

from syncer.errors import ConfigError

Transport = Literal["https", "http", "ssh", "file"]

_REMOTE_HELPER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+.-]*::|^::|^ext://", re.IGNORECASE)
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[^\]/]+\]|[^@/:\s]+):(?P<path>.+)$")
_SCHEMES: dict[str, Transport] = {"https": "https", "http": "http", "ssh": "ssh", "file": "file"}


@dataclass(frozen=True)
class RepoURL:
    """A repository location git may be given, and the credentials that came with it."""

    url: str
    """What git is given and what the cache clone stores: never holds a password or token."""
    transport: Transport
    host: str
    """`host` or `host:port` as written; empty for local repositories."""
    username: str | None = None
    """For http(s), a user name taken out of the URL; for ssh, the login (kept in `url`)."""
    password: str | None = None
    """A password or token taken out of an http(s) URL; it is never put back into one."""

    def __str__(self) -> str:
        return self.url


def reject_unsafe(location: str) -> None:
    """Refuse locations git would read as an option or run as a command."""
    shown = _display(location)
    if not location or location != location.strip():
        raise ConfigError(f"repository {shown!r}: empty or surrounded by whitespace")
    if location.startswith("-"):
        raise ConfigError(
            f"repository {shown!r}: starts with '-', which git would read as an option; "
            "use ./-name for a local directory with such a name"
        )
    if _REMOTE_HELPER.match(location):
        raise ConfigError(
            f"repository {shown!r}: git remote helpers ('<transport>::<address>', ext://) "
            "can run arbitrary commands and are not supported; use an https://, ssh:// or "
            "file:// URL"
        )
    try:
        Git.check_unsafe_protocols(location)
    except UnsafeProtocolError as error:
        raise ConfigError(f"repository {shown!r}: {error}") from None


def looks_like_url(location: str) -> bool:
    """True for `scheme://...` and scp-like `[user@]host:path` locations.

    As in git, a colon before the first slash makes a location scp-like; callers check for an
    existing local path first so that `./a:b` stays a directory.
    """
    if "://" in location:
        return True
    return _SCP_LIKE.match(location) is not None and "/" not in location.split(":", 1)[0]


def parse_url(location: str) -> RepoURL:
    """Split a remote location into a credential-free URL and the credentials it carried."""
    reject_unsafe(location)
    if "://" not in location:
        return _parse_scp_like(location)
    try:
        parts = urlsplit(location)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as error:
        raise ConfigError(f"repository {_display(location)!r}: not a valid URL ({error})") from None
    transport = _SCHEMES.get(parts.scheme.lower())
    if transport is None:
        raise ConfigError(
            f"repository {_display(location)!r}: unsupported scheme {parts.scheme!r}; "
            "use https://, http://, ssh://, file:// or user@host:path"
        )
    userinfo, _, hostport = parts.netloc.rpartition("@")
    username, password = _split_userinfo(userinfo) if parts.netloc.count("@") else (None, None)
    if transport == "file":
        if parts.netloc and parts.netloc != "localhost":
            raise ConfigError(f"repository {_display(location)!r}: file:// URLs cannot name a host")
        return RepoURL(url=urlunsplit(("file", "", parts.path, "", "")), transport="file", host="")
    if not hostport:
        raise ConfigError(f"repository {_display(location)!r}: the URL has no host")
    if parts.query or parts.fragment:
        raise ConfigError(f"repository {_display(location)!r}: query strings and fragments are not supported")
    _refuse_option_like(location, host=parts.hostname or hostport, user=username if transport == "ssh" else None)
    if transport == "ssh":
        if password is not None:
            raise ConfigError(
                f"repository {_display(location)!r}: passwords in ssh URLs are not supported; "
                "use an ssh key (--ssh-key)"
            )
        netloc = f"{userinfo}@{hostport}" if userinfo else hostport
        url = urlunsplit(("ssh", netloc, parts.path, "", ""))
        return RepoURL(url=url, transport="ssh", host=hostport, username=username)
    url = urlunsplit((transport, hostport, parts.path, "", ""))
    return RepoURL(url=url, transport=transport, host=hostport, username=username, password=password)


def local_url(path: Path) -> RepoURL:
    """A Git repository on this machine, addressed by its absolute path."""
    return RepoURL(url=str(path.resolve()), transport="file", host="")


def _parse_scp_like(location: str) -> RepoURL:
    match = _SCP_LIKE.match(location)
    if match is None or "/" in location.split(":", 1)[0]:
        raise ConfigError(
            f"repository {location!r}: neither a URL (https://, ssh://, file://, user@host:path) "
            "nor an existing directory"
        )
    host = match.group("host")
    _refuse_option_like(location, host=host, user=match.group("user"))
    return RepoURL(url=location, transport="ssh", host=host, username=match.group("user"))


def _refuse_option_like(location: str, *, host: str, user: str | None) -> None:
    """ssh receives `[user@]host` as one argument: one starting with '-' is an option
    (`ssh://-oProxyCommand=...` runs a command). Git refuses them too, but only when it runs,
    after the app has been scheduled and its status written; refused here they make the
    configuration or the App invalid before anything runs."""
    for what, value in (("host", host), ("user name", user or "")):
        if value.startswith("-"):
            raise ConfigError(
                f"repository {_display(location)!r}: the {what} starts with '-': not a {what}, and ssh would "
                "read it as an option"
            )


def _split_userinfo(userinfo: str) -> tuple[str | None, str | None]:
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def _display(location: str) -> str:
    """The location with any userinfo removed, safe for error messages."""
    scheme, sep, rest = location.partition("://")
    if not sep:
        return location
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
