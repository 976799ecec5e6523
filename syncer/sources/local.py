"""A plain directory as a source: what is on disk now, with no revision to name."""

from __future__ import annotations

from pathlib import Path

from syncer.errors import SourceError
from syncer.sources.snapshot import WORKING_TREE, RevisionGone, Snapshot


class LocalSource:
    """A directory that is not a Git repository, read in place.

    Unlike a Git export it is not immutable: whoever edits the directory edits the snapshot.
    That is the point (edit, render, diff), and why its revision is always `working-tree`.
    """

    def __init__(self, directory: Path, *, display: str | None = None) -> None:
        self.directory = directory
        self.display = display or str(directory)

    def __repr__(self) -> str:
        return f"LocalSource({self.display!r})"

    def remote_revision(self, *, max_age: float = 0.0) -> str:
        return WORKING_TREE

    def fetch(self) -> Snapshot:
        if not self.directory.is_dir():
            raise SourceError(f"repository {self.display}: directory does not exist (any more)")
        return Snapshot(revision=WORKING_TREE, root=self.directory.resolve(), repo=self.display)

    def fetch_commit(self, sha: str) -> Snapshot:
        if sha == WORKING_TREE:
            return self.fetch()
        raise RevisionGone(f"repository {self.display}: a plain directory has no commit {sha}", repo=self.display,
                           revision=sha)
