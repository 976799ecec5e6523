"""Two entries of an App's history compared, for the dashboard's compare page.

An entry records a revision, not a tree: both revisions are rendered as the daemon renders
them for a sync or a rollback (`AppReconciler.render_commit`: the App's own source, Git
credentials, path, identity and age keys, through the daemon's render workers), never with
anything of the dashboard's. The renders are paired and compared by the diff's own
`compare_renders`; what this module adds is each changed field's old and new value, and
the rule that a Secret's values (or a document's that SOPS encrypted) never leave the daemon,
not even as the diff's salted hashes.

Only revisions of the App's history are rendered, so a user who may see an App can make the
daemon render at most the history's 20 commits of it. A commit's render does not change, so
renders are kept by (namespace, name, revision, path) as long as the App's configuration is
the one they were made with (new chart values or credentials build a new reconciler, which
renders again); a render that failed is kept `FAILURE_SECONDS`, so reloading the page does
not fetch again and again.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from syncer.apply.history import HistoryEntry
from syncer.config import AppConfig
from syncer.daemon.reconciler import UNKNOWN_REVISION, AppReconciler
from syncer.diff import is_secret, normalize, to_yaml
from syncer.diff.structural import differing
from syncer.diff.explain import render_path
from syncer.diff.normalize import Path
from syncer.diff.revisions import compare_renders
from syncer.errors import SyncerError
from syncer.model import Action, Manifest
from syncer.sources import WORKING_TREE
from syncer.sources.snapshot import RevisionGone

KEPT_RENDERS = 32
"""Renders kept, least recently used first out (two per comparison)."""
FAILURE_SECONDS = 30.0
MAX_VALUE = 2000
"""Characters of one value shown; a longer one is cut (its whole text is in the YAML diff)."""
ACTION_WORDS = {Action.CREATED: "added", Action.DELETED: "removed", Action.CONFIGURED: "changed"}


def entry_key(entry: HistoryEntry) -> str:
    """How the compare page's URL names an entry: its start and its revision (an entry's start
    stays as newer entries come and older ones go; heals merged into it keep it)."""
    return f"{entry.started}@{entry.revision[:12]}"


def find_entry(history: Sequence[HistoryEntry], key: str) -> HistoryEntry | None:
    return next((entry for entry in history if entry_key(entry) == key), None)


def history_of(app: dict[str, Any]) -> list[HistoryEntry]:
    """The App's `status.history`, newest first; what is not an entry is left out."""
    raw = (app.get("status") or {}).get("history") or []
    entries = (HistoryEntry.from_dict(item) for item in raw if isinstance(item, dict))
    return [entry for entry in entries if entry is not None]


class NotRendered(Exception):
    """A revision that cannot be shown: the message names it and says why."""


@dataclass(frozen=True)
class _Kept:
    app: AppConfig
    manifests: list[Manifest] | None
    problem: str
    at: float


class Renders:
    """The App renders of the compare page, kept (see the module docstring). One render of a
    key at a time: a second request for it waits for the first and takes its result."""

    def __init__(self, reconciler_of: Callable[[str], AppReconciler | None], *, size: int = KEPT_RENDERS,
                 failure_seconds: float = FAILURE_SECONDS) -> None:
        self._reconciler_of = reconciler_of
        self._size = size
        self._failure_seconds = failure_seconds
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[str, str, str, str], _Kept] = OrderedDict()
        self._flights: dict[tuple[str, str, str, str], threading.Lock] = {}

    def render(self, namespace: str, name: str, revision: str) -> list[Manifest]:
        """The App's render of `revision`; NotRendered saying why there is none."""
        short = revision[:12]
        if revision in ("", UNKNOWN_REVISION):
            raise NotRendered("this entry's sync failed before it knew its revision: there is nothing to render")
        if revision == WORKING_TREE:
            raise NotRendered(f"revision {revision}: the App's repository is a plain directory, which keeps no "
                              "earlier state to render again")
        reconciler = self._reconciler_of(f"{namespace}/{name}")
        if reconciler is None:
            raise NotRendered(f"revision {short}: this daemon renders an App's revisions with the App's own source "
                              "and identity, and has not run this App since it started (another replica may run "
                              "it, or it is suspended or invalid); port-forward to the replica that syncs it")
        app = reconciler.app
        key = (namespace, name, revision, app.path)
        with self._lock:
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:
            try:
                kept = self._lookup(key, app)
                if kept is None:
                    kept = self._render(reconciler, revision)
                    with self._lock:
                        self._kept[key] = kept
                        while len(self._kept) > self._size:
                            self._kept.popitem(last=False)
            finally:
                with self._lock:  # whoever waits on this flight now finds its render kept
                    self._flights.pop(key, None)
        if kept.manifests is None:
            raise NotRendered(kept.problem)
        return kept.manifests

    def _lookup(self, key: tuple[str, str, str, str], app: AppConfig) -> _Kept | None:
        with self._lock:
            kept = self._kept.get(key)
            if kept is None or kept.app != app:
                return None
            if kept.manifests is None and time.monotonic() - kept.at > self._failure_seconds:
                return None
            self._kept.move_to_end(key)
            return kept

    @staticmethod
    def _render(reconciler: AppReconciler, revision: str) -> _Kept:
        short = revision[:12]
        try:
            return _Kept(reconciler.app, reconciler.render_commit(revision), "", time.monotonic())
        except RevisionGone as gone:
            problem = f"revision {short} is no longer in the repository: {gone}"
        except SyncerError as error:
            problem = f"revision {short} could not be rendered: {error}"
        except OSError as error:
            problem = f"revision {short} could not be rendered: {error.strerror or error}"
        return _Kept(reconciler.app, None, problem, time.monotonic())


@dataclass(frozen=True)
class FieldValues:
    """One changed field: its path as the diff renders it, and its text before and after
    (None: the object does not have the field on that side; hidden: "")."""

    path: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class ObjectChange:
    """One object that differs between the two renders."""

    action: str
    """added, removed or changed."""
    kind: str
    namespace: str
    name: str
    hidden: bool
    """A Secret, or a document SOPS encrypted: its fields are named, their values never shown."""
    fields: tuple[FieldValues, ...] = ()
    diff: str = ""
    """The unified YAML diff of a changed, added or removed object; "" when hidden."""


def object_changes(before: Sequence[Manifest], after: Sequence[Manifest], *,
                   sides: tuple[str, str]) -> tuple[list[ObjectChange], int]:
    """The objects that differ between two renders (in `compare_renders`' order) and how many
    are unchanged."""
    earlier = {m.ref: m for m in before}
    later = {m.ref: m for m in after}
    changes, unchanged = [], 0
    for diff in compare_renders(before, after, sides=sides):
        if diff.action is Action.UNCHANGED:
            unchanged += 1
            continue
        old, new = earlier.get(diff.ref), later.get(diff.ref)
        hidden = any(m is not None and (is_secret(m.obj) or m.decrypted) for m in (old, new))
        if diff.action is not Action.CONFIGURED:
            fields: tuple[FieldValues, ...] = ()
        elif hidden:
            fields = tuple(FieldValues(field.path, "", "") for field in diff.fields if field.is_change)
        else:
            assert old is not None and new is not None
            fields = field_values(old.obj, new.obj)
        changes.append(ObjectChange(action=ACTION_WORDS[diff.action], kind=diff.ref.kind,
                                    namespace=diff.ref.namespace or "", name=diff.ref.name, hidden=hidden,
                                    fields=fields, diff="" if hidden else diff.diff))
    return changes, unchanged


_ABSENT = object()


def field_values(before: dict[str, Any], after: dict[str, Any]) -> tuple[FieldValues, ...]:
    """Each field where two objects (not Secrets) differ, with both values: the paths are the
    diff's (`differing` on the objects as `compare` normalises them)."""
    old, new = normalize(before), normalize(after)
    return tuple(FieldValues(render_path(path), _shown(_at(old, path)), _shown(_at(new, path)))
                 for path in differing(old, new))


def _at(obj: Any, path: Path) -> Any:
    value = obj
    for step in path:
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value):
            value = value[step]
        else:
            return _ABSENT
    return value


def _shown(value: Any) -> str | None:
    if value is _ABSENT:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, (dict, list)):
        text = to_yaml(value).rstrip("\n")  # type: ignore[arg-type]
    else:
        text = json.dumps(value)
    if len(text) > MAX_VALUE:
        return text[:MAX_VALUE] + f" … ({len(text) - MAX_VALUE} more characters)"
    return text


@dataclass(frozen=True)
class Comparison:
    """What the compare page shows: the two entries, and the objects that differ between
    their renders, or why a render is missing."""

    before: HistoryEntry
    after: HistoryEntry
    changes: tuple[ObjectChange, ...] = ()
    unchanged: int = 0
    problems: tuple[str, ...] = ()
    """Why a revision cannot be shown (then there are no changes)."""


def compare_entries(renders: Renders, *, namespace: str, name: str, before: HistoryEntry,
                    after: HistoryEntry) -> Comparison:
    """The two entries' revisions rendered (each once) and compared."""
    rendered: dict[str, list[Manifest]] = {}
    problems: list[str] = []
    for revision in dict.fromkeys((before.revision, after.revision)):
        try:
            rendered[revision] = renders.render(namespace, name, revision)
        except NotRendered as missing:
            problems.append(str(missing))
    if problems:
        return Comparison(before=before, after=after, problems=tuple(problems))
    changes, unchanged = object_changes(rendered[before.revision], rendered[after.revision],
                                        sides=(before.revision[:12], after.revision[:12]))
    return Comparison(before=before, after=after, changes=tuple(changes), unchanged=unchanged)
