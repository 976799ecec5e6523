"""Git repositories as a source: a cached clone per repository, one immutable export per commit.

Layout under the cache directory (default ~/.cache/syncer/repos):

    <name>-<hash of the credential-free URL>/
        lock            flock(2) held while the clone is fetched or exported from
        repo.git/       bare clone; branches under refs/remotes/origin/, tags under refs/tags/
        trees/<sha>/    exactly that commit's files, written once and never changed

An export is written to a temporary directory and renamed into place, so a reader sees either
nothing or the complete tree; since a tree is named by its commit, a later fetch adds a new
directory instead of changing files a running sync is reading. Old trees are pruned by last
use, keeping a few.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from git import Repo
from git.cmd import Git
from git.exc import GitCommandError, GitError

from syncer.errors import ConfigError, SourceError
from syncer.sources.auth import (
    GitAuth,
    check_auth,
    check_ssh_files,
    ensure_askpass,
    git_environment,
    known_hosts_file,
    scrub,
    secrets_of,
)
from syncer.sources.giturl import RepoURL, reject_unsafe
from syncer.sources.snapshot import RevisionGone, Snapshot

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("~/.cache/syncer/repos")
KEEP_EXPORTS = 5
NETWORK_TIMEOUT = 300.0
"""Seconds a single ls-remote or fetch may take before it is killed."""

_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SHORT_SHA = re.compile(r"[0-9a-f]{4,63}")
_REVISION = re.compile(r"[A-Za-z0-9._/@+-]+")
_REMOTE_HEAD = "refs/syncer/remote-head"
_BRANCHES = "refs/remotes/origin/"
_OTHER_REFS = "refs/syncer/refs/"


def cache_root(cache_dir: Path | None) -> Path:
    """The directory every clone and export is under (`--cache-dir`, else the default)."""
    return (cache_dir or DEFAULT_CACHE_DIR).expanduser().absolute()


def check_revision(revision: str) -> None:
    """Refuse revisions git could read as an option or as a revision expression."""
    if (
        not _REVISION.fullmatch(revision)
        or revision.startswith(("-", "/", "."))
        or revision.endswith(("/", ".", ".lock"))
        or ".." in revision
        or "//" in revision
        or "@{" in revision
    ):
        raise ConfigError(
            f"revision {revision!r}: not a branch, tag or commit SHA "
            "(letters, digits and . _ / @ + - only; no '..', no leading '-')"
        )


class SharedLsRemote:
    """One `git ls-remote` per repository for many sources: apps that share a repository (and
    credentials) share its answer while it is younger than the age each asks for. Callers of
    one repository wait for a single call in flight instead of each making their own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, GitAuth], tuple[float, dict[str, str]]] = {}
        self._flights: dict[tuple[str, GitAuth], threading.Lock] = {}
        self.calls = 0

    def advertised(
        self, key: tuple[str, GitAuth], *, max_age: float, ls_remote: Callable[[], dict[str, str]]
    ) -> dict[str, str]:
        with self._lock:
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:
            with self._lock:
                answer = self._answers.get(key)
            if answer is not None and time.monotonic() - answer[0] <= max_age:
                return answer[1]
            started = time.monotonic()
            advertised = ls_remote()
            with self._lock:
                self.calls += 1
                self._answers[key] = (started, advertised)
            return advertised


class GitSource:
    """A Git repository at a branch, tag or commit; see the module docstring for the cache."""

    def __init__(
        self,
        url: RepoURL,
        *,
        revision: str | None = None,
        cache_dir: Path | None = None,
        auth: GitAuth | None = None,
        keep_exports: int = KEEP_EXPORTS,
        timeout: float = NETWORK_TIMEOUT,
        shared: SharedLsRemote | None = None,
    ) -> None:
        reject_unsafe(url.url)
        if revision is not None:
            check_revision(revision)
        self.url = url
        self.revision = revision
        self.auth = auth or GitAuth()
        check_auth(url, self.auth)
        self.cache_dir = cache_root(cache_dir)
        self.keep_exports = max(1, keep_exports)
        self.timeout = timeout
        self.directory = self.cache_dir / _cache_name(url.url)
        self._resolved_short_sha: str | None = None
        self._shared = shared

    def __repr__(self) -> str:
        return f"GitSource({self.url.url!r}, revision={self.revision!r})"

    # -- Source --------------------------------------------------------------------------

    def remote_revision(self, *, max_age: float = 0.0) -> str:
        """The commit the revision names on the remote now, via `git ls-remote`; with a
        `SharedLsRemote`, an answer up to `max_age` seconds old about every ref of the
        repository, shared with the other sources of the same repository.

        A full SHA is its own answer. An abbreviated SHA that is not also a ref name can only
        be expanded with the objects at hand, so the first call fetches; SHAs never move, so
        the answer is remembered.
        """
        revision = self.revision
        if revision is not None and _FULL_SHA.fullmatch(revision.lower()):
            return revision.lower()
        if self._resolved_short_sha is not None:
            return self._resolved_short_sha
        if self._shared is not None:
            advertised = self._shared.advertised((self.url.url, self.auth), max_age=max_age,
                                                 ls_remote=lambda: self._ls_remote([]))
        else:
            advertised = self._ls_remote(_ls_remote_patterns(revision))
        sha = _pick_advertised(revision, advertised)
        if sha is not None:
            return sha
        if revision is None:
            raise SourceError(
                f"repository {self.url}: the remote has no default branch (HEAD); "
                "is it empty? Push a commit or pass --revision"
            )
        if _SHORT_SHA.fullmatch(revision.lower()):
            return self.fetch().revision
        raise self._revision_not_found()

    def fetch(self) -> Snapshot:
        """Update the cached clone, resolve the revision in it and export that commit."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            repo = self._update_clone()
            try:
                sha, by_sha = self._resolve(repo)
                root = self._export(repo, sha)
            finally:
                repo.close()
            self._prune_exports(keep=root)
        if by_sha:
            self._resolved_short_sha = sha
        return self._snapshot(sha, root)

    def fetch_commit(self, sha: str) -> Snapshot:
        """Exactly the commit `sha`, when the remote still has it: reachable from one of its
        branches or tags after a fetch made with this source's credentials, or served by the
        remote on its own. A commit that only the shared clone still holds (force-pushed away,
        or fetched once with another App's credentials) is refused: RevisionGone."""
        lowered = sha.lower()
        if not _FULL_SHA.fullmatch(lowered):
            raise RevisionGone(f"repository {self.url}: {sha!r} is not a commit SHA", repo=self.url.url,
                               revision=sha)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            repo = self._update_clone()
            try:
                # A commit present but unreachable is not fetched again: git would answer from
                # the clone without asking the remote.
                served = (_rev_parse(repo, f"{lowered}^{{commit}}") is None and self._fetch_sha(repo, lowered)
                          and _rev_parse(repo, f"{lowered}^{{commit}}") is not None)
                if not (_reachable(repo, lowered) or served):
                    raise RevisionGone(f"repository {self.url}: has no commit {lowered} any more (no branch or tag "
                                       "contains it, and the remote does not serve it)", repo=self.url.url,
                                       revision=lowered)
                root = self._export(repo, lowered)
            finally:
                repo.close()
            self._prune_exports(keep=root)
        return self._snapshot(lowered, root)

    def _snapshot(self, sha: str, root: Path) -> Snapshot:
        return Snapshot(revision=sha, root=root, repo=self.url.url, render_cache=self.directory / "renders" / sha,
                        tree_of=functools.partial(_self_contained_tree, self.directory / "repo.git", sha))

    # -- clone and fetch -----------------------------------------------------------------

    def _update_clone(self) -> Repo:
        """First use: init a bare repository beside the final one, fetch, rename into place."""
        bare = self.directory / "repo.git"
        if bare.is_dir():
            repo = Repo(bare)
            self._fetch_refs(repo)
            return repo
        self.directory.mkdir(parents=True, exist_ok=True)
        for abandoned in self.directory.glob(".clone-*"):
            _remove(abandoned)  # left by a process that died mid-clone (we hold the lock)
        staging = Path(tempfile.mkdtemp(prefix=".clone-", dir=self.directory))
        try:
            repo = Repo.init(staging, bare=True)
            repo.create_remote("origin", self.url.url)
            self._fetch_refs(repo)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        repo.close()
        staging.rename(bare)
        return Repo(bare)

    def _fetch_refs(self, repo: Repo) -> None:
        refspecs = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]
        if self.revision is None:
            # The remote's HEAD as a plain ref: the default branch's commit at fetch time.
            refspecs.append(f"+HEAD:{_REMOTE_HEAD}")
        elif _is_other_ref(self.revision):
            refspecs.append(f"+{self.revision}:{_OTHER_REFS}{self.revision.removeprefix('refs/')}")
        self._run_remote(repo.git, "fetch", "--prune", "--no-tags", "origin", *refspecs)

    def _fetch_sha(self, repo: Repo, sha: str) -> bool:
        """Fetch a commit no ref points to (servers usually allow any reachable SHA)."""
        try:
            self._run_remote(repo.git, "fetch", "--no-tags", "origin", sha)
        except SourceError:
            return False
        return True

    def _ls_remote(self, patterns: list[str]) -> dict[str, str]:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        output = self._run_remote(Git(str(self.cache_dir)), "ls-remote", self.url.url, *patterns)
        advertised: dict[str, str] = {}
        for line in output.splitlines():
            sha, _, ref = line.partition("\t")
            if ref:
                advertised[ref.strip()] = sha.strip()
        return advertised

    def _run_remote(self, git: Git, command: str, *args: str) -> str:
        """Run a git command that talks to the remote, with credentials in its environment only."""
        if self.url.transport == "ssh":
            check_ssh_files(self.auth, host=self.url.host)
        env = git_environment(self.url, self.auth, askpass=ensure_askpass(self.cache_dir))
        started = time.monotonic()
        try:
            status, stdout, stderr = git.execute(
                ["git", command, *args],
                env=env,
                kill_after_timeout=self.timeout,
                with_extended_output=True,
                with_exceptions=False,
            )
        except GitError as error:
            raise SourceError(f"repository {self.url}: git {command} could not run: {self._scrub(str(error))}") from None
        log.debug("git %s %s: exit %s in %.1fs", command, self.url, status, time.monotonic() - started)
        if status != 0:
            raise SourceError(self._describe_failure(command, str(stderr), elapsed=time.monotonic() - started))
        return str(stdout)

    # -- resolve -------------------------------------------------------------------------

    def _resolve(self, repo: Repo) -> tuple[str, bool]:
        """The commit SHA of the revision in the freshly fetched clone, and whether the
        revision was a SHA (which never moves) rather than a ref."""
        revision = self.revision
        for ref in _local_candidates(revision):
            sha = _rev_parse(repo, f"{ref}^{{commit}}")
            if sha is not None:
                return sha, False
        if revision is None:
            raise SourceError(f"repository {self.url}: the remote has no default branch (HEAD); pass --revision")
        lowered = revision.lower()
        if _SHORT_SHA.fullmatch(lowered):
            sha = _rev_parse(repo, f"{lowered}^{{commit}}")
            if sha is None and _FULL_SHA.fullmatch(lowered) and self._fetch_sha(repo, lowered):
                sha = _rev_parse(repo, f"{lowered}^{{commit}}")
            if sha is not None:
                return sha, True
        raise self._revision_not_found()

    def _revision_not_found(self) -> SourceError:
        return SourceError(
            f"repository {self.url}: revision {self.revision!r} not found: no branch or tag of "
            "that name, and no commit with that SHA; check the spelling and that it was pushed"
        )

    # -- export --------------------------------------------------------------------------

    def _export(self, repo: Repo, sha: str) -> Path:
        """`trees/<sha>`: the commit's files, written to a temporary directory then renamed."""
        trees = self.directory / "trees"
        target = trees / sha
        if target.is_dir():
            os.utime(target)
            return target
        trees.mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{sha[:12]}-", dir=trees))
        index = staging.with_name(staging.name + ".index")
        env = {"GIT_DIR": str(repo.git_dir), "GIT_WORK_TREE": str(staging), "GIT_INDEX_FILE": str(index)}
        try:
            # read-tree + checkout-index rather than `git archive`: .gitattributes export-ignore
            # must not silently drop manifests.
            git = Git(str(staging))
            git.execute(["git", "read-tree", sha], env=env)
            git.execute(["git", "checkout-index", "--all", "--force"], env=env)
            staging.rename(target)
        except GitCommandError as error:
            raise SourceError(
                f"repository {self.url}: cannot check out {sha} into {trees}: {self._scrub(str(error.stderr))}"
            ) from None
        except OSError:
            if not target.is_dir():
                raise
        finally:
            index.unlink(missing_ok=True)
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return target

    def _prune_exports(self, *, keep: Path) -> None:
        """Delete all but the most recently used trees, and leftovers of interrupted exports."""
        trees = self.directory / "trees"
        exports: list[tuple[float, Path]] = []
        for entry in trees.iterdir():
            if entry.name.startswith("."):
                # Only exports under the lock create these, so any present now is abandoned.
                _remove(entry)
            elif entry != keep and entry.is_dir():
                exports.append((entry.stat().st_mtime, entry))
        exports.sort(reverse=True)
        for _, stale in exports[self.keep_exports - 1 :]:
            log.debug("pruning export %s", stale)
            _remove(stale)
            _remove(self.directory / "renders" / stale.name)

    # -- helpers -------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One fetch/export at a time per repository, across threads and processes."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _scrub(self, text: str) -> str:
        return scrub(text, secrets_of(self.url, self.auth))

    def _describe_failure(self, command: str, stderr: str, *, elapsed: float) -> str:
        """An actionable message from git's stderr, with every credential removed."""
        detail = _last_lines(self._scrub(stderr))
        lowered = stderr.lower()
        where = f"repository {self.url}"
        if elapsed >= self.timeout:
            return f"{where}: git {command} timed out after {self.timeout:.0f}s; check the network or raise the timeout"
        if "host key verification failed" in lowered or "remote host identification has changed" in lowered:
            return (
                f"{where}: the ssh host key of {self.url.host} is not in "
                f"{known_hosts_file(self.auth)} (or does not match it); unknown hosts are never "
                "accepted: verify the key's fingerprint and add it to the known_hosts file "
                f"({detail})"
            )
        if any(marker in lowered for marker in _AUTH_FAILURES):
            return (
                f"{where}: authentication failed; check the credentials (--ssh-key, "
                f"--username, --token-file/--token-env) and that they may read this repository ({detail})"
            )
        if "couldn't find remote ref" in lowered or "not our ref" in lowered:
            return f"{where}: revision {self.revision!r} not found on the remote ({detail})"
        return f"{where}: cannot reach the repository; check the URL and the network ({detail})"


_AUTH_FAILURES = (
    "authentication failed",
    "permission denied",
    "could not read username",
    "could not read password",
    "invalid username or password",
    "invalid credentials",
    "the requested url returned error: 401",
    "the requested url returned error: 403",
    "unprotected private key file",
    "access denied",
)


def _cache_name(url: str) -> str:
    """A readable, collision-free directory name: last path part plus a hash of the URL."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    stem = re.sub(r"\.git$", "", url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1])
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem)[:40].lstrip(".") or "repo"
    return f"{stem}-{digest}"


def _ls_remote_patterns(revision: str | None) -> list[str]:
    if revision is None:
        return ["HEAD"]
    if revision.startswith("refs/"):
        return [revision, f"{revision}^{{}}"]
    return [f"refs/tags/{revision}", f"refs/tags/{revision}^{{}}", f"refs/heads/{revision}"]


def _pick_advertised(revision: str | None, advertised: Mapping[str, str]) -> str | None:
    """Tags before branches, as in git's own rev-parse; annotated tags peeled to the commit."""
    if revision is None:
        return advertised.get("HEAD")
    refs = [revision] if revision.startswith("refs/") else [f"refs/tags/{revision}", f"refs/heads/{revision}"]
    for ref in refs:
        sha = advertised.get(f"{ref}^{{}}") or advertised.get(ref)
        if sha:
            return sha
    return None


def _local_candidates(revision: str | None) -> list[str]:
    """Where the fetch stored what the revision names on the remote, in preference order."""
    if revision is None:
        return [_REMOTE_HEAD]
    if revision.startswith("refs/heads/"):
        return [_BRANCHES + revision.removeprefix("refs/heads/")]
    if revision.startswith("refs/tags/"):
        return [revision]
    if _is_other_ref(revision):
        return [_OTHER_REFS + revision.removeprefix("refs/")]
    return [f"refs/tags/{revision}", _BRANCHES + revision]


def _is_other_ref(revision: str) -> bool:
    """A full ref name outside branches and tags, e.g. refs/pull/7/head: fetched on its own."""
    return revision.startswith("refs/") and not revision.startswith(("refs/heads/", "refs/tags/"))


def _self_contained_tree(git_dir: Path, sha: str, path: str) -> str | None:
    """The Git tree id of `path` in commit `sha`, when it holds no symbolic links or submodules
    (whose content is not part of that id); else None."""
    parts = [part for part in PurePosixPath(path).parts if part not in (".", "/")]
    if ".." in parts:
        return None
    git = Git(str(git_dir))
    status, tree, _ = git.execute(["git", "--git-dir", str(git_dir), "rev-parse", "--verify", "--quiet",
                                   f"{sha}:{'/'.join(parts)}" if parts else f"{sha}^{{tree}}"],
                                  with_extended_output=True, with_exceptions=False)
    if status != 0:
        return None
    status, listing, _ = git.execute(["git", "--git-dir", str(git_dir), "ls-tree", "-r", str(tree).strip()],
                                     with_extended_output=True, with_exceptions=False)
    if status != 0 or any(line.startswith(("120000 ", "160000 ")) for line in str(listing).splitlines()):
        return None
    return str(tree).strip()


def _reachable(repo: Repo, sha: str) -> bool:
    """Whether a fetched branch or tag (or a ref the source fetched on its own) contains the commit."""
    status, stdout, _ = repo.git.execute(
        ["git", "for-each-ref", "--count=1", "--format=%(refname)", f"--contains={sha}",
         _BRANCHES, "refs/tags/", _OTHER_REFS, _REMOTE_HEAD],
        with_extended_output=True,
        with_exceptions=False,
    )
    return status == 0 and bool(str(stdout).strip())


def _rev_parse(repo: Repo, expression: str) -> str | None:
    status, stdout, _ = repo.git.execute(
        ["git", "rev-parse", "--verify", "--quiet", expression],
        with_extended_output=True,
        with_exceptions=False,
    )
    return str(stdout).strip() if status == 0 else None


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:]) or "no output from git"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
