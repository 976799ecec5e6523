"""Git sources against real repositories made in temporary directories (no network).

Remotes are bare repositories reached through file:// URLs or local paths; credentials are
tested against a throw-away HTTPS server on 127.0.0.1 that serves a repository with Git's
"dumb" HTTP protocol behind Basic authentication, and ssh through a stand-in `ssh` on PATH.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from syncer.errors import ConfigError, SourceError
from syncer.sources import WORKING_TREE, GitAuth, GitSource, Snapshot, open_source
from syncer.sources.auth import ASKPASS_SCRIPT, scrub, ssh_command
from syncer.sources.giturl import parse_url
from syncer.sources.snapshot import RevisionGone

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    completed = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True)
    return completed.stdout.strip()


@dataclass
class Upstream:
    """A work tree that pushes to a bare repository, the remote under test."""

    work: Path
    bare: Path

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def commit(self, files: dict[str, str], *, branch: str = "main") -> str:
        git(self.work, "checkout", "-q", "-B", branch)
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", f"change {sorted(files)}")
        git(self.work, "push", "-q", "--force", "origin", branch)
        git(self.bare, "update-server-info")
        return git(self.work, "rev-parse", "HEAD")

    def tag(self, name: str, *, annotated: bool = False) -> None:
        git(self.work, "tag", *(["-a", "-m", name] if annotated else []), name)
        git(self.work, "push", "-q", "origin", name)
        git(self.bare, "update-server-info")


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    work, bare = tmp_path / "work", tmp_path / "remote.git"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(work, "remote", "add", "origin", str(bare))
    repo = Upstream(work=work, bare=bare)
    repo.commit({"app/cm.yaml": "version: 1\n"})
    return repo


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def content(snapshot: Snapshot) -> str:
    return (snapshot.root / "app/cm.yaml").read_text()


# -- revisions ------------------------------------------------------------------------------


def test_default_revision_is_the_remote_head(upstream: Upstream, cache: Path) -> None:
    head = git(upstream.work, "rev-parse", "HEAD")
    source = open_source(upstream.url, cache_dir=cache)

    assert source.remote_revision() == head
    snapshot = source.fetch()

    assert snapshot.revision == head
    assert snapshot.repo == upstream.url
    assert content(snapshot) == "version: 1\n"
    assert not (snapshot.root / ".git").exists()


def test_new_commits_give_a_new_snapshot_and_leave_the_old_one_alone(upstream: Upstream, cache: Path) -> None:
    source = open_source(upstream.url, cache_dir=cache)
    first = source.fetch()
    assert source.fetch() == first

    second_sha = upstream.commit({"app/cm.yaml": "version: 2\n"})

    assert source.remote_revision() == second_sha
    second = source.fetch()
    assert second.revision == second_sha
    assert second.root != first.root
    assert content(second) == "version: 2\n"
    assert content(first) == "version: 1\n"


@pytest.mark.parametrize("kind", ["branch", "lightweight tag", "annotated tag", "full sha", "short sha"])
def test_revision_kinds(upstream: Upstream, cache: Path, kind: str) -> None:
    old = git(upstream.work, "rev-parse", "HEAD")
    upstream.tag("v1", annotated=False)
    upstream.tag("v2", annotated=True)
    feature = upstream.commit({"app/cm.yaml": "feature\n"}, branch="feature")
    upstream.commit({"app/cm.yaml": "version: 3\n"}, branch="main")
    revision, expected, text = {
        "branch": ("feature", feature, "feature\n"),
        "lightweight tag": ("v1", old, "version: 1\n"),
        "annotated tag": ("v2", old, "version: 1\n"),
        "full sha": (old, old, "version: 1\n"),
        "short sha": (old[:8], old, "version: 1\n"),
    }[kind]
    source = open_source(upstream.url, revision=revision, cache_dir=cache)

    assert source.remote_revision() == expected
    snapshot = source.fetch()
    assert snapshot.revision == expected
    assert content(snapshot) == text


def test_branch_moves_are_seen_by_remote_revision(upstream: Upstream, cache: Path) -> None:
    source = open_source(upstream.url, revision="main", cache_dir=cache)
    before = source.remote_revision()

    after = upstream.commit({"app/other.yaml": "x: 1\n"})

    assert before != after
    assert source.remote_revision() == after
    assert source.fetch().revision == after


def test_other_full_ref_names(upstream: Upstream, cache: Path) -> None:
    change = upstream.commit({"app/cm.yaml": "proposed\n"}, branch="proposal")
    git(upstream.work, "push", "-q", "origin", "proposal:refs/pull/7/head")
    source = open_source(upstream.url, revision="refs/pull/7/head", cache_dir=cache)

    assert source.remote_revision() == change
    assert content(source.fetch()) == "proposed\n"
    assert open_source(upstream.url, revision="refs/heads/proposal", cache_dir=cache).fetch().revision == change


def test_sha_not_advertised_by_the_remote_is_resolved_after_fetch(upstream: Upstream, cache: Path) -> None:
    old = git(upstream.work, "rev-parse", "HEAD")
    upstream.commit({"app/cm.yaml": "version: 2\n"})
    source = open_source(upstream.url, revision=old.upper(), cache_dir=cache)

    assert source.remote_revision() == old
    assert source.fetch().revision == old


@pytest.mark.parametrize("revision", ["no-such-branch", "deadbeefdeadbeef", "0" * 40])
def test_unknown_revision(upstream: Upstream, cache: Path, revision: str) -> None:
    source = open_source(upstream.url, revision=revision, cache_dir=cache)

    with pytest.raises(SourceError, match=f"revision '{revision}' not found"):
        source.fetch()


def test_a_given_commit_is_fetched_while_the_remote_has_it(upstream: Upstream, cache: Path) -> None:
    """The daemon heals to the revision its cluster records (issue 20, report 4): any commit
    the remote still has, on the tracked branch or not; one it no longer has is RevisionGone,
    even while the shared clone still holds its objects."""
    first = git(upstream.work, "rev-parse", "HEAD")
    upstream.commit({"app/cm.yaml": "version: 2\n"}, branch="main")
    side = upstream.commit({"app/cm.yaml": "side\n"}, branch="side")  # on top of main, not in it
    source = open_source(upstream.url, revision="main", cache_dir=cache)
    source.fetch()

    older = source.fetch_commit(first)
    assert (older.revision, content(older)) == (first, "version: 1\n")
    assert content(source.fetch_commit(side)) == "side\n"

    git(upstream.bare, "branch", "-D", "side")  # force-pushed away, and collected
    git(upstream.bare, "reflog", "expire", "--expire=now", "--all")
    git(upstream.bare, "gc", "-q", "--prune=now")
    with pytest.raises(RevisionGone) as gone:
        source.fetch_commit(side)
    assert gone.value.revision == side
    with pytest.raises(RevisionGone):
        source.fetch_commit("not-a-sha")
    assert content(source.fetch_commit(first)) == "version: 1\n"


def test_a_plain_directory_has_no_commits(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("a: b\n")
    source = open_source(str(tmp_path))
    assert source.fetch_commit(WORKING_TREE).root == tmp_path.resolve()
    with pytest.raises(RevisionGone):
        source.fetch_commit("1" * 40)


def test_unknown_branch_is_reported_by_remote_revision_without_a_fetch(upstream: Upstream, cache: Path) -> None:
    source = open_source(upstream.url, revision="no-such-branch", cache_dir=cache)

    with pytest.raises(SourceError, match="revision 'no-such-branch' not found"):
        source.remote_revision()
    assert not any(cache.glob("*/repo.git"))


def test_unreachable_repository(tmp_path: Path, cache: Path) -> None:
    source = open_source(f"file://{tmp_path}/missing.git", cache_dir=cache)

    with pytest.raises(SourceError, match="missing.git: cannot reach the repository"):
        source.remote_revision()
    with pytest.raises(SourceError, match="cannot reach the repository"):
        source.fetch()
    assert not any(cache.glob("*/repo.git")), "a failed first clone must not leave a cache entry"


def test_empty_repository_has_no_default_branch(tmp_path: Path, cache: Path) -> None:
    git(tmp_path, "init", "-q", "--bare", "empty.git")
    source = open_source(str(tmp_path / "empty.git"), cache_dir=cache)

    with pytest.raises(SourceError, match="no default branch"):
        source.remote_revision()


def test_local_repository_path_is_a_git_source(upstream: Upstream, cache: Path) -> None:
    source = open_source(str(upstream.work), cache_dir=cache)

    assert isinstance(source, GitSource)
    assert source.fetch().revision == git(upstream.work, "rev-parse", "HEAD")


# -- the cache ------------------------------------------------------------------------------


def test_one_clone_per_repository_reused_and_old_exports_pruned(upstream: Upstream, cache: Path) -> None:
    source = GitSource(parse_url(upstream.url), cache_dir=cache, keep_exports=2)
    roots = [source.fetch().root]
    for number in range(2, 5):
        upstream.commit({"app/cm.yaml": f"version: {number}\n"})
        roots.append(source.fetch().root)

    (clone,) = cache.glob("*/repo.git")
    assert clone.parent.name.startswith("remote-")
    assert sorted(p.name for p in (clone.parent / "trees").iterdir()) == sorted(r.name for r in roots[-2:])
    assert content(source.fetch()) == "version: 4\n"


def test_concurrent_fetches_share_the_clone_safely(upstream: Upstream, cache: Path) -> None:
    sources = [open_source(upstream.url, cache_dir=cache) for _ in range(4)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        snapshots = list(pool.map(lambda source: source.fetch(), sources))

    assert len({snapshot.root for snapshot in snapshots}) == 1
    assert content(snapshots[0]) == "version: 1\n"


def test_the_cache_directory_does_not_depend_on_credentials(tmp_path: Path) -> None:
    plain = GitSource(parse_url("https://git.example.com/org/shop.git"), cache_dir=tmp_path)
    with_userinfo = GitSource(parse_url("https://bot:s3cret-token@git.example.com/org/shop.git"), cache_dir=tmp_path)

    assert plain.directory == with_userinfo.directory
    assert plain.directory.name.startswith("shop-")
    assert "s3cret" not in repr(with_userinfo)


# -- unsafe input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "repo",
    [
        "ext::sh -c touch% /tmp/syncer-pwned",
        "ext://sh -c touch /tmp/syncer-pwned",
        "fd::17",
        "--upload-pack=touch /tmp/syncer-pwned",
        "-oProxyCommand=touch /tmp/syncer-pwned",
        "gopher://example.com/x.git",
    ],
)
def test_unsafe_repository_locations_are_refused(cache: Path, repo: str) -> None:
    with pytest.raises(ConfigError, match="repository"):
        open_source(repo, cache_dir=cache).fetch()
    assert not Path("/tmp/syncer-pwned").exists()


@pytest.mark.parametrize("revision", ["--output=/tmp/x", "main..other", "HEAD@{1}", "main^", "a b"])
def test_unsafe_revisions_are_refused(upstream: Upstream, cache: Path, revision: str) -> None:
    with pytest.raises(ConfigError, match="not a branch, tag or commit SHA"):
        open_source(upstream.url, revision=revision, cache_dir=cache)


# -- https credentials ----------------------------------------------------------------------

TOKEN = "tok-8c7f1d2e9a"


class _GitHandler(SimpleHTTPRequestHandler):
    """Serves a directory with Basic authentication: Git's dumb HTTP protocol needs no more."""

    expected = ""

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def https_remote(upstream: Upstream, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`https://127.0.0.1:<port>/remote.git`, readable as user `bot` with TOKEN only."""
    cert, key = certificate
    monkeypatch.setenv("GIT_SSL_CAINFO", str(cert))
    handler = type("Handler", (_GitHandler,), {"expected": "Basic " + base64.b64encode(f"bot:{TOKEN}".encode()).decode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(upstream.bare.parent)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/remote.git"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def files_containing(directory: Path, text: str) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file() and text.encode() in path.read_bytes()]


def test_token_file_authenticates_and_is_stored_nowhere(
    https_remote: str, upstream: Upstream, tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    caplog.set_level(logging.DEBUG)
    source = open_source(https_remote, cache_dir=cache, auth=GitAuth(username="bot", token_file=token_file))

    assert source.remote_revision() == git(upstream.work, "rev-parse", "HEAD")
    snapshot = source.fetch()

    assert content(snapshot) == "version: 1\n"
    assert files_containing(cache, TOKEN) == []
    assert TOKEN not in caplog.text


def test_token_from_an_environment_variable(
    https_remote: str, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNCER_TEST_TOKEN", TOKEN)
    source = open_source(https_remote, cache_dir=cache, auth=GitAuth(username="bot", token_env="SYNCER_TEST_TOKEN"))

    assert content(source.fetch()) == "version: 1\n"


def test_credentials_in_the_url_are_used_then_stripped(https_remote: str, cache: Path) -> None:
    with_userinfo = https_remote.replace("https://", f"https://bot:{TOKEN}@")
    source = open_source(with_userinfo, cache_dir=cache)

    snapshot = source.fetch()

    assert snapshot.repo == https_remote
    (clone,) = cache.glob("*/repo.git")
    assert git(clone, "config", "remote.origin.url") == https_remote
    assert files_containing(cache, TOKEN) == []


def test_wrong_token_is_an_authentication_error_without_the_token(https_remote: str, cache: Path) -> None:
    wrong = "wrong-" + TOKEN
    source = open_source(https_remote.replace("https://", f"https://bot:{wrong}@"), cache_dir=cache)

    with pytest.raises(SourceError) as excinfo:
        source.fetch()

    assert "authentication failed" in str(excinfo.value)
    assert wrong not in str(excinfo.value)
    assert excinfo.value.__cause__ is None


def test_private_repository_without_credentials(https_remote: str, cache: Path) -> None:
    with pytest.raises(SourceError, match="authentication failed"):
        open_source(https_remote, cache_dir=cache).remote_revision()


def test_askpass_helper_answers_only_for_the_repository_host(tmp_path: Path) -> None:
    script = tmp_path / "askpass.sh"
    script.write_text(ASKPASS_SCRIPT)
    script.chmod(0o700)
    env = {
        "PATH": os.environ["PATH"],
        "SYNCER_GIT_USERNAME": "bot",
        "SYNCER_GIT_PASSWORD": TOKEN,
        "SYNCER_GIT_HOST": "git.example.com",
    }

    def ask(prompt: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), prompt], env=env, capture_output=True, text=True, check=False)

    assert ask("Username for 'https://git.example.com': ").stdout == "bot\n"
    assert ask("Password for 'https://bot@git.example.com': ").stdout == f"{TOKEN}\n"
    redirected = ask("Password for 'https://bot@evil.example.net': ")
    assert (redirected.returncode, redirected.stdout) == (1, "")
    lookalike = ask("Password for 'https://bot@git.example.com.evil.net': ")
    assert (lookalike.returncode, lookalike.stdout) == (1, "")


@pytest.mark.parametrize(
    ("auth", "repo", "message"),
    [
        (GitAuth(token_env="X", token_file=Path("t")), "https://h/r.git", "either as a file or"),
        (GitAuth(token_env="X"), "http://h/r.git", "refusing to send credentials over plain http"),
        (GitAuth(token_env="X"), "git@h:r.git", "for ssh use --ssh-key"),
        (GitAuth(ssh_key_file=Path("k")), "https://h/r.git", "only apply to ssh URLs"),
        (GitAuth(username="bot"), "https://h/r.git", "a user name needs a token"),
        (GitAuth(token_env="X"), "https://u:p@h/r.git", "both in the URL and in a token option"),
    ],
)
def test_impossible_credential_combinations(tmp_path: Path, auth: GitAuth, repo: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_source(repo, cache_dir=tmp_path, auth=auth)


def test_missing_token_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNCER_UNSET_TOKEN", raising=False)
    source = open_source("https://127.0.0.1:1/r.git", cache_dir=tmp_path, auth=GitAuth(token_env="SYNCER_UNSET_TOKEN"))

    with pytest.raises(ConfigError, match="environment variable SYNCER_UNSET_TOKEN .* is not set"):
        source.remote_revision()


def test_scrub_removes_secrets_and_userinfo() -> None:
    text = "fatal: unable to access 'https://bot:hunter22@host/x.git/': token hunter22 / Authorization: Basic abc"

    assert scrub(text, ["hunter22"]) == "fatal: unable to access 'https://***@host/x.git/': token *** / Authorization: ***"


# -- ssh ------------------------------------------------------------------------------------


def test_ssh_command_always_verifies_host_keys(tmp_path: Path) -> None:
    command = ssh_command(GitAuth(ssh_key_file=tmp_path / "id_ed25519", known_hosts_file=tmp_path / "known"))

    assert command == (
        f"ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={tmp_path}/known "
        f"-i {tmp_path}/id_ed25519 -o IdentitiesOnly=yes"
    )
    assert "StrictHostKeyChecking=yes" in ssh_command(GitAuth())
    assert "UserKnownHostsFile=" + str(Path("~/.ssh/known_hosts").expanduser()) in ssh_command(GitAuth())


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `ssh` on PATH that records its arguments and refuses the host as real ssh would."""
    bin_dir, recorded = tmp_path / "bin", tmp_path / "ssh-args"
    bin_dir.mkdir()
    fake = bin_dir / "ssh"
    fake.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$@\" > {recorded}\n"
        "echo 'No ED25519 host key is known for example.invalid and you have requested strict checking.' >&2\n"
        "echo 'Host key verification failed.' >&2\n"
        "exit 255\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return recorded


def test_unknown_ssh_host_is_refused(fake_ssh: Path, tmp_path: Path, cache: Path) -> None:
    key, known_hosts = tmp_path / "id_ed25519", tmp_path / "known_hosts"
    key.write_text("not really a key\n")
    known_hosts.write_text("")
    source = open_source(
        "git@example.invalid:org/repo.git", cache_dir=cache, auth=GitAuth(ssh_key_file=key, known_hosts_file=known_hosts)
    )

    with pytest.raises(SourceError) as excinfo:
        source.remote_revision()

    assert "the ssh host key of example.invalid is not in" in str(excinfo.value)
    assert str(known_hosts) in str(excinfo.value)
    args = fake_ssh.read_text().splitlines()
    for expected in ["StrictHostKeyChecking=yes", f"UserKnownHostsFile={known_hosts}", "IdentitiesOnly=yes", "BatchMode=yes"]:
        assert expected in args
    assert args[args.index("-i") + 1] == str(key)
    assert "git@example.invalid" in args


def test_missing_known_hosts_file_is_refused_before_connecting(fake_ssh: Path, tmp_path: Path, cache: Path) -> None:
    source = open_source(
        "ssh://git@example.invalid:2222/org/repo.git", cache_dir=cache, auth=GitAuth(known_hosts_file=tmp_path / "none")
    )

    with pytest.raises(SourceError, match="known_hosts file .* does not exist.*ssh-keyscan -H -p 2222 example.invalid"):
        source.fetch()
    assert not fake_ssh.exists()
