"""One tick of one app: check Git, fetch and render when it moved, sync, record the outcome.

    new revision in Git            -> fetch, render, sync
    same revision, selfHeal        -> sync the cached render again (reverts live drift; a sync
                                      that finds nothing to change writes nothing)
    same revision, no selfHeal     -> nothing, unless the last attempt failed (then retry) or
                                      a member changed (then the tick plans the drift, writes nothing)
    a plain directory (no commits) -> render again every tick: its files may have changed

A tick that a member's change started (`note_drift`, from the daemon's watches) skips Git and
works from the last render, so drift is healed in the time a sync takes. With the daemon's
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
from dataclasses import dataclass
from pathlib import Path

from syncer.apply import ChangeSet, SyncOptions, sync
from syncer.apply.changeset import summary_text
from syncer.apply.membercache import MemberReads
from syncer.apply.status import OutcomeRecorder
from syncer.config import AppConfig
from syncer.daemon.metrics import Metrics
from syncer.errors import ClusterError, RenderTooLarge, SyncerError
from syncer.kube import Kube
from syncer.model import Manifest
from syncer.sources import WORKING_TREE, SharedLsRemote, Snapshot, Source, open_source, with_created_namespace
from syncer.sources.kustomize import KUSTOMIZATION_FILES
from syncer.sources.renderpool import InProcess, Renderer

log = logging.getLogger(__name__)

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
        self._recorder = OutcomeRecorder(kube, app=app.name, namespace=app.id.namespace, instance=instance)
        self._status_error: str | None = None
        self.last_attempt: SyncAttempt | None = None
        """The latest sync attempt; a step that had nothing to do leaves it as it was."""
        self._head: str | None = None
        """The tracked ref's commit as last resolved: the app's current revision."""
        self.current_attempt: SyncAttempt | None = None
        """The latest attempt at the current revision: what the app's status reports. A heal
        of an older render (the current revision failed to render or sync) is not one: the
        current revision stays failed until a later attempt at it, or a newer one, succeeds."""
        self._drifted = False
        self._news_expected = False

    def note_drift(self) -> None:
        """A member changed: the next tick works from the last render, without asking Git."""
        self._drifted = True

    def expect_news(self) -> None:
        """A push or reconcile-now: the next tick asks Git afresh, not a shared answer."""
        self._news_expected = True

    @property
    def manifests(self) -> Sequence[Manifest] | None:
        """The last render (None before the first), for checking drift and health."""
        return self._manifests

    @property
    def rendered_revision(self) -> str:
        """The revision of the last render ("unknown" before the first)."""
        return self._rendered_revision or "unknown"

    @property
    def options(self) -> SyncOptions:
        return SyncOptions.for_app(self.app, field_manager=self._field_manager, lock_timeout=self._lock_timeout)

    def tick(self) -> bool:
        """One round; True when the app is in sync (or nothing needed doing)."""
        return self.step().ok

    def step(self) -> SyncStep:
        """One round: check Git, render when it moved, sync when there is anything to sync."""
        started = time.monotonic()
        revision = self._rendered_revision or "unknown"
        drifted, self._drifted = self._drifted, False
        fresh, self._news_expected = self._news_expected, False
        try:
            # A push (fresh) always asks Git, even when a member's change started this tick:
            # the drift shortcut would otherwise consume the push and leave it to the interval.
            if fresh or not (drifted and self._manifests is not None and revision != WORKING_TREE):
                revision = self._head = self.source.remote_revision(max_age=0.0 if fresh else self.app.interval)
            if not fresh and self._settled(revision, drifted=drifted):
                return SyncStep(ok=True)
            if self._manifests is None or revision != self._rendered_revision or revision == WORKING_TREE:
                revision = self._fetch_and_render()
            elif not self.app.self_heal and self._last_ok:
                # Without selfHeal a member's change is reported (the tick's drift), not reverted.
                return SyncStep(ok=True, member_changed=drifted)
            assert self._manifests is not None
            changes = sync(self._kube, self._manifests, options=self.options, revision=revision, cache=self.cache)
        except SyncerError as error:
            attempt = self._failed(revision=revision, error=error, started=started)
        except Exception as error:  # a bug must not stop the daemon; report it like a failure
            log.exception("app %s: unexpected error", self.app.name)
            attempt = self._failed(revision=revision, error=RuntimeError(f"internal error: {error!r}"),
                                   started=started)
        else:
            attempt = self._synced(changes, started=started)
        return SyncStep(ok=attempt.ok, attempt=attempt, member_changed=drifted)

    def _settled(self, revision: str, *, drifted: bool) -> bool:
        """Nothing to plan: Git is where the last successful sync left it, and the watches of
        every kind the app has would have reported any change since (none came). A plan
        would read the same cache and prove the same objects unchanged."""
        if self.cache is None or drifted or not self._last_ok or self._manifests is None:
            return False
        if revision != self._rendered_revision or revision == WORKING_TREE or self._synced_revision != revision:
            return False
        try:
            resources = {self._kube.resource_for(m.api_version, m.kind) for m in self._manifests}
        except SyncerError:
            return False
        return self.cache.watching(resources)

    def _fetch_and_render(self) -> str:
        fetch_started = time.monotonic()
        snapshot = self.source.fetch()
        self._metrics.observe_fetch(self.app.id, time.monotonic() - fetch_started)
        tree = snapshot.tree_of(self.app.path) if snapshot.tree_of is not None else None
        if tree is None or tree != self._rendered_tree or self._manifests is None or self._uses_kustomize(snapshot):
            manifests = self._renderer.render(snapshot, self.app.path, namespace=self.app.namespace)
            if self.app.create_namespace:
                manifests = with_created_namespace(manifests, self.app.namespace)
            self._manifests = manifests
        self._rendered_revision, self._rendered_tree = snapshot.revision, tree
        return snapshot.revision

    def _uses_kustomize(self, snapshot: Snapshot) -> bool:
        """Kustomize may read beyond the path (`../base`, components), which its tree id does
        not cover: such a path is rendered again on every new commit."""
        return any(file.name in KUSTOMIZATION_FILES for file in (snapshot.root / self.app.path).rglob("*"))

    def _synced(self, changes: ChangeSet, *, started: float) -> SyncAttempt:
        seconds = time.monotonic() - started
        ok = changes.ok
        self._last_ok = ok
        self._synced_revision = changes.revision if ok else None
        summary = changes.summary()
        counts = summary_text(summary)
        extra = {"app": self.app.name, "revision": changes.revision, "result": "Succeeded" if ok else "Failed",
                 "summary": summary, "duration": round(seconds, 3)}
        if ok:
            log.info("app %s synced %s: %s (%.1fs)", self.app.name, changes.revision[:12], counts, seconds,
                     extra=extra)
        else:
            log.error("app %s sync of %s failed: %s (%s)", self.app.name, changes.revision[:12],
                      changes.error or "some objects failed", counts, extra={**extra, "error": changes.error})
        for warning in changes.warnings:
            log.warning("app %s: %s", self.app.name, warning, extra={"app": self.app.name})
        attempt = self.last_attempt = SyncAttempt(revision=changes.revision, changes=changes, error=changes.error,
                                                  seconds=seconds)
        if self._is_current(attempt):
            self.current_attempt = attempt
            self._record(lambda: self._recorder.record_changes(changes))
        return attempt

    def _is_current(self, attempt: SyncAttempt) -> bool:
        """An attempt at the current revision, or at a working tree (which has no other)."""
        return self._head is None or attempt.revision == self._head or attempt.revision == WORKING_TREE

    def _failed(self, *, revision: str, error: Exception, started: float) -> SyncAttempt:
        seconds = time.monotonic() - started
        self._last_ok = False
        self._synced_revision = None
        log.error("app %s sync of %s failed: %s", self.app.name, revision[:12], error,
                  extra={"app": self.app.name, "revision": revision, "result": "Failed", "error": str(error),
                         "duration": round(seconds, 3)})
        stalled = error.condition if isinstance(error, RenderTooLarge) else None
        text = f"{self.app.where or self.app.name}: revision {revision[:12]}: {error}" if stalled else str(error)
        attempt = self.last_attempt = SyncAttempt(revision=revision, changes=None, error=text, seconds=seconds,
                                                  cause=failure_cause(error), stalled=stalled)
        if self._is_current(attempt):
            self.current_attempt = attempt
            self._record(lambda: self._recorder.record_failure(revision=revision, error=error))
        return attempt

    def _record(self, write: Callable[[], bool]) -> None:
        """Write the status when it is news; a status that cannot be written is logged once
        per distinct problem, not on every tick while it lasts."""
        name = self.app.name
        try:
            write()
        except ClusterError as error:
            message = str(error)
            level = logging.DEBUG if message == self._status_error else logging.WARNING
            log.log(level, "app %s: cannot record its status: %s", name, message, extra={"app": name})
            self._status_error = message
            return
        self._status_error = None
