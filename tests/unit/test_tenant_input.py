"""An App spec is untrusted input: whatever a tenant writes is refused by validation (the App
Invalid, nothing scheduled or written) when it would reach past the tenant's own namespace:
option-like repository URLs, the daemon's disk, the daemon's Git cache, the node's and the
cloud's addresses. The configuration file and the CLI flags go through the same checks."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from syncer.cli.options import SourceOptions
from syncer.config import parse_config
from syncer.daemon.appspec import InvalidApp, TenantPolicy, app_spec
from syncer.daemon.notifytarget import parse_allow_list
from syncer.errors import ConfigError

REMOTE = "https://git.example.com/shop.git"


def app(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "syncer.dev/v1alpha1", "kind": "App",
            "metadata": {"name": "shop", "namespace": "team-a"}, "spec": {"repo": REMOTE, **spec}}


def problems(spec: dict[str, Any], policy: TenantPolicy = TenantPolicy()) -> list[str]:
    with pytest.raises(InvalidApp) as raised:
        app_spec(app(spec), policy=policy)
    return raised.value.problems


OPTION_LIKE = [
    ("ssh://-oProxyCommand=touch%20/tmp/pwned/repo.git", "the host starts with '-'"),
    ("ssh://-oProxyCommand=x@host/repo.git", "the user name starts with '-'"),
    ("git@-oProxyCommand=touch:repo.git", "the host starts with '-'"),
    ("-oProxyCommand=x@host:repo.git", "starts with '-', which git would read as an option"),
    ("file://host/srv/git/shop", "file:// URLs cannot name a host"),
]


@pytest.mark.parametrize(("repo", "message"), OPTION_LIKE)
def test_an_option_like_or_host_naming_repository_makes_the_app_invalid(repo: str, message: str) -> None:
    """Accepted before: the URL was parsed only when the first sync opened the source, after the
    App had been scheduled (and in the file mode, after its status ConfigMap was created)."""
    (problem,) = problems({"repo": repo}, TenantPolicy(allow_local_repos=True))
    assert problem.startswith("spec.repo: repository ") and message in problem


@pytest.mark.parametrize(("repo", "message"), OPTION_LIKE)
def test_the_configuration_file_refuses_them_too(repo: str, message: str) -> None:
    text = f"apps:\n- name: shop\n  repo: '{repo}'\n"
    with pytest.raises(ConfigError) as raised:
        parse_config(text, source="apps.yaml", base_dir=Path("/etc/syncer"))
    assert str(raised.value).startswith("apps.yaml:3: apps[0] (shop): repo: repository ")
    assert message in str(raised.value)


@pytest.mark.parametrize(("repo", "message"), OPTION_LIKE)
def test_the_repo_flag_refuses_them_before_anything_runs(repo: str, message: str) -> None:
    with pytest.raises(ConfigError, match="repository .*" + message.replace("(", r"\(")):
        SourceOptions.from_values({"repo": repo}).open()


@pytest.mark.parametrize("repo", ["/srv/git/shop", "file:///srv/git/shop", "file://localhost/srv/git/shop"])
def test_local_repositories_need_the_operators_consent(repo: str) -> None:
    """Accepted before: a tenant read any repository or directory the daemon can read."""
    (problem,) = problems({"repo": repo})
    assert problem == (f"spec.repo: {repo!r} is on the daemon's own disk: local paths and file:// URLs are refused "
                       "unless the operator runs `syncer run --allow-local-repos`")
    assert app_spec(app({"repo": repo}), policy=TenantPolicy(allow_local_repos=True)).config.repo == repo


@pytest.mark.parametrize("repo", [
    "{cache}", "{cache}/shop-0123456789abcdef/repo.git", "{cache}/shop-0123456789abcdef/trees",
    "file://{cache}/shop-0123456789abcdef/repo.git", "{cache}/../repos/shop", "{cache}/..", "/",
    "file://{cache_quoted}/x", "{link}/shop",
])
def test_the_daemons_cache_is_never_a_repository(repo: str, tmp_path: Path) -> None:
    """Accepted before (a local path): a tenant rendered another tenant's export from the
    cache, and the render's messages named the cache's files (repositories and commits)."""
    cache = tmp_path / "cache" / "repos"
    cache.mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(cache)
    written = repo.format(cache=cache, cache_quoted=str(cache).replace("/", "%2F").replace("%2F", "/", 1)
                          .replace("cache", "%63ache"), link=link)
    policy = TenantPolicy(allow_local_repos=True, private_dirs=(cache,))
    (problem,) = problems({"repo": written}, policy)
    assert "is, holds or is inside a private directory of the daemon" in problem
    assert "shop-0123456789abcdef" not in problem.replace(written, "")  # nothing of the cache's listing


def test_other_local_repositories_stay_allowed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    policy = TenantPolicy(allow_local_repos=True, private_dirs=(cache,))
    assert app_spec(app({"repo": str(tmp_path / "repos" / "shop")}), policy=policy).config.repo.endswith("shop")
    assert app_spec(app({"repo": str(tmp_path / "cache-other")}), policy=policy)


@pytest.mark.parametrize(("url", "reason"), [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
    ("http://127.0.0.1:8080/webhook", "127.0.0.1 is a loopback address"),
    ("http://[::1]/hook", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1 is a loopback address"),
    ("http://0.0.0.0/hook", "0.0.0.0 is the unspecified address"),
    ("http://169.254.1.1/hook", "169.254.1.1 is a link-local address"),
    ("http://[fd00:ec2::254]/hook", "fd00:ec2::254 is a cloud metadata address"),
    ("http://localhost:9/hook", "localhost is a loopback address"),
])
def test_a_notification_to_the_daemons_own_or_the_clouds_addresses_makes_the_app_invalid(url: str, reason: str) -> None:
    """Accepted before: any address the daemon reaches."""
    (problem,) = problems({"notification": {"url": url}})
    assert problem.startswith(f"spec.notification: url: {reason}")
    assert "--notify-allow" in problem


def test_the_operator_may_allow_an_address_a_network_or_a_host() -> None:
    policy = TenantPolicy(notify_allow=parse_allow_list(["127.0.0.1", "169.254.0.0/16", "localhost"]))
    for url in ("http://127.0.0.1:8080/hook", "http://169.254.169.254/x", "http://localhost/x"):
        assert app_spec(app({"notification": {"url": url}}), policy=policy).notification is not None
    assert problems({"notification": {"url": "http://[::1]/x"}}, policy)


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://receiver.example.com/", "is not an http:// or https:// URL"),
    ("https://user:pw@receiver.example.com/", "credentials in the URL are not sent"),
    ("http:///path", "has no host"),
    ("http://receiver.example.com:99999/", "is not a valid URL"),
])
def test_a_notification_url_must_be_a_plain_http_url(url: str, message: str) -> None:
    (problem,) = problems({"notification": {"url": url}})
    assert message in problem and "pw" not in problem


def test_everything_wrong_is_reported_at_once() -> None:
    found = problems({"repo": "/srv/git/shop", "interval": "100000000h",
                      "notification": {"url": "http://169.254.169.254/"}})
    assert [p.split(":")[0] for p in found] == ["spec.repo", "spec.interval", "spec.notification"]


def test_a_file_mode_config_reads_as_before(tmp_path: Path) -> None:
    """The operator's own configuration keeps local repositories."""
    config = parse_config(textwrap.dedent("""\
        apps:
        - {name: shop, repo: ./repos/shop}
        - {name: web, repo: 'file:///srv/git/web'}
        """), source="apps.yaml", base_dir=tmp_path)
    assert [a.repo for a in config.apps] == [str(tmp_path / "repos" / "shop"), "file:///srv/git/web"]
