"""One tick of one App, from the `AppEntry` the tick read at its start and nothing else.

The tick turns the App into the file mode's `AppConfig` (`syncer.daemon.appspec`), runs it
through the one tick owner (`syncer.daemon.tick.run_tick`) with the App's own identity (its
service account, impersonated), and writes the status computed from the outcome
(`syncer.daemon.appstatus`) through the status subresource when it changed, telling the
notification receivers and the App's Events about transitions. Deleting an App leaves its
objects; with the finalizer `syncer.dev/prune` and `spec.prune`, the tick first syncs an
empty source with `allow_empty`: the same safe prune as a sync, which deletes only what the
app's inventory owns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from syncer.apply import sync
from syncer.apply.membercache import MemberReads
from syncer.apply.readaccess import AccessReview, AuthorizedReads
from syncer.config import AppConfig
from syncer.daemon.appclient import age_identities, emit_app_event, git_auth, helm_values, patch_app, patch_status, secret_data
from syncer.daemon.appentry import AppEntry, AppTickState
from syncer.daemon.appspec import PRUNE_FINALIZER, AppSpec, InvalidApp, app_ref
from syncer.daemon.appstatus import Observation, app_status
from syncer.daemon.notify import Notifier, Receiver, message, transitions
from syncer.daemon.notifytarget import AddressAllowList
from syncer.daemon.reconciler import UNKNOWN_REVISION, AppReconciler, SyncAttempt, failure_cause
from syncer.daemon.source import SourceContext
from syncer.daemon.tick import TickOutcome, run_tick
from syncer.errors import ClusterError, Conflict, SyncerError
from syncer.kube import Kube, Resource
from syncer.model import Action
from syncer.sources.auth import GitAuth

log = logging.getLogger(__name__)

EVENT_REASONS = {"failed": ("SyncFailed", True), "recovered": ("SyncRecovered", False),
                 "health": ("HealthChanged", False), "awaiting-approval": ("AwaitingApproval", False),
                 "rolled-back": ("RolledBack", False), "hold-released": ("HoldReleased", False)}
"""Each transition worth a notification is also an Event on the App: (reason, is a warning)."""

ReconcilerFactory = Callable[..., AppReconciler]
"""Builds an App's reconciler: `AppReconciler`'s signature (the tests pass a fake)."""


def newest_status(written: dict[str, Any], watched: dict[str, Any]) -> dict[str, Any]:
    """The App's status as it stands: what this replica last wrote, unless the watch brought
    a later sync's record, written by another replica (a shard handover, a replica that took
    over after a restart). Compared with its own, stale, record, a failure another replica
    already told would be told again."""
    def synced_at(status: dict[str, Any]) -> str:
        return str((status.get("lastSync") or {}).get("time") or "")

    return watched if synced_at(watched) > synced_at(written) else written


class AppTicker:
    def __init__(
        self, *, context: SourceContext, resource: Resource, notifier: Notifier, notify: Receiver | None,
        credentials: Path, new_reconciler: ReconcilerFactory = AppReconciler,
        notify_allow: AddressAllowList = AddressAllowList(), may_adopt: Callable[[AppConfig], bool] = lambda _: False,
    ) -> None:
        self._may_adopt = may_adopt
        """Whether an App may take over its inventory from before the upgrade (see
        `syncer.apply.upgrade`): not when another App could claim that one."""
        self._context = context
        self._kube = context.kube
        self._resource = resource
        self._notifier = notifier
        self._notify_receiver = notify
        self._notify_allow = notify_allow
        self._credentials = credentials
        self._new_reconciler = new_reconciler

    def tick(self, entry: AppEntry, state: AppTickState) -> TickOutcome:
        if entry.deleting:
            return self._finalize(entry, state)
        return self._reconcile(entry, state)

    def _reconcile(self, entry: AppEntry, state: AppTickState) -> TickOutcome:
        spec = entry.spec
        if spec is None:
            self._write(entry, state, Observation(entry.generation, invalid=entry.invalid,
                                                  handled_request=entry.requested))
            return TickOutcome(app=entry.id, ok=True)
        if spec.suspend:
            self._write(entry, state, Observation(entry.generation, suspended=True, handled_request=entry.requested,
                                                  hold=state.status.get("hold")))
            return TickOutcome(app=entry.id, ok=True)
        waited_for = entry.requested is not None and entry.requested != state.status.get("lastHandledReconcileAt")
        if waited_for or state.status.get("observedGeneration") != entry.generation:
            what = f"{spec.config.repo} at {spec.config.revision or 'HEAD'}"
            self._write(entry, state, Observation(entry.generation, outcome=state.last_attempt, syncing=what,
                                                  hold=state.status.get("hold")))
        try:
            reconciler = self._reconciler(entry, state, spec)
        except SyncerError as error:
            revision = state.last_attempt.revision if state.last_attempt else UNKNOWN_REVISION
            state.last_attempt = SyncAttempt(revision=revision, changes=None, error=str(error),
                                             cause=failure_cause(error))
            self._write(entry, state, Observation(entry.generation, outcome=state.last_attempt,
                                                  handled_request=entry.requested))
            return TickOutcome(app=entry.id, ok=False)
        outcome = run_tick(reconciler, kube=state.kube or self._kube, cache=reconciler.cache, health=True)
        state.last_attempt = outcome.current or state.last_attempt
        try:
            self._write(entry, state, Observation(entry.generation, outcome=state.last_attempt, health=outcome.health,
                                                  drift=outcome.drift, handled_request=entry.requested,
                                                  pending=outcome.pending, app=entry.id, history=outcome.history,
                                                  hold=outcome.hold))
        except ClusterError as error:  # the outcome still counts; the status is written at a later tick
            log.warning("App/%s: %s", entry.key, error)
            return replace(outcome, ok=False)
        self._report_interrupted(entry, outcome)
        return outcome

    def _report_interrupted(self, entry: AppEntry, outcome: TickOutcome) -> None:
        """A Warning Event `SyncInterrupted` on the App when its sync found an earlier one unfinished."""
        changes = outcome.attempt.changes if outcome.attempt is not None else None
        if changes is None or changes.interrupted is None:
            return
        try:
            emit_app_event(self._kube, entry.obj, reason="SyncInterrupted", warning=True,
                           message=changes.interrupted.message(app=entry.id.name),
                           instance=self._context.options.identity)
        except ClusterError as error:
            log.warning("App/%s: cannot create an Event: %s", entry.key, error)

    def _reconciler(self, entry: AppEntry, state: AppTickState, spec: AppSpec) -> AppReconciler:
        """The App's reconciler, built again when its spec, Git credentials, age identities
        or chart values read from the cluster (`spec.helm.valuesFrom`, with the App's identity)
        changed."""
        if state.built_generation != entry.generation:
            state.close()
            state.reconciler, state.kube = None, None
            if spec.user is not None:
                state.kube = Kube.connect(replace(self._context.client, impersonate=spec.user))
            state.built_generation = entry.generation
        config: AppConfig = spec.config
        if config.namespace != config.home and self._may_adopt(config):
            config = replace(config, adopt_from=config.namespace)
        if spec.git_secret is not None:
            config = replace(config, auth=self._git_auth(state.kube or self._kube, spec))
        if spec.decryption_secret is not None:
            config = replace(config, age_identities=age_identities(
                state.kube or self._kube, namespace=spec.app_namespace, secret=spec.decryption_secret))
        if spec.values_from:
            read = helm_values(state.kube or self._kube, namespace=spec.app_namespace, references=spec.values_from)
            config = replace(config, helm=replace(config.helm, values=(*read, *config.helm.values)))
        if state.reconciler is None or state.reconciler.app != config:
            options, context = self._context.options, self._context
            state.reconciler = self._new_reconciler(
                config, kube=state.kube or self._kube, metrics=context.metrics, cache_dir=options.cache_dir,
                field_manager=options.field_manager, lock_timeout=options.lock_timeout, instance=options.identity,
                cache=self._reads(spec), shared_git=context.shared_git, renderer=context.renderer,
            )
        return state.reconciler

    def _reads(self, spec: AppSpec) -> MemberReads | None:
        """The watch cache as the App may see it: through its service account's rights
        (`syncer.apply.readaccess`), or whole for an App that runs with the daemon's."""
        cache = self._context.cache
        if cache is None or spec.user is None:
            return cache
        return AuthorizedReads(cache, AccessReview(self._kube, user=spec.user),
                               configmaps=self._kube.resource_for("v1", "ConfigMap"))

    def _git_auth(self, kube: Kube, spec: AppSpec) -> GitAuth:
        """Git credentials from the App's Secret, read with the App's identity on every tick
        (so a rotated Secret is used at the next tick) and handed to git as private files."""
        assert spec.git_secret is not None
        return git_auth(kube, namespace=spec.app_namespace, secret=spec.git_secret,
                        directory=self._credentials / spec.app_namespace / spec.config.name)

    def _finalize(self, entry: AppEntry, state: AppTickState) -> TickOutcome:
        """The App is being deleted: with the prune finalizer, delete its objects first."""
        spec, metadata = entry.spec, entry.metadata
        finalizers = list(metadata.get("finalizers") or [])
        if PRUNE_FINALIZER not in finalizers:
            return TickOutcome(app=entry.id, ok=True)
        if spec is None:
            assert entry.invalid is not None
            cannot = InvalidApp(app_ref(entry.obj), [
                f"cannot delete the app's objects: {'; '.join(entry.invalid.problems)}; "
                f"fix the spec or remove the finalizer {PRUNE_FINALIZER}"])
            self._write(entry, state, Observation(entry.generation, invalid=cannot))
            return TickOutcome(app=entry.id, ok=True)
        if spec.config.prune:
            try:
                reconciler = self._reconciler(entry, state, spec)
                changes = sync(state.kube or self._kube, [], revision="deleted",
                               options=replace(reconciler.options, allow_empty=True, prune=True))
                error = None if changes.ok else (changes.error or "some objects could not be deleted")
            except SyncerError as failure:
                error = str(failure)
            if error is not None:
                state.last_attempt = SyncAttempt(revision="deleted", changes=None,
                                                 error=f"deleting the app's objects: {error}")
                self._write(entry, state, Observation(entry.generation, outcome=state.last_attempt))
                return TickOutcome(app=entry.id, ok=False)
            log.info("App/%s deleted: %d object(s) pruned", entry.key, changes.count(Action.DELETED))
        remaining = [finalizer for finalizer in finalizers if finalizer != PRUNE_FINALIZER]
        try:
            patch_app(self._kube, entry.obj, {"metadata": {"finalizers": remaining,
                                                           "resourceVersion": metadata["resourceVersion"]}})
        except Conflict:  # changed meanwhile: the watch brings the new version, and a new tick
            pass
        return TickOutcome(app=entry.id, ok=True)

    def _write(self, entry: AppEntry, state: AppTickState, observed: Observation) -> None:
        previous = newest_status(state.status, dict(entry.obj.get("status") or {}))
        status = app_status(previous, observed)
        if status == previous:
            return
        written = patch_status(self._kube, self._resource, entry.obj, status)
        state.status = dict(written.get("status") or status)
        self._notify(entry, state, previous)

    def _notify(self, entry: AppEntry, state: AppTickState, previous: dict[str, Any]) -> None:
        """Events and notifications for what changed since `previous`: what the App's status
        said, by whichever replica wrote it (`newest_status`)."""
        status = state.status
        events = transitions(previous, status)
        if not events:
            return
        receivers = [self._notify_receiver] if self._notify_receiver else []
        spec = entry.spec
        if spec is not None and spec.notification is not None:
            receiver = self._app_receiver(entry, state, spec)
            if receiver is not None:
                receivers.append(receiver)
        metadata = entry.metadata
        for event in events:
            payload = message(event, namespace=metadata["namespace"], name=metadata["name"], previous=previous,
                              status=status)
            self._notifier.submit(receivers, payload)
            reason, warning = EVENT_REASONS[event]
            try:
                emit_app_event(self._kube, entry.obj, reason=reason, message=str(payload["message"]),
                               warning=warning or status.get("health") in ("Degraded", "Missing"),
                               instance=self._context.options.identity)
            except ClusterError as error:
                log.warning("App/%s: cannot create an Event: %s", entry.key, error)

    def _app_receiver(self, entry: AppEntry, state: AppTickState, spec: AppSpec) -> Receiver | None:
        """The App's own receiver, its secret read with the App's identity; None (logged)
        when the secret cannot be read: an unsigned message would be refused anyway."""
        notification = spec.notification
        assert notification is not None
        if notification.secret is None:
            return Receiver(url=notification.url, allow=self._notify_allow)
        ref = notification.secret
        try:
            data = secret_data(state.kube or self._kube, namespace=spec.app_namespace, name=ref.name)
        except SyncerError as error:
            log.warning("App/%s: not notifying %s: %s", entry.key, notification.url, error)
            return None
        if ref.key not in data:
            log.warning("App/%s: not notifying %s: Secret/%s/%s has no key %s", entry.key, notification.url,
                        spec.app_namespace, ref.name, ref.key)
            return None
        return Receiver(url=notification.url, secret=data[ref.key], allow=self._notify_allow)
