"""A rollback's hold: the one deliberate way back in time, and what ends it.

`syncer rollback` syncs an earlier revision and *holds* it: the daemon (or a plain `syncer
sync` of a CLI app) would otherwise move the app forward to the tracked ref's head again at
its next look at Git, as Argo CD's auto-sync undoes a rollback. The hold names both ends:

    revision   what the app was rolled back to
    from       the revision it was rolled back from (the head then)

While the tracked ref still renders what `from` rendered, the app stays at `revision`; a
commit that changes the app's render (not merely the repository: in a monorepo most commits
touch other paths), or `syncer rollback --release`, ends the hold, and the app moves on as
usual. For an App the hold is a field of its spec that the user sets with their own rights
(`spec.hold`), so the daemon, which syncs with the App's identity, never grants it itself;
for a CLI app it is an annotation on the app's ApplySet parent.

Pure: the daemon and the CLI decide with the same functions, from plain data.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from syncer.model import Manifest

_FULL_SHA = re.compile(r"[0-9a-f]{40}")
HOLD_FIELDS = ("revision", "from", "requestedAt", "requestedBy")


@dataclass(frozen=True)
class Hold:
    revision: str
    """The commit the app was rolled back to."""
    from_revision: str
    """The commit it was rolled back from: the hold lasts while the head renders as this did."""
    requested_at: str = ""
    """When `syncer rollback` set it (RFC 3339), so a second rollback is a new hold."""
    requested_by: str = ""
    """Who asked: the kubeconfig context's user (`syncer rollback`, as the history names a
    CLI sync's user), or the dashboard's signed-in user."""

    def to_spec(self) -> dict[str, str]:
        fields = {"revision": self.revision, "from": self.from_revision, "requestedAt": self.requested_at,
                  "requestedBy": self.requested_by}
        return {key: value for key, value in fields.items() if value}

    def describe(self) -> str:
        return f"rolled back to {self.revision[:12]} from {self.from_revision[:12]}"


def parse_hold(value: object) -> Hold:
    """`spec.hold` (or a parent's hold annotation, decoded): {revision, from, requestedAt,
    requestedBy}, both revisions full commit SHAs, as `syncer rollback` writes them."""
    if not isinstance(value, dict):
        raise ValueError("must be {revision, from, requestedAt, requestedBy}, as syncer rollback writes it")
    unknown = sorted(str(key) for key in value if key not in HOLD_FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}; expected {', '.join(HOLD_FIELDS)}")
    revisions = []
    for key in ("revision", "from"):
        sha = value.get(key)
        if not isinstance(sha, str) or not _FULL_SHA.fullmatch(sha):
            raise ValueError(f"{key}: {sha!r} must be a full commit SHA (40 lowercase hex digits)")
        revisions.append(sha)
    if revisions[0] == revisions[1]:
        raise ValueError(f"revision and from are both {revisions[0][:12]}: a hold goes back from one to another")
    for key in ("requestedAt", "requestedBy"):
        if not isinstance(value.get(key, ""), str):
            raise ValueError(f"{key}: must be a string")
    return Hold(revision=revisions[0], from_revision=revisions[1], requested_at=str(value.get("requestedAt", "")),
                requested_by=str(value.get("requestedBy", "")))


def render_digest(manifests: Sequence[Manifest]) -> str:
    """What a render produces, as one digest: equal for two revisions whose commits differ
    only elsewhere in the repository (or in comments and file layout)."""
    objects = sorted(json.dumps(m.obj, sort_keys=True, separators=(",", ":")) for m in manifests)
    return "sha256:" + hashlib.sha256("\n".join(objects).encode()).hexdigest()


def holds(hold: Hold, *, head: str, head_render: str | None, from_render: str | None) -> bool:
    """Whether the hold still stands with the tracked ref at `head`: it points at the revision
    rolled back from, or at a commit that renders the same (`head_render`, `from_render`:
    `render_digest`s; None when a render failed or is not known: a head whose render is not
    known cannot be shown to leave the app as it was, so a broken commit ends the hold and shows its failure)."""
    if head == hold.from_revision:
        return True
    return head_render is not None and head_render == from_render


@dataclass(frozen=True)
class HistoryChoice:
    revision: str
    position: int
    """Distinct revisions back from the current one (1: the one before)."""


def pick_revision(revisions: Sequence[str], *, current: str, to: str | None = None,
                  steps: int | None = None) -> HistoryChoice:
    """The revision a rollback goes to, from the revisions the history applied successfully
    (newest first, repeats allowed): `to`, a full or abbreviated (at least 7 digits) SHA
    among them; or `steps` distinct revisions back from `current`. ValueError says why none."""
    distinct: list[str] = []
    for revision in revisions:
        if revision not in distinct:
            distinct.append(revision)
    earlier = [revision for revision in distinct if revision != current]
    known = ", ".join(revision[:12] for revision in distinct) or "none"
    if to is not None:
        wanted = to.lower()
        if len(wanted) < 7 or not re.fullmatch(r"[0-9a-f]+", wanted):
            raise ValueError(f"--to {to!r}: give a commit SHA (at least 7 hex digits) from the app's history")
        if current.startswith(wanted):
            raise ValueError(f"--to {to}: the app already runs {current[:12]}")
        matches = [revision for revision in earlier if revision.startswith(wanted)]
        if not matches:
            raise ValueError(f"--to {to}: not a revision the app's history applied (it has {known}); "
                             "`syncer history` lists them")
        if len(matches) > 1:
            raise ValueError(f"--to {to}: ambiguous, matches {', '.join(m[:12] for m in matches)}")
        return HistoryChoice(revision=matches[0], position=earlier.index(matches[0]) + 1)
    if steps is None or steps < 1:
        raise ValueError("--steps must be 1 or more")
    if steps > len(earlier):
        raise ValueError(f"--steps {steps}: the app's history has {len(earlier)} earlier revision(s) "
                         f"({known}); `syncer history` lists them")
    return HistoryChoice(revision=earlier[steps - 1], position=steps)


def hold_status(hold: Hold | None, *, holding: bool, head: str | None) -> dict[str, Any] | None:
    """`status.hold`: the hold as the daemon applies it (None: no hold in the spec)."""
    if hold is None:
        return None
    status: dict[str, Any] = {**hold.to_spec(), "holding": holding}
    if not holding and head:
        status["releasedBy"] = head
    return status


__all__ = ["Hold", "HistoryChoice", "hold_status", "holds", "parse_hold", "pick_revision", "render_digest"]
