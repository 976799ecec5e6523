"""Uncommitted edits in a local Git checkout.

`syncer diff --repo .` reads the checkout's HEAD commit, as every Git source is read at a
commit; `kubectl diff -f` and `flux diff --path` read the files on disk. The CLI warns with
what this module finds, and `--working-tree` reads the files on disk instead.
"""

from __future__ import annotations

from pathlib import Path

from git import Repo
from git.exc import GitError


def is_work_tree(directory: Path) -> bool:
    """A checkout with files (not a bare repository)."""
    return (directory / ".git").exists()


def uncommitted_changes(directory: Path, path: str = ".") -> list[str]:
    """`git status --porcelain` lines (`M web.yaml`, `?? new.yaml`) for the files under `path`
    that differ from HEAD, untracked files included; [] when clean or not a work tree."""
    if not is_work_tree(directory):
        return []
    try:
        with Repo(directory) as repo:
            output: str = repo.git.status("--porcelain=v1", "--untracked-files=all", "--", path)
    except GitError:
        return []
    return [line.strip() for line in output.splitlines() if line.strip()]
