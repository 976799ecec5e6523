"""A team's Git repository and what every revision of it renders, as the model knows it.

An app's content is plain data: ConfigMaps (name -> one value) and one Widget (a custom
resource whose CRD the cluster's admin owns) with a size. Each revision is recorded in the
app's `Ledger` in the order it was introduced (a commit to the tracked branch, or a commit
synced by hand from another branch): the order in which revisions may become the app's
recorded revision. A broken revision renders nothing (a YAML error)."""

from __future__ import annotations

import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.daemonmodel.lab import WIDGET_GROUP, WIDGET_KIND, WIDGET_VERSION

Key = tuple[str, str]
"""(kind, name) of an object in the app's target namespace."""
WIDGET_NAME = "gadget"
BROKEN_FILE = "broken.yaml"


@dataclass(frozen=True)
class Content:
    configmaps: tuple[tuple[str, str], ...]
    widget: str

    def desired(self) -> dict[Key, dict[str, str]]:
        """Each object and the fields the test compares: a ConfigMap's data, a Widget's spec."""
        found: dict[Key, dict[str, str]] = {("ConfigMap", name): {"value": value} for name, value in self.configmaps}
        found[(WIDGET_KIND, WIDGET_NAME)] = {"size": self.widget}
        return found

    def files(self) -> dict[str, str]:
        files = {f"cm-{name}.yaml": textwrap.dedent(f"""\
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: {name}
            data:
              value: "{value}"
            """) for name, value in self.configmaps}
        files["widget.yaml"] = textwrap.dedent(f"""\
            apiVersion: {WIDGET_GROUP}/{WIDGET_VERSION}
            kind: {WIDGET_KIND}
            metadata:
              name: {WIDGET_NAME}
            spec:
              size: "{self.widget}"
            """)
        return files


@dataclass(frozen=True)
class Revision:
    sha: str
    content: Content | None
    """None: the revision does not render (a YAML error)."""
    how: str
    """"commit" (to the tracked branch), "hand" (synced by hand from another branch),
    "elsewhere" (a commit to another path), or "rollback" (an earlier one, again)."""
    at: float = 0.0
    """When it was introduced (time.monotonic()): a rollback introduces an earlier revision
    again, as the newest from then on, not for what was sampled before."""


@dataclass
class Ledger:
    revisions: list[Revision] = field(default_factory=list)

    def add(self, revision: Revision) -> None:
        self.revisions.append(revision)

    def index(self, sha: str | None, *, at: float | None = None) -> int:
        """The revision's latest place in the order of introduction, as of `at` (None: now);
        -1 for none or an unknown one."""
        for position in range(len(self.revisions) - 1, -1, -1):
            revision = self.revisions[position]
            if revision.sha == sha and (at is None or revision.at <= at):
                return position
        return -1

    def get(self, sha: str | None) -> Revision | None:
        position = self.index(sha)
        return self.revisions[position] if position >= 0 else None

    def short(self, message: str) -> Revision | None:
        """The revision a message names by its 12-character prefix (as Events do)."""
        return next((r for r in self.revisions if r.sha[:12] in message), None)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


class Repo:
    """A team's repository; apps render one path of it each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)
        git(root, "init", "-q", "-b", "main")
        for key, value in (("user.email", "model@example.com"), ("user.name", "model"), ("commit.gpgsign", "false")):
            git(root, "config", key, value)

    def head(self) -> str:
        return git(self.root, "rev-parse", "main")

    def _write(self, path: str, files: dict[str, str]) -> None:
        folder = self.root / path
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.yaml"):
            old.unlink()
        for name, text in files.items():
            (folder / name).write_text(text)

    def commit(self, path: str, files: dict[str, str], message: str) -> str:
        """A commit to main that replaces the path's files."""
        self._write(path, files)
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def commit_aside(self, path: str, files: dict[str, str], message: str, *, branch: str) -> str:
        """A commit on `branch`, a child of main's head; main and the working tree stay."""
        git(self.root, "checkout", "-q", "-B", branch, "main")
        try:
            self._write(path, files)
            git(self.root, "add", "-A")
            git(self.root, "commit", "-q", "--allow-empty", "-m", message)
            return git(self.root, "rev-parse", "HEAD")
        finally:
            git(self.root, "checkout", "-q", "-f", "main")

    def fast_forward(self, sha: str) -> None:
        git(self.root, "merge", "-q", "--ff-only", sha)


def broken_files(content: Content) -> dict[str, str]:
    """The content's files and one that is not YAML: the whole path fails to render."""
    return {**content.files(), BROKEN_FILE: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n"}
