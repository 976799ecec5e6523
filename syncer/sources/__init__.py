"""The first pipeline stage: a repository at a revision, and a path in it, become manifests.

    source = open_source("https://git.example.com/shop.git", revision="main")
    snapshot = source.fetch()                  # Snapshot(revision=<sha>, root=<export>, repo=...)
    manifests = render(snapshot, "deploy/prod", namespace="shop")

Nothing here talks to the Kubernetes API.
"""

from __future__ import annotations

from pathlib import Path

from syncer.errors import ConfigError, SourceError
from syncer.sources.auth import GitAuth
from syncer.sources.git import DEFAULT_CACHE_DIR, GitSource, SharedLsRemote
from syncer.sources.giturl import local_url, looks_like_url, parse_url, reject_unsafe
from syncer.sources.local import LocalSource
from syncer.sources.helm import HelmSettings
from syncer.sources.render import chart_at, render, runs_helm, with_created_namespace
from syncer.sources.snapshot import WORKING_TREE, Snapshot, Source
from syncer.sources.worktree import is_work_tree, uncommitted_changes
from syncer.sources.limits import RenderLimits

__all__ = [
    "DEFAULT_CACHE_DIR",
    "WORKING_TREE",
    "GitAuth",
    "GitSource",
    "HelmSettings",
    "LocalSource",
    "RenderLimits",
    "Snapshot",
    "SharedLsRemote",
    "Source",
    "chart_at",
    "runs_helm",
    "is_git_repository",
    "is_work_tree",
    "open_source",
    "render",
    "uncommitted_changes",
    "with_created_namespace",
]


def open_source(
    repo: str,
    *,
    revision: str | None = None,
    cache_dir: Path | None = None,
    auth: GitAuth | None = None,
    working_tree: bool = False,
    shared: SharedLsRemote | None = None,
) -> Source:
    """The source for `repo`: a URL or a local Git repository (cloned into the cache and read
    at `revision`, default the remote's HEAD), or a plain directory (read in place).
    `working_tree` reads a local checkout's files as they are on disk, edits included.

    Only validates and parses; nothing is fetched until `remote_revision()` or `fetch()`.
    Sources given one `shared` share their `ls-remote` answers per repository (the daemon).
    """
    reject_unsafe(repo)
    if working_tree:
        local = Path(repo).expanduser()
        if "://" in repo or not local.is_dir():
            raise ConfigError(f"repository {repo}: --working-tree needs a local directory")
        if revision is not None:
            raise ConfigError(f"repository {repo}: give --working-tree or --revision, not both")
        return LocalSource(local, display=repo)
    if "://" not in repo:
        local = Path(repo).expanduser()
        if local.is_dir():
            if is_git_repository(local):
                return GitSource(local_url(local), revision=revision, cache_dir=cache_dir, auth=auth, shared=shared)
            if revision is not None:
                raise ConfigError(
                    f"repository {repo}: --revision needs a Git repository, and this is a plain "
                    "directory (its files are read as they are)"
                )
            if auth is not None and auth != GitAuth():
                raise ConfigError(f"repository {repo}: credentials do not apply to a plain directory")
            return LocalSource(local, display=repo)
        if local.exists():
            raise SourceError(f"repository {repo}: is a file, not a directory or Git repository")
    if looks_like_url(repo):
        return GitSource(parse_url(repo), revision=revision, cache_dir=cache_dir, auth=auth, shared=shared)
    raise SourceError(
        f"repository {repo}: no such directory, and not a URL "
        "(https://host/repo.git, ssh://host/repo.git, git@host:repo.git or file:///path)"
    )


def is_git_repository(directory: Path) -> bool:
    """The top of a work tree (has .git) or a bare repository; a subdirectory of a work tree
    is a plain directory, read in place."""
    if (directory / ".git").exists():
        return True
    return (directory / "HEAD").is_file() and (directory / "objects").is_dir() and (directory / "refs").is_dir()
