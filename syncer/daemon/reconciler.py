"""One tick of one app: check Git, fetch and render when it moved, sync, record the outcome.

    new revision in Git            -> fetch, render, sync
    same revision, selfHeal        -> heal: sync a render of the revision the cluster records
                                      (a sync that finds nothing to change writes nothing)
    same revision, no selfHeal     -> nothing, unless the last attempt failed (then retry) or
                                      a member changed (then the tick plans the drift, writes nothing)
    a plain directory (no commits) -> render again every tick: its files may have changed

A heal restores the revision the app's ApplySet parent records as applied, by anyone (a hand
`syncer sync`, another replica), never merely the render this daemon holds: see
`syncer.daemon.recorded` for the decision, and for why only a Git change the daemon sees
moves the app on. A tick that a member's change started (`note_drift`, from the daemon's
watches) skips Git and works from the render it holds when that is of the recorded revision,
so drift is healed in the time a sync takes. A replica that lost the app (`forget`) starts
its next tick from nothing: no render, no head, no noted change. With the daemon's
`MemberCache`, the plan reads the live objects from the watches: a tick that finds nothing to
change sends no request to the API server, and a tick after which neither Git nor any watched
object changed does not plan at all. Apps that share a repository share its
`ls-remote` answer for up to their interval; a webhook or reconcile-now (`expect_news`) asks
Git afresh.

A step does the sync and nothing else: it returns a `SyncStep` (the attempt, if it made one,
and whether a member's change started it), and records the attempt on the app's ApplySet
parent (only when it is news, see `syncer.apply.status`). What the tick as a whole found (the
sync, the drift, the health) is computed once from the step, by `syncer.daemon.tick`, and read
by the metrics, the App status and the notifications. Failures never escape a step: they
become a failed attempt and `ok=False`, which the scheduler turns into backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from pathlib import Path

from syncer.apply import ChangeSet, PruneBudgetExceeded, SyncOptions, plan_sync, sync
from syncer.apply.applyset import Inventory
from syncer.apply.changeset import summary_text
from syncer.apply.membercache import MemberReads
from syncer.apply.history import HistoryEntry, Trigger, TriggerKind
from syncer.apply.status import OutcomeRecorder, rfc3339
from syncer.apply.sync import RecordMoved
from syncer.config import AppConfig
from syncer.daemon.approval import PendingPlan, approved, pending_plan
from syncer.daemon.metrics import Metrics
from syncer.daemon.recorded import Move, moved_by_others, next_move, read_recorded
from syncer.errors import ClusterError, RenderTooLarge, SyncerError
from syncer.daemon.rollback import HoldJudge
from syncer.hold import hold_status, render_digest
from syncer.kube import Kube
from syncer.model import Manifest
from syncer.sources import (
    WORKING_TREE,
    SharedLsRemote,
    Snapshot,
    Source,
    chart_at,
    open_source,
    runs_helm,
    with_created_namespace,
)
from syncer.sources import sops
from syncer.sources.helm import with_capabilities
from syncer.sources.kustomize import KUSTOMIZATION_FILES
from syncer.sources.renderpool import InProcess, Renderer
from syncer.sources.snapshot import RevisionGone

log = logging.getLogger(__name__)

UNKNOWN_REVISION = "unknown"
"""The revision of an attempt that failed before it knew one (nothing rendered yet)."""
DEFAULT_LOCK_TIMEOUT = 30.0
"""How long a tick waits for another sync of the same app (a manual `syncer sync`, or a
former leader finishing); after that the tick fails and is retried with backoff."""


@dataclass(frozen=True)
class SyncAttempt:
    """One sync attempt, for reporting it elsewhere too (metrics, an App's status): the
    ChangeSet of a sync, or the error that stopped it before one (fetch, render, validation,
    lock)."""

    revision: str
    changes: ChangeSet | None
    error: str | None
    seconds: float = 0.0
    cause: str = ""
    """What stopped it before a ChangeSet, as a name, not a message (`failure_cause`)."""
    stalled: str | None = None
    """Set (to the reason, e.g. `RenderTooLarge`) when the attempt failed for a cause only a
    change in Git or in the daemon's flags can remove: the App is Stalled, not retrying."""

    @property
    def failure(self) -> tuple[str, str, tuple[str, ...]] | None:
        """(revision, cause, failed objects): two failures are one failure when these agree,
        whatever their messages say (a message may carry a timestamp or a resourceVersion)."""
        if self.ok:
            return None
        failed = tuple(sorted(str(c.ref) for c in self.changes.changes if c.action == "failed")) if self.changes else ()
        cause = self.cause or ("ObjectsFailed" if failed else "NotHealthy" if self.applied else "SyncStopped")
        return self.revision, cause, failed

    @property
    def ok(self) -> bool:
        return self.changes is not None and self.changes.ok

    @property
    def applied(self) -> bool:
        """The revision is in the cluster (its objects may not have become healthy in time)."""
        return self.changes is not None and self.changes.applied


def failure_cause(error: BaseException) -> str:
    """A failure's cause as a name: the error's class, and the API server's reason when it
    gave one (`ValidationFailed`, `RenderError`, `ClusterError/Forbidden`, ...)."""
    reason = getattr(error, "reason", "")
    return f"{type(error).__name__}/{reason}" if reason else type(error).__name__


@dataclass(frozen=True)
class SyncStep:
    """What one step of the reconciler did, for the tick's one owner (`syncer.daemon.tick`)
    to compute the outcome from."""

    ok: bool
    """True when the app is in sync (or nothing needed doing); False backs off."""
    attempt: SyncAttempt | None = None
    """The sync attempt this step made; None: it made none (nothing had changed)."""
    member_changed: bool = False
    """A member's change started this step (`note_drift`): the objects may have drifted."""


class AppReconciler:
    """Keeps one app in sync across ticks; ticks of one app never overlap (the scheduler)."""

    def __init__(
        self,
        app: AppConfig,
        *,
        kube: Kube,
        metrics: Metrics,
        cache_dir: Path | None = None,
        field_manager: str = "syncer",
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        instance: str = "",
        cache: MemberReads | None = None,
        shared_git: SharedLsRemote | None = None,
        renderer: Renderer = InProcess(),
    ) -> None:
        self.app = app
        self._renderer = renderer
        self._kube = kube
        self.cache = cache
        self._metrics = metrics
        self._field_manager = field_manager
        self._lock_timeout = lock_timeout
        self._instance = instance
        try:
            self.source: Source = open_source(app.repo, revision=app.revision, cache_dir=cache_dir, auth=app.auth,
                                              shared=shared_git)
        except SyncerError as error:
            raise type(error)(f"{app.where}: {error}") from error
        self._manifests: Sequence[Manifest] | None = None
        self._rendered_revision: str | None = None
        self._rendered_tree: str | None = None
        self._synced_revision: str | None = None
        """The revision of the last sync that succeeded."""
        self._last_ok = False
        self._recorder = self._new_recorder()
        self._status_error: str | None = None
        self.last_attempt: SyncAttempt | None = None
        """The latest sync attempt; a step that had nothing to do leaves it as it was."""
        self._head: str | None = None
        """The tracked ref's commit as last resolved: the app's current revision."""
        self.pending: PendingPlan | None = None
        """The new revision planned and waiting for approval (`spec.approval: manual`)."""
        self.current_attempt: SyncAttempt | None = None
        """The latest attempt at the current revision: what the app's status reports. A heal
        of an older render (the current revision failed to render or sync) is not one: the
        current revision stays failed until a later attempt at it, or a newer one, succeeds."""
        self._drifted = False
        self._news_expected = False
        self._target: str | None = None
        """The head the daemon is moving the app to, until the cluster records it (None: it
        does, or someone else's sync moved the app since)."""
        self._seen_recorded: str | None = None
        """The applied revision the parent recorded when last looked at (None: not yet)."""
        self._ours: str | None = None
        """The revision this daemon last recorded as applied itself."""
        self._gone: str | None = None
        """A recorded revision Git no longer has: not healed to, and said so once."""
        self._forgotten = False
        self._move_on = False
        self._hold_judge = (HoldJudge(app.hold, render_digest=self._render_digest, app=str(app.id))
                            if app.hold is not None else None)
        self._synced_manifests: Sequence[Manifest] | None = None
        """The render the last successful sync applied."""
        self._head_renders_as: str | None = None
        """The applied revision the head renders exactly as (a commit elsewhere in the
        repository): the app's current revision, not synced again (None: none such)."""
        self._trigger = Trigger(TriggerKind.INTERVAL)
        """What started the step in progress (`syncer.apply.history`)."""
        self._outcome_recorded = False
        """The last sync's outcome was written (`_record_changes`)."""

    def note_drift(self) -> None:
        """A member changed: the next tick heals, without asking Git."""
        self._drifted = True

    def forget(self) -> None:
        """This replica lost the app (membership, leadership): whatever it holds may be older
        than what another replica applied meanwhile. Its next tick starts from nothing: it
        asks Git, and renders again. Safe from any thread: the tick in flight, if any, is
        left to finish (its writes are guarded by the app's lock)."""
        self._forgotten = True

    def _start_afresh(self) -> None:
        self._forgotten = False
        self._manifests = self._rendered_revision = self._rendered_tree = self._synced_revision = None
        self._head = self._target = self._seen_recorded = self._ours = self._gone = None
        self._last_ok = self._drifted = self._move_on = False
        self._synced_manifests = self._head_renders_as = None
        # Git is asked afresh, not answered from the replicas' shared ls-remote: that answer may
        # be as old as the interval, older than what the replica that held the app meanwhile saw.
        self._news_expected = True
        self._recorder = self._new_recorder()

    def _new_recorder(self) -> OutcomeRecorder:
        return OutcomeRecorder(self._kube, app=self.app.name, namespace=self.app.id.namespace,
                               instance=self._instance)

    def expect_news(self, *, move_on: bool = False) -> None:
        """A push or reconcile-now: the next tick asks Git afresh, not a shared answer.
        `move_on` (an explicit request, `syncer reconcile`): the app moves to the head even
        when it did not change, over a revision someone else applied (a rollback by hand)."""
        self._news_expected = True
        if move_on:
            self._move_on = True

    @property
    def history(self) -> tuple[HistoryEntry, ...] | None:
        """The app's history as this reconciler last read or recorded it (None: not yet)."""
        return self._recorder.history

    @property
    def manifests(self) -> Sequence[Manifest] | None:
        """The last render (None before the first), for checking drift and health."""
        return self._manifests

    @property
    def rendered_revision(self) -> str:
        """The revision of the last render ("unknown" before the first)."""
        return self._rendered_revision or UNKNOWN_REVISION

    @property
    def _app_fields(self) -> dict[str, str]:
        """The app in a log record's fields: its name and namespace, as the metrics label it."""
        return {"app": self.app.name, "app_namespace": self.app.id.namespace}

    @property
    def options(self) -> SyncOptions:
        return SyncOptions.for_app(self.app, field_manager=self._field_manager, lock_timeout=self._lock_timeout)

    def tick(self) -> bool:
        """One round; True when the app is in sync (or nothing needed doing)."""
        return self.step().ok

    def step(self) -> SyncStep:
        """One round: check Git, render when it moved, sync when there is anything to sync."""
        started = time.monotonic()
        if self._forgotten:
            self._start_afresh()
        revision = self._rendered_revision or UNKNOWN_REVISION
        drifted, self._drifted = self._drifted, False
        fresh, self._news_expected = self._news_expected, False
        move_on, self._move_on = self._move_on, False
        self._trigger = Trigger(TriggerKind.RECONCILE if move_on else TriggerKind.WEBHOOK if fresh
                                else TriggerKind.HEAL if drifted else TriggerKind.INTERVAL)
        try:
            # A push (fresh) always asks Git, even when a member's change started this tick:
            # the drift shortcut would otherwise consume the push and leave it to the interval.
            asked = fresh or not (drifted and self._manifests is not None and revision != WORKING_TREE)
            if asked:
                revision = self._resolve_head(max_age=0.0 if fresh else self.app.interval)
            # A push that finds the head where it was, with nothing drifted, has nothing to do
            # either; an explicit request (`syncer reconcile`) syncs all the same.
            if not move_on and self._settled(drifted=drifted):
                return SyncStep(ok=True)
            move, recorded = self._next_move(asked=asked, move_on=move_on)
            revision = (self._moving_to() or revision) if move is Move.SYNC_HEAD else (recorded or self.rendered_revision)
            rendered = self._render_for(move, recorded=recorded)
            if rendered is None:
                return SyncStep(ok=True, member_changed=drifted)
            if move is Move.SYNC_HEAD and not drifted and self._renders_as_applied(recorded):
                return SyncStep(ok=True)
            revision = rendered
            expect = None if move is Move.SYNC_HEAD else recorded
            if expect is not None:
                self._trigger = Trigger(TriggerKind.HEAL)
            elif self.app.hold is not None and revision == self.app.hold.revision:
                self._trigger = Trigger(TriggerKind.ROLLBACK, user=self.app.hold.requested_by)
            if expect is not None and not self.app.self_heal and self._last_ok:
                # Without selfHeal a member's change is reported (the tick's drift), not reverted.
                return SyncStep(ok=True, member_changed=drifted)
            assert self._manifests is not None
            accept = None
            if move is Move.SYNC_HEAD and self.app.manual_approval and revision != WORKING_TREE:
                pending = self._plan_for_approval(revision)
                if pending.digest != self.app.approved_plan:
                    self.pending = pending
                    return SyncStep(ok=True, member_changed=drifted)
                # Approved: what follows is this sync's outcome, reported as any sync's.
                self.pending = None
                accept = approved(pending.digest, manifests=self._manifests, app=self.app.id)
            self._outcome_recorded = False
            changes = sync(self._kube, self._manifests, options=replace(self.options, expect_applied=expect),
                           revision=revision, cache=self.cache, accept=accept, trigger=self._trigger,
                           record=self._record_changes)
        except RecordMoved as moved:
            log.info("app %s: not healing to %s: %s", self.app.id, revision[:12], moved,
                     extra={**self._app_fields, "revision": revision, "recorded": moved.recorded})
            self._drifted = True  # the watch brings the new record, and with it the next tick
            return SyncStep(ok=True, member_changed=drifted)
        except SyncerError as error:
            attempt = self._failed(revision=revision, error=error, started=started)
        except Exception as error:  # a bug must not stop the daemon; report it like a failure
            log.exception("app %s: unexpected error", self.app.id)
            attempt = self._failed(revision=revision, error=RuntimeError(f"internal error: {error!r}"),
                                   started=started)
        else:
            attempt = self._synced(changes, started=started)
            if attempt.ok and self._target is None and attempt.revision not in (self._moving_to(), WORKING_TREE):
                self._runs_another(attempt.revision)
        return SyncStep(ok=attempt.ok, attempt=attempt, member_changed=drifted)

    def _plan_for_approval(self, revision: str) -> PendingPlan:
        """The plan of the held render, as `syncer plan` makes it, for `spec.approval: manual`."""
        assert self._manifests is not None
        plan = plan_sync(self._kube, self._manifests, options=replace(self.options, dry_run=True), revision=revision,
                         cache=self.cache)
        return pending_plan(plan, manifests=self._manifests, app=self.app.id)

    def _resolve_head(self, *, max_age: float) -> str:
        """Ask Git for the tracked ref's head; a head that differs from the one last resolved
        is a change in Git: the app moves to it."""
        head = self.source.remote_revision(max_age=max_age)
        if head != self._head:
            self._target, self._gone, self._head_renders_as = head, None, None
        self._head = head
        return head

    def _next_move(self, *, asked: bool, move_on: bool) -> tuple[Move, str]:
        """What this tick applies (`syncer.daemon.recorded`), and the applied revision the
        cluster records ("" when none). `move_on`: an explicit request to sync the head."""
        if self._head == WORKING_TREE:
            return Move.SYNC_HEAD, ""
        options = self.options
        recorded = read_recorded(self._kube, Inventory.for_app(app=options.app, namespace=options.inventory_namespace),
                                 cache=self.cache)
        if moved_by_others(recorded, seen=self._seen_recorded, ours=self._ours):
            log.info("app %s: the cluster records revision %s, applied by another sync; asking Git afresh",
                     self.app.id, recorded[:12] or "(none)", extra={**self._app_fields, "recorded": recorded})
            self._target = None
            self._recorder = self._new_recorder()  # what it remembers recording is not the parent's any more
            self._resolve_head(max_age=0.0)
            asked = True
        self._seen_recorded = recorded
        hold = self.app.hold
        if hold is not None and self.holding():
            # The rollback's revision, not the head, is where the app moves (and stays).
            self._target = hold.revision
        elif move_on and asked:
            self._target = self._head
        if self._target is not None and self._target == recorded:
            self._target = None
        held = self._rendered_revision if self._manifests is not None else None
        return next_move(held=held, recorded=recorded, target=self._target, asked_git=asked, gone=self._gone), recorded

    def _render_for(self, move: Move, *, recorded: str) -> str | None:
        """Make the render this move applies the held one; its revision, or None: nothing to
        apply (the recorded revision is gone from Git)."""
        if move is Move.NO_HEAL:
            return None
        if move is Move.RENDER_RECORDED:
            return self._render_recorded(recorded)
        if move is Move.HEAL_HELD:
            return self.rendered_revision
        hold = self.app.hold
        if hold is not None and self._target == hold.revision:
            if self._manifests is None or self._rendered_revision != hold.revision:
                return self._render_commit(hold.revision, why=f"the app is {hold.describe()}")
            return hold.revision
        head = self._head
        if self._manifests is None or head != self._rendered_revision or head == WORKING_TREE:
            return self._fetch_and_render()
        return head

    def _render_recorded(self, recorded: str) -> str | None:
        """Render the revision the cluster records; None when Git no longer has it (then the
        objects are left as they are, and the app's status and log say so once)."""
        return self._render_commit(recorded, why="the cluster runs it")

    def _render_commit(self, recorded: str, *, why: str) -> str | None:
        """Render exactly the commit `recorded` (`why` it is the one to apply); None when Git
        no longer has it."""
        fetch_started = time.monotonic()
        try:
            snapshot = self.source.fetch_commit(recorded)
        except RevisionGone as gone:
            self._gone = recorded
            message = (f"revision {recorded[:12]} ({why}) is one the repository no longer has ({gone}); "
                       "not syncing it until the next change in Git")
            log.warning("app %s: %s", self.app.id, message, extra={**self._app_fields, "recorded": recorded})
            if self._target in (None, recorded):  # else the head's own attempt (it failed) stays the status
                self.current_attempt = SyncAttempt(revision=self._moving_to() or recorded, changes=None, error=message,
                                                   cause="RevisionGone")
            return None
        self._metrics.observe_fetch(self.app.id, time.monotonic() - fetch_started)
        return self._render(snapshot)

    def _runs_another(self, revision: str) -> None:
        """A heal applied a revision someone else recorded, not the current one (the head):
        the app's status says so, rather than calling the head applied."""
        if self._head is None:
            return
        message = (f"the cluster runs revision {revision[:12]}, which another sync applied (a hand `syncer sync`, "
                   f"a rollback); it is kept until the next change in Git, not {self._head[:12]}")
        if self.current_attempt is None or self.current_attempt.error != message:
            log.info("app %s: %s", self.app.id, message, extra={**self._app_fields, "revision": revision})
        self.current_attempt = SyncAttempt(revision=self._head, changes=None, error=message,
                                           cause="RunsAnotherRevision")

    def _settled(self, *, drifted: bool) -> bool:
        """Nothing to plan: Git is where the last successful sync left it, and the watches of
        every kind the app has would have reported any change since (none came), the record
        on its parent included. A plan would read the same cache and prove the same objects
        unchanged."""
        if self.cache is None or drifted or not self._last_ok or self._manifests is None:
            return False
        revision = self._rendered_revision
        if self._target is not None or revision == WORKING_TREE or self._synced_revision != revision:
            return False
        try:
            resources = {self._kube.resource_for(m.api_version, m.kind) for m in self._manifests}
        except SyncerError:
            return False
        return self.cache.watching(resources)

    def _fetch_and_render(self) -> str:
        """Fetch and render the tracked ref's head (which may have moved since it was resolved)."""
        fetch_started = time.monotonic()
        snapshot = self.source.fetch()
        self._metrics.observe_fetch(self.app.id, time.monotonic() - fetch_started)
        if snapshot.revision != self._head and snapshot.revision != WORKING_TREE:
            self._head = self._target = snapshot.revision
        return self._render(snapshot)

    def _render(self, snapshot: Snapshot) -> str:
        tree = snapshot.tree_of(self.app.path) if snapshot.tree_of is not None else None
        if tree is None or tree != self._rendered_tree or self._manifests is None or self._uses_kustomize(snapshot):
            self._manifests = self._render_manifests(snapshot)
        self._rendered_revision, self._rendered_tree = snapshot.revision, tree
        return snapshot.revision

    def _render_manifests(self, snapshot: Snapshot) -> list[Manifest]:
        settings = self.app.chart
        if runs_helm(snapshot, self.app.path):
            settings = with_capabilities(settings, version=self._kube.server_version(),
                                         api_versions=self._kube.served_group_versions())
        warnings: list[str] = []
        manifests = self._renderer.render(snapshot, self.app.path, namespace=self.app.namespace,
                                          helm_settings=settings, warnings=warnings)
        for warning in warnings:
            log.warning("app %s: %s", self.app.id, warning, extra={**self._app_fields, "revision": snapshot.revision})
        manifests = sops.decrypt(manifests, identities=self.app.age_identities)
        if self.app.create_namespace:
            manifests = with_created_namespace(manifests, self.app.namespace)
        return list(manifests)

    def _uses_kustomize(self, snapshot: Snapshot) -> bool:
        """Kustomize and Helm may read beyond the path (`../base`, components; values files,
        `file://` dependencies), which its tree id does not cover: such a path is rendered
        again on every new commit."""
        return chart_at(snapshot, self.app.path) or any(
            file.name in KUSTOMIZATION_FILES for file in (snapshot.root / self.app.path).rglob("*"))

    def _synced(self, changes: ChangeSet, *, started: float) -> SyncAttempt:
        seconds = time.monotonic() - started
        ok = changes.ok
        self._last_ok = ok
        self._synced_revision = changes.revision if ok else None
        self._synced_manifests = self._manifests if ok else None
        summary = changes.summary()
        counts = summary_text(summary)
        extra = {**self._app_fields, "revision": changes.revision, "result": "Succeeded" if ok else "Failed",
                 "summary": summary, "duration": round(seconds, 3)}
        if ok:
            log.info("app %s synced %s: %s (%.1fs)", self.app.id, changes.revision[:12], counts, seconds,
                     extra=extra)
        else:
            log.error("app %s sync of %s failed: %s (%s)", self.app.id, changes.revision[:12],
                      changes.error or "some objects failed", counts, extra={**extra, "error": changes.error})
        for warning in changes.warnings:
            log.warning("app %s: %s", self.app.id, warning, extra=self._app_fields)
        attempt = self.last_attempt = SyncAttempt(revision=changes.revision, changes=changes, error=changes.error,
                                                  seconds=seconds)
        if self._is_current(attempt.revision):
            self.current_attempt = attempt
            if self._outcome_recorded and attempt.applied:
                # The target stays until the watch shows the record: a heal that a change
                # starts before then must not read the parent's older record as the truth.
                self._ours = attempt.revision
                if self.cache is None:  # read afresh at every tick: no watch to catch up with
                    self._seen_recorded = attempt.revision
        return attempt

    def _record_changes(self, client: Kube, changes: ChangeSet) -> None:
        """The sync's outcome, recorded by the sync under the app's lock with its guarded
        client (`syncer.apply.sync`); a heal of an older revision than the current one records
        only its history entry."""
        current = self._is_current(changes.revision)
        if self.cache is not None:  # the sync wrote the parent, or this record writes it
            parent = Inventory.for_app(app=self.options.app, namespace=self.options.inventory_namespace).parent
            self.cache.wrote_parent(parent.namespace or "", parent.name)
        self._outcome_recorded = self._record(
            lambda: self._recorder.record_changes(changes, current=current, kube=client))

    def _is_current(self, revision: str) -> bool:
        """An attempt at the current revision (the head, or the rollback's while it holds), or
        at a working tree (which has no other)."""
        current = self._moving_to()
        return current is None or revision == current or revision == WORKING_TREE

    def _moving_to(self) -> str | None:
        """The app's current revision: the revision rolled back to while the hold stands, else
        the tracked ref's head as last resolved, or the applied revision it renders exactly as
        (None: not yet)."""
        hold = self.app.hold
        if hold is not None and self.holding():
            return hold.revision
        return self._head_renders_as or self._head

    def _renders_as_applied(self, recorded: str) -> bool:
        """The new head renders exactly what the last sync applied, the cluster still records
        that sync's revision, and the watches would have reported any change since: nothing
        to write, so nothing is asked of the API server. In a monorepo most commits are to
        other paths; syncing each App anyway cost about seven requests and an Event per App
        per commit. The App keeps reporting the revision it applied: the last commit that
        changed what it renders."""
        synced, head = self._synced_manifests, self._head
        if (synced is None or self._manifests is None or head is None or head == WORKING_TREE or not self._last_ok
                or self._synced_revision != recorded or not recorded or self.cache is None):
            return False
        if self._manifests is not synced and render_digest(self._manifests) != render_digest(synced):
            return False
        try:
            resources = {self._kube.resource_for(m.api_version, m.kind) for m in self._manifests}
        except SyncerError:
            return False
        if not self.cache.watching(resources):
            return False
        log.debug("app %s: commit %s renders as the applied %s: nothing to sync", self.app.id, head[:12],
                  recorded[:12], extra={**self._app_fields, "revision": head})
        self._target, self._head_renders_as, self._rendered_revision = None, recorded, recorded
        return True

    def holding(self) -> bool:
        """Whether the app's rollback hold stands with the head as last resolved (False: no
        hold; `syncer.daemon.rollback.HoldJudge`)."""
        return self._hold_judge.holding(self._head) if self._hold_judge is not None else False

    def render_commit(self, revision: str) -> list[Manifest]:
        """The app rendered at exactly the commit `revision`, as a sync or a rollback of it
        renders it: the app's source and Git credentials, its path, its identity (Helm's
        capabilities), its age keys. It changes nothing the ticks hold, so any thread may ask
        (the dashboard compares two history entries with it). RevisionGone when the
        repository no longer has the commit; another SyncerError when it does not render."""
        return self._render_manifests(self.source.fetch_commit(revision))

    def _render_digest(self, revision: str) -> str | None:
        """The render digest of a commit (`syncer.hold.render_digest`); None when it cannot be
        fetched or rendered."""
        try:
            return render_digest(self.render_commit(revision))
        except SyncerError as error:
            log.info("app %s: cannot render %s to compare it with the hold's: %s", self.app.id, revision[:12], error,
                     extra=self._app_fields)
            return None

    @property
    def hold_status(self) -> dict[str, Any] | None:
        """`status.hold` (None: no hold in the spec)."""
        return hold_status(self.app.hold, holding=self.holding(), head=self._head)

    def _failed(self, *, revision: str, error: Exception, started: float) -> SyncAttempt:
        seconds = time.monotonic() - started
        started_at = rfc3339(time.time() - seconds)
        self._last_ok = False
        self._synced_revision = None
        log.error("app %s sync of %s failed: %s", self.app.id, revision[:12], error,
                  extra={**self._app_fields, "revision": revision, "result": "Failed", "error": str(error),
                         "duration": round(seconds, 3)})
        stalled = error.condition if isinstance(error, (RenderTooLarge, PruneBudgetExceeded)) else None
        text = f"{self.app.where or self.app.name}: revision {revision[:12]}: {error}" if stalled else str(error)
        attempt = self.last_attempt = SyncAttempt(revision=revision, changes=None, error=text, seconds=seconds,
                                                  cause=failure_cause(error), stalled=stalled)
        if self._is_current(attempt.revision):
            self.current_attempt = attempt
            self._record(lambda: self._recorder.record_failure(revision=revision, error=error, trigger=self._trigger,
                                                               started=started_at, seconds=seconds))
        return attempt

    def _record(self, write: Callable[[], bool]) -> bool:
        """Write the status when it is news; False when it could not be written, which is
        logged once per distinct problem, not on every tick while it lasts."""
        try:
            write()
        except ClusterError as error:
            message = str(error)
            level = logging.DEBUG if message == self._status_error else logging.WARNING
            log.log(level, "app %s: cannot record its status: %s", self.app.id, message, extra=self._app_fields)
            self._status_error = message
            return False
        self._status_error = None
        return True
