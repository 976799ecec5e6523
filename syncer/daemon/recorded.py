"""Which render a tick applies: the head the daemon saw in Git, or the revision the cluster records.

The app's ApplySet parent records the revision last applied to it, by anyone: the daemon, a
hand `syncer sync`, a rollback (`status.syncer.dev/applied-revision`, `syncer.apply.status`).
A heal restores exactly that revision, never the render the daemon happens to hold, which can
be older than what is live: a replica paused past its Lease while another applied a newer
commit, or a newer commit synced by hand before the daemon's next look at Git. Only a Git
change the daemon sees (a head that differs from the one it last resolved) moves the app on,
as Flux moves a Kustomization on when its source's revision changes.

    the daemon is moving to a head it saw      -> sync the head (rendering it when not held)
    (until the cluster records it)                on a tick that asked Git, or holding its render
    nothing recorded (no parent, never synced) -> the held render, else the head
    the held render is of the recorded revision -> heal with it
    the recorded revision is gone from Git     -> no heal: the objects stay as they are
    otherwise                                  -> render the recorded revision, then heal with it

A heal is applied only while the record stays what it was when the tick decided: the sync
checks it again on the plan it makes under the app's lock (`SyncOptions.expect_applied`).
"""

from __future__ import annotations

from enum import StrEnum

from syncer.apply.applyset import Inventory
from syncer.apply.membercache import MemberReads
from syncer.apply.status import read_status
from syncer.kube import Kube
from syncer.model import Object


class Move(StrEnum):
    SYNC_HEAD = "sync-head"
    """Render the head the daemon is moving to (unless held) and sync it: no expectation of
    the record, since this sync is what changes it."""
    HEAL_HELD = "heal-held"
    """Sync the render the daemon holds: it is of the recorded revision (or nothing is recorded)."""
    RENDER_RECORDED = "render-recorded"
    """Render the recorded revision first (the held render is of another), then sync it."""
    NO_HEAL = "no-heal"
    """The recorded revision is gone from Git: nothing to heal with; leave the objects."""


def next_move(*, held: str | None, recorded: str, target: str | None, asked_git: bool, gone: str | None) -> Move:
    """What a tick applies. `held`: the revision of the render the daemon holds (None: none);
    `recorded`: the applied revision the cluster records ("" when nothing is); `target`: the
    head the daemon is moving the app to (None: the cluster records it, or someone else moved
    the app since); `asked_git`: this tick resolved the head (a tick a member's change started
    does not); `gone`: a revision found missing from Git."""
    if target is not None and (asked_git or held == target):
        # A tick that a change started heals while the head failed to render, rather than
        # asking Git again for a render that fails.
        return Move.SYNC_HEAD
    if not recorded:
        return Move.HEAL_HELD if held is not None else Move.SYNC_HEAD
    if recorded == held:
        return Move.HEAL_HELD
    if recorded == gone:
        return Move.NO_HEAL
    return Move.RENDER_RECORDED


def moved_by_others(recorded: str, *, seen: str | None, ours: str | None) -> bool:
    """Whether the record changed through someone else's sync: it is neither what the daemon
    saw before (`seen`, None: nothing yet) nor what the daemon itself last recorded (`ours`).
    A cache that has not yet caught up with the daemon's own record still shows `seen`."""
    return seen is not None and recorded not in (seen, ours)


def applied_revision(parent: Object | None) -> str:
    """The applied revision a parent records ("" when none)."""
    status = read_status(parent)
    return status.applied_revision if status is not None else ""


def read_recorded(kube: Kube, inventory: Inventory, *, cache: MemberReads | None) -> str:
    """The applied revision the app's parent records, from the daemon's watch of the parents
    when it is established and the app's identity may read it there (no request at rest, and
    none for a new App's missing parent); read when the cache cannot tell
    (`MemberCache.parent`)."""
    parent_ref = inventory.parent
    namespace = parent_ref.namespace or ""
    if cache is not None:
        known, parent = cache.parent(namespace, parent_ref.name)
        if known:
            return applied_revision(parent)
    live = kube.get(kube.resource_for("v1", "ConfigMap"), parent_ref.name, namespace=namespace)
    return applied_revision(live)
