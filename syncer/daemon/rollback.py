"""`syncer rollback` of an App, as the CLI and the dashboard ask for it: the hold to set in its
spec (`syncer.hold`), picked from the App's history with the user's view of the App."""

from __future__ import annotations

from syncer.apply.status import now_rfc3339
from syncer.daemon.appclient import subject
from syncer.errors import ConfigError
from syncer.hold import Hold, parse_hold, pick_revision
from syncer.model import Object


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
