"""Push webhooks from GitHub, Gitea (and Gogs) and GitLab: authenticate, parse, match apps.

Pure functions over headers, body and the configured apps; the HTTP layer calls them and
triggers the matched apps. A webhook only makes a sync happen sooner: the daemon still reads
the revision from Git itself, so a forged or replayed payload can at worst cause one early
check. It is authenticated all the same (GitHub and Gitea sign the body with an HMAC of the
shared secret, GitLab sends the secret as a token), and without a secret the endpoint is off.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from syncer.config import AppConfig

MAX_BODY = 10 * 1024 * 1024
"""GitHub caps payloads at 25 MB but pushes are far smaller; anything bigger is refused."""

_URL_FIELDS = ("clone_url", "ssh_url", "git_url", "html_url", "url", "git_http_url", "git_ssh_url",
               "http_url", "web_url", "homepage")
_SCP_LIKE = re.compile(r"^(?:[^@/:\s]+@)?(?P<host>[^@/:\s]+):(?P<path>.+)$")
_PUSH_EVENTS = {"push", "push hook", "tag push hook"}
_EVENT_HEADERS = ("x-github-event", "x-gitea-event", "x-gogs-event", "x-gitlab-event")


class WebhookRejected(Exception):
    """The request is not an authentic push; `status` is the HTTP answer (400, 401, 403)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class Push:
    """What a push event says: which repository (in every URL form it gave) and which ref."""

    urls: frozenset[str]
    """Normalised repository URLs (see `normalize_repo_url`)."""
    ref: str
    """`refs/heads/main`, `refs/tags/v1.2`; empty when the payload names none."""
    default_branch: str | None = None


def authenticate(headers: Mapping[str, str], body: bytes, *, secret: bytes) -> str:
    """Check the request against the shared secret; returns the provider that signed it.

    `headers` must have lower-case names. Missing credentials -> 401, wrong ones -> 403.
    """
    github = headers.get("x-hub-signature-256")
    if github is not None:
        algorithm, _, signature = github.partition("=")
        if algorithm != "sha256":
            raise WebhookRejected(403, "X-Hub-Signature-256 must be sha256=<hex digest>")
        _check_hmac(signature, body, secret=secret, header="X-Hub-Signature-256")
        return "github"
    for header, provider in (("x-gitea-signature", "gitea"), ("x-gogs-signature", "gogs")):
        value = headers.get(header)
        if value is not None:
            _check_hmac(value, body, secret=secret, header=header)
            return provider
    token = headers.get("x-gitlab-token")
    if token is not None:
        if not hmac.compare_digest(token.encode(), secret):
            raise WebhookRejected(403, "X-Gitlab-Token does not match the webhook secret")
        return "gitlab"
    raise WebhookRejected(
        401, "no signature: expected X-Hub-Signature-256 (GitHub), X-Gitea-Signature (Gitea) or "
        "X-Gitlab-Token (GitLab); configure the webhook with the daemon's secret"
    )


def _check_hmac(signature: str, body: bytes, *, secret: bytes, header: str) -> None:
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.strip().lower().encode(), expected.encode()):
        raise WebhookRejected(403, f"{header} does not match the body signed with the webhook secret")


def event_name(headers: Mapping[str, str]) -> str | None:
    """The event type the provider announced (`push`, `ping`, `Push Hook`), if any."""
    for header in _EVENT_HEADERS:
        if header in headers:
            return headers[header]
    return None


def is_push(headers: Mapping[str, str]) -> bool:
    """Pushes, or requests that do not say (then the payload decides)."""
    name = event_name(headers)
    return name is None or name.strip().lower() in _PUSH_EVENTS


def parse_push(body: bytes) -> Push:
    """The repository URLs and ref of a push payload; 400 when it is not one."""
    try:
        payload = json.loads(body)
    except ValueError as error:
        raise WebhookRejected(400, f"the body is not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "the body is not a JSON object")
    urls: set[str] = set()
    default_branch = None
    for section in ("repository", "project"):
        repository = payload.get(section)
        if not isinstance(repository, dict):
            continue
        for key in _URL_FIELDS:
            value = repository.get(key)
            if isinstance(value, str) and value:
                normalized = normalize_repo_url(value)
                if normalized:
                    urls.add(normalized)
        branch = repository.get("default_branch")
        if isinstance(branch, str) and branch:
            default_branch = branch
    if not urls:
        raise WebhookRejected(400, "the payload names no repository (repository.clone_url, project.git_http_url, ...)")
    ref = payload.get("ref")
    return Push(urls=frozenset(urls), ref=ref if isinstance(ref, str) else "", default_branch=default_branch)


def normalize_repo_url(url: str) -> str:
    """A repository location reduced to `host/path`, so that the forms one repository goes
    by (https, ssh, scp-like `git@host:org/repo`, with or without `.git`, any port) compare
    equal. Host and path are lower-cased: GitHub and GitLab treat paths case-insensitively,
    and a false match only costs one early revision check.
    """
    text = url.strip()
    if "://" in text:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
        path = parts.path
        if parts.scheme.lower() == "file":
            host = ""
    else:
        match = _SCP_LIKE.match(text)
        if match is not None and "/" not in text.split(":", 1)[0]:
            host, path = match.group("host").lower(), "/" + match.group("path")
        else:
            host, path = "", text
    path = str(PurePosixPath("/" + path.strip("/"))) if path.strip("/") else ""
    path = path.rstrip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    return f"{host}{path}".lower()


def ref_matches(revision: str | None, ref: str, *, default_branch: str | None) -> bool:
    """Whether a push to `ref` can change what the app's revision names.

    A branch or tag revision matches pushes to that ref only; a commit SHA matches nothing
    (it never moves); no revision (the remote's default branch) matches the payload's
    default branch, or any push when the payload does not say which that is.
    """
    if not ref:
        return True
    if revision is None:
        return default_branch is None or ref == f"refs/heads/{default_branch}"
    short = ref.split("/", 2)[2] if ref.startswith(("refs/heads/", "refs/tags/")) else ref
    return revision in (ref, short)


def matching_apps(apps: Iterable[AppConfig], push: Push) -> list[str]:
    """The keys (`namespace/name`) of the apps a push concerns: same repository, and a ref the
    app follows."""
    return [
        app.id.key for app in apps
        if normalize_repo_url(app.repo) in push.urls
        and ref_matches(app.revision, push.ref, default_branch=push.default_branch)
    ]
