"""The data a source hands to rendering, and the interface every source implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from syncer.errors import SourceError

WORKING_TREE = "working-tree"
"""The revision of a plain directory: there is no commit to name, only what is on disk."""


@dataclass(frozen=True)
class Snapshot:
    """One revision of the configuration, checked out where rendering can read it.

    `root` never changes after `fetch()` returned it (for Git sources it is a directory named
    after the commit), so a sync that is still reading it cannot see a later revision.
    """

    revision: str
    """The resolved commit SHA, or `working-tree` for a plain directory."""
    root: Path
    repo: str
    """The repository as shown to people: never contains credentials."""
    render_cache: Path | None = None
    """Where rendered manifests of exactly this snapshot may be cached (Git snapshots only)."""
    tree_of: Callable[[str], str | None] | None = field(default=None, compare=False)
    """A path's content id (its Git tree), when nothing under it can change without changing
    that id (no symbolic links, no submodules), else None: the daemon renders a path again
    only when it changed, not on every commit to the repository."""


class Source(Protocol):
    """Where desired state comes from: a Git repository at a revision, or a plain directory."""

    def remote_revision(self, *, max_age: float = 0.0) -> str:
        """The revision `fetch()` would produce now, found without downloading objects; an
        answer up to `max_age` seconds old will do, where the source can share one.

        The daemon compares it with the last synced revision and skips `fetch()` when equal.
        """
        ...

    def fetch(self) -> Snapshot:
        """Bring the configuration to disk and return an immutable snapshot of it."""
        ...

    def fetch_commit(self, sha: str) -> Snapshot:
        """Exactly the commit `sha`, whatever the tracked revision names now: the daemon heals
        an app to the revision its cluster records, which a hand `syncer sync` or another
        replica may have applied. RevisionGone when the repository no longer has it."""
        ...


class RevisionGone(SourceError):
    """The repository no longer has a commit (force-pushed away), or a source has no commits
    at all (a plain directory)."""

    def __init__(self, message: str, *, repo: str, revision: str) -> None:
        super().__init__(message)
        self.repo = repo
        self.revision = revision
