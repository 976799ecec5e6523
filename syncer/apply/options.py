"""Options of a sync, as one plain dataclass with the defaults users get."""

from __future__ import annotations

from dataclasses import dataclass

from syncer.config import AppConfig
from syncer.diff import IgnoreRule
from syncer.hold import Hold
from syncer.model import DEFAULT_PRUNE_BUDGET, ObjectRef, PruneBudget

DEFAULT_FIELD_MANAGER = "syncer"
"""The field manager of `syncer sync` and `syncer run` alike: a hand sync under another name
would fight the daemon over every field (each taking the other's with force), and a diff
would show the daemon's fields as changes."""


@dataclass(frozen=True)
class SyncOptions:
    app: str
    """The app's name: names its ApplySet parent (`ConfigMap syncer-<app>`) and lock."""
    namespace: str = "default"
    """Default namespace for namespaced objects; home of the app's inventory and lock unless
    `home` says otherwise."""
    home: str | None = None
    """The namespace of the app's inventory and lock when it is not `namespace`: an App
    object's own namespace, whatever its `targetNamespace`."""
    adopt_from: str | None = None
    """The namespace of this app's inventory before the upgrade to (namespace, name)
    identity: its members are taken over (`syncer.apply.upgrade`)."""
    field_manager: str = DEFAULT_FIELD_MANAGER
    force_conflicts: bool = True
    """Git is the source of truth: take fields other managers own, and report it."""
    prune: bool = True
    allow_empty: bool = False
    confirm_prune: frozenset[ObjectRef] = frozenset()
    """Objects of a protected kind (Namespace, CustomResourceDefinition, PersistentVolumeClaim,
    PersistentVolume) that prune may delete (`--confirm-prune`, an app's `pruneConfirmations`);
    any other is kept by the `protected` filter."""
    max_prune: PruneBudget = DEFAULT_PRUNE_BUDGET
    """The prune budget: a plan that would delete more is blocked (`--max-prune`, `maxPrune`)."""
    confirm_prune_all: bool = False
    """Let a plan past the prune budget (`--confirm-prune-all`); protected kinds still need
    their own confirmation."""
    dry_run: bool = False
    wait: bool = False
    timeout: float = 300.0
    """Seconds `wait` waits for health, and CRDs for Established."""
    concurrency: int = 16
    """Requests in flight at once within a step."""
    lock_timeout: float = 60.0
    """Seconds to wait for another sync of the same app to finish."""
    lock_duration: int = 30
    """Seconds the app's Lease lasts without renewal; a sync that cannot renew it within
    that time stops writing."""
    ignore: tuple[IgnoreRule, ...] = ()
    diff_text: bool = True
    """Render unified diffs in the plan (`syncer diff` prints them; a sync need not)."""
    expect_applied: str | None = None
    """A heal: write only while the app's parent records this revision as applied ("": none),
    checked on the plan made under the lock too. Someone else's sync that recorded another
    revision since is not undone (RecordMoved). None: no expectation (a sync that moves the
    app to a revision)."""
    rollback: Hold | None = None
    """This sync is `syncer rollback` of a CLI app: it goes back to `rollback.revision` and,
    once applied, records the hold on the parent (`syncer.apply.holdrecord`)."""
    release_hold: bool = False
    """Sync although a rollback holds the app, and remove the hold (`--release-hold`)."""

    @classmethod
    def for_app(cls, app: AppConfig, *, field_manager: str, lock_timeout: float) -> SyncOptions:
        """The options an app of the daemon (a configuration file's, or an App object's) is
        synced with. One function, so that `syncer run` and `syncer sync --app` agree about
        the app's inventory, prune, wait and ignored fields, whoever syncs it."""
        return cls(
            app=app.name, namespace=app.namespace, home=app.home, adopt_from=app.adopt_from,
            field_manager=field_manager, prune=app.prune, wait=app.wait, timeout=app.timeout, ignore=app.ignore,
            lock_timeout=lock_timeout, diff_text=False, confirm_prune=frozenset(app.prune_confirmations),
            max_prune=app.max_prune or DEFAULT_PRUNE_BUDGET,
        )

    @property
    def inventory_namespace(self) -> str:
        return self.home or self.namespace
