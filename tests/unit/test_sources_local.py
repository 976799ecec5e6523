"""Plain directories as a source, and how open_source tells locations apart."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from syncer.errors import ConfigError, SourceError
from syncer.sources import GitAuth, GitSource, LocalSource, Snapshot, open_source, render
from syncer.sources.giturl import parse_url


def test_plain_directory_is_read_in_place(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: live}\n")
    source = open_source(str(tmp_path))

    assert isinstance(source, LocalSource)
    assert source.remote_revision() == "working-tree"
    snapshot = source.fetch()
    assert snapshot == Snapshot(revision="working-tree", root=tmp_path.resolve(), repo=str(tmp_path))
    assert [m.ref.name for m in render(snapshot)] == ["live"]

    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: edited}\n")
    assert [m.ref.name for m in render(source.fetch())] == ["edited"]


def test_relative_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "deploy").mkdir()
    monkeypatch.chdir(tmp_path)

    snapshot = open_source("deploy").fetch()

    assert snapshot.root == tmp_path / "deploy"
    assert snapshot.repo == "deploy"


def test_a_revision_needs_a_git_repository(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--revision needs a Git repository"):
        open_source(str(tmp_path), revision="main")


def test_credentials_do_not_apply_to_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="credentials do not apply"):
        open_source(str(tmp_path), auth=GitAuth(token_env="X"))


def test_missing_directory_and_file_are_errors(tmp_path: Path) -> None:
    (tmp_path / "file.yaml").write_text("")

    with pytest.raises(SourceError, match="no such directory, and not a URL"):
        open_source(str(tmp_path / "missing"))
    with pytest.raises(SourceError, match="is a file, not a directory"):
        open_source(str(tmp_path / "file.yaml"))


def test_directory_removed_after_opening(tmp_path: Path) -> None:
    directory = tmp_path / "gone"
    directory.mkdir()
    source = open_source(str(directory))
    directory.rmdir()

    with pytest.raises(SourceError, match="does not exist"):
        source.fetch()


def test_git_work_tree_and_bare_repository_are_git_sources_but_subdirectories_are_not(tmp_path: Path) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(["git", "init", "-q", str(tmp_path / "work")], check=True, env=env)
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "bare.git")], check=True, env=env)
    (tmp_path / "work/deploy").mkdir()

    assert isinstance(open_source(str(tmp_path / "work"), cache_dir=tmp_path), GitSource)
    assert isinstance(open_source(str(tmp_path / "bare.git"), cache_dir=tmp_path), GitSource)
    assert isinstance(open_source(str(tmp_path / "work/deploy")), LocalSource)


def test_a_local_directory_whose_name_has_a_colon_is_not_taken_for_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "host:path").mkdir()
    monkeypatch.chdir(tmp_path)

    assert isinstance(open_source("host:path"), LocalSource)


@pytest.mark.parametrize(
    ("location", "url", "transport", "host", "username", "password"),
    [
        ("https://git.example.com/org/repo.git", "https://git.example.com/org/repo.git", "https", "git.example.com", None, None),
        ("https://bot:t%40k@git.example.com:8443/r.git", "https://git.example.com:8443/r.git", "https", "git.example.com:8443", "bot", "t@k"),
        ("HTTPS://tok@git.example.com/r", "https://git.example.com/r", "https", "git.example.com", "tok", None),
        ("ssh://git@git.example.com:2222/org/r.git", "ssh://git@git.example.com:2222/org/r.git", "ssh", "git.example.com:2222", "git", None),
        ("git@github.com:org/r.git", "git@github.com:org/r.git", "ssh", "github.com", "git", None),
        ("file:///srv/git/r.git", "file:///srv/git/r.git", "file", "", None, None),
    ],
)
def test_url_parsing(location: str, url: str, transport: str, host: str, username: str | None, password: str | None) -> None:
    parsed = parse_url(location)

    assert (parsed.url, parsed.transport, parsed.host, parsed.username, parsed.password) == (
        url, transport, host, username, password,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("ssh://git:pw@host/r.git", "passwords in ssh URLs are not supported"),
        ("https:///r.git", "has no host"),
        ("https://host/r.git?x=1", "query strings"),
        ("file://otherhost/r.git", "cannot name a host"),
        ("https://bot:secret-tok@host:notaport/r.git", "not a valid URL"),
    ],
)
def test_bad_urls(location: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as excinfo:
        parse_url(location)
    assert "secret-tok" not in str(excinfo.value)
