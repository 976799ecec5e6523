"""Webhooks: only correctly signed pushes get through, and they trigger exactly the apps they
concern (same repository in any URL form, and a ref the app follows)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from syncer.config import AppConfig
from syncer.daemon.webhook import (
    Push,
    WebhookRejected,
    authenticate,
    is_push,
    matching_apps,
    normalize_repo_url,
    parse_push,
    ref_matches,
)

SECRET = b"s3cret"
BODY = json.dumps({"ref": "refs/heads/main", "repository": {"clone_url": "https://github.com/Org/Deploy.git"}}).encode()


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("headers", "provider"),
    [
        ({"x-hub-signature-256": "sha256=" + sign(BODY)}, "github"),
        ({"x-hub-signature-256": "sha256=" + sign(BODY).upper()}, "github"),
        ({"x-gitea-signature": sign(BODY)}, "gitea"),
        ({"x-gogs-signature": sign(BODY)}, "gogs"),
        ({"x-gitlab-token": "s3cret"}, "gitlab"),
    ],
)
def test_authentic_requests_name_their_provider(headers: dict[str, str], provider: str) -> None:
    assert authenticate(headers, BODY, secret=SECRET) == provider


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "no signature"),
        ({"x-github-event": "push"}, 401, "no signature"),
        ({"x-hub-signature-256": "sha256=" + sign(BODY, b"other")}, 403, "X-Hub-Signature-256 does not match"),
        ({"x-hub-signature-256": "sha1=" + sign(BODY)}, 403, "must be sha256="),
        ({"x-hub-signature-256": "sha256=" + sign(BODY + b" ")}, 403, "does not match"),
        ({"x-gitea-signature": "00" * 32}, 403, "x-gitea-signature does not match"),
        ({"x-gitlab-token": "s3cre"}, 403, "X-Gitlab-Token does not match"),
        ({"x-gitlab-token": ""}, 403, "X-Gitlab-Token does not match"),
    ],
)
def test_missing_or_wrong_signatures_are_rejected(headers: dict[str, str], status: int, message: str) -> None:
    with pytest.raises(WebhookRejected, match=message) as raised:
        authenticate(headers, BODY, secret=SECRET)
    assert raised.value.status == status


@pytest.mark.parametrize(
    ("headers", "push"),
    [
        ({}, True),
        ({"x-github-event": "push"}, True),
        ({"x-github-event": "ping"}, False),
        ({"x-gitea-event": "push"}, True),
        ({"x-gitlab-event": "Push Hook"}, True),
        ({"x-gitlab-event": "Tag Push Hook"}, True),
        ({"x-gitlab-event": "Merge Request Hook"}, False),
    ],
)
def test_only_push_events_trigger(headers: dict[str, str], push: bool) -> None:
    assert is_push(headers) is push


def test_github_payload() -> None:
    body = {
        "ref": "refs/heads/main",
        "repository": {
            "clone_url": "https://github.com/org/deploy.git", "ssh_url": "git@github.com:org/deploy.git",
            "git_url": "git://github.com/org/deploy.git", "html_url": "https://github.com/org/deploy",
            "default_branch": "main",
        },
    }
    assert parse_push(json.dumps(body).encode()) == Push(
        urls=frozenset({"github.com/org/deploy"}), ref="refs/heads/main", default_branch="main")


def test_gitlab_payload() -> None:
    body = {
        "ref": "refs/tags/v1",
        "project": {"git_http_url": "https://gitlab.example.com/g/app.git",
                    "git_ssh_url": "ssh://git@gitlab.example.com:2222/g/app.git", "default_branch": "trunk"},
    }
    push = parse_push(json.dumps(body).encode())
    assert push.urls == {"gitlab.example.com/g/app"}
    assert (push.ref, push.default_branch) == ("refs/tags/v1", "trunk")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the body is not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"ref": "refs/heads/main"}', "names no repository"),
    ],
)
def test_bad_payloads_are_400(body: bytes, message: str) -> None:
    with pytest.raises(WebhookRejected, match=message) as raised:
        parse_push(body)
    assert raised.value.status == 400


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("https://github.com/org/deploy.git", "github.com/org/deploy"),
        ("https://GitHub.com/Org/Deploy", "github.com/org/deploy"),
        ("http://github.com/org/deploy/", "github.com/org/deploy"),
        ("https://user@github.com:443/org/deploy.git", "github.com/org/deploy"),
        ("git@github.com:org/deploy.git", "github.com/org/deploy"),
        ("ssh://git@github.com:22/org/deploy.git", "github.com/org/deploy"),
        ("git://github.com/org/deploy.git", "github.com/org/deploy"),
        ("https://gitea.local:3000/org/sub/deploy.git", "gitea.local/org/sub/deploy"),
        ("file:///srv/git/deploy.git", "/srv/git/deploy"),
        ("/srv/git/deploy", "/srv/git/deploy"),
        ("/srv/git//deploy/", "/srv/git/deploy"),
    ],
)
def test_url_forms_of_one_repository_compare_equal(url: str, normalized: str) -> None:
    assert normalize_repo_url(url) == normalized


@pytest.mark.parametrize(
    ("revision", "ref", "default_branch", "matches"),
    [
        ("main", "refs/heads/main", None, True),
        ("main", "refs/heads/dev", None, False),
        ("release/1.x", "refs/heads/release/1.x", None, True),
        ("v1", "refs/tags/v1", None, True),
        ("v1", "refs/heads/main", None, False),
        ("refs/heads/main", "refs/heads/main", None, True),
        ("0123456789abcdef0123456789abcdef01234567", "refs/heads/main", None, False),
        (None, "refs/heads/main", "main", True),
        (None, "refs/heads/dev", "main", False),
        (None, "refs/heads/dev", None, True),
        ("main", "", None, True),
    ],
)
def test_ref_matching(revision: str | None, ref: str, default_branch: str | None, matches: bool) -> None:
    assert ref_matches(revision, ref, default_branch=default_branch) is matches


def test_matching_apps_by_repository_and_branch() -> None:
    apps = [
        AppConfig(name="shop", repo="git@github.com:org/deploy.git", revision="main"),
        AppConfig(name="shop-dev", repo="https://github.com/org/deploy", revision="dev"),
        AppConfig(name="other", repo="https://github.com/org/other.git", revision="main"),
        AppConfig(name="follows-head", repo="https://github.com/ORG/deploy.git"),
    ]
    push = Push(urls=frozenset({"github.com/org/deploy"}), ref="refs/heads/main", default_branch="main")
    assert matching_apps(apps, push) == ["default/shop", "default/follows-head"]
