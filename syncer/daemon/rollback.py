"""`syncer rollback` of an App: the hold to set in its spec (`syncer.hold`), picked from the
App's history as the CLI and the dashboard ask for it; and whether a hold stands, as the
daemon judges it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from syncer.apply.status import now_rfc3339
from syncer.daemon.appclient import subject
from syncer.errors import ConfigError
from syncer.hold import Hold, holds, parse_hold, pick_revision
from syncer.model import Object
from syncer.sources import WORKING_TREE

log = logging.getLogger(__name__)


def rollback_hold(live: Object, *, to: str | None, steps: int | None, requested_by: str) -> Hold:
    """The hold `syncer rollback` sets: the revision picked from the App's history, and the
    revision it goes back from (the one the App is at, or the standing hold's `from`, so that
    going back further still ends at the same commit; a hold a commit ended is replaced)."""
    where = subject(live["metadata"]["namespace"], live["metadata"]["name"])
    status = live.get("status") or {}
    spec_hold = (live.get("spec") or {}).get("hold")
    current = str(status.get("lastAppliedRevision") or "")
    if not current:
        raise ConfigError(f"{where}: nothing applied yet, so there is nothing to go back from")
    revisions = [str(entry.get("revision")) for entry in status.get("history") or []
                 if isinstance(entry, dict) and entry.get("result") == "Succeeded" and entry.get("revision")]
    try:
        choice = pick_revision(revisions, current=current, to=to, steps=steps)
        holding = spec_hold and (status.get("hold") or {}).get("holding")
        from_revision = (parse_hold(spec_hold).from_revision if holding
                         else str(status.get("lastAttemptedRevision") or current))
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    if choice.revision == from_revision:
        raise ConfigError(f"{where}: {choice.revision[:12]} is the revision the hold goes back from; "
                          f"`syncer rollback --release` returns to it")
    return Hold(revision=choice.revision, from_revision=from_revision, requested_at=now_rfc3339(),
                requested_by=requested_by)


class HoldJudge:
    """Whether an App's hold stands with the tracked ref at a given head: it does at the
    revision rolled back from; at another head, while that head renders what `from` rendered
    (`syncer.hold.holds`). Each head is judged once, and `from` is rendered once."""

    def __init__(self, hold: Hold, *, render_digest: Callable[[str], str | None], app: str) -> None:
        self.hold = hold
        self._render_digest = render_digest
        self._app = app
        self._judged: tuple[str, bool] | None = None
        self._from_render: str | None = None

    def holding(self, head: str | None) -> bool:
        hold = self.hold
        if head is None or head == hold.from_revision or head == WORKING_TREE:
            return True
        if self._judged is None or self._judged[0] != head:
            if self._from_render is None:
                self._from_render = self._render_digest(hold.from_revision)
            standing = holds(hold, head=head, head_render=self._render_digest(head), from_render=self._from_render)
            if not standing:
                log.info("app %s: the hold (%s) ends: commit %s changes the app's render", self._app, hold.describe(),
                         head[:12], extra={"revision": head})
            self._judged = (head, standing)
        return self._judged[1]
