"""A fresh local control plane for a group of sets, and the set's objects read back from it.

What is checked is the cluster, not the requests: every object of a set is read back (uid,
generation, data, managed fields) before and after each command, so "a resync writes nothing"
and "a failed validation writes nothing" are facts about objects, for syncer, kubectl and kpt
alike.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

import syncer.cli.diff  # noqa: F401  (registers the command)
import syncer.cli.sync  # noqa: F401
from syncer.cli import cli
from syncer.devcluster import ControlPlane, find_assets
from syncer.devcluster.config import ADMIN_CONTEXT
from syncer.errors import NotFound
from syncer.kube import ClientOptions, Kube
from syncer.model import ObjectRef

Versions = dict[ObjectRef, dict[str, Any] | None]
"""Each object of a set as read (None when it does not exist or is being deleted), to tell
with `written_by` whether a tool wrote it between two reads."""

Refs = list[tuple[str, ObjectRef]]
"""(apiVersion, identity) of each object to read back."""

SYNCER_MANAGERS = frozenset({"syncer"})


def _field_paths(fields: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every node of a `fieldsV1` tree, as the path of elements that leads to it."""
    paths: set[tuple[str, ...]] = set()
    if isinstance(fields, dict):
        for element, child in fields.items():
            path = (*prefix, element)
            paths.add(path)
            paths |= _field_paths(child, path)
    return paths


def _entries(live: dict[str, Any], *, managers: frozenset[str], ours: bool) -> list[dict[str, Any]]:
    entries = (live.get("metadata") or {}).get("managedFields") or []
    return [e for e in entries if isinstance(e, dict) and (e.get("manager") in managers) == ours]


def written_by(before: dict[str, Any] | None, after: dict[str, Any] | None, *,
               managers: frozenset[str] = SYNCER_MANAGERS) -> bool:
    return write_seen(before, after, managers=managers) is not None


def write_seen(before: dict[str, Any] | None, after: dict[str, Any] | None, *,
               managers: frozenset[str] = SYNCER_MANAGERS) -> str | None:
    """What shows that a tool (whose field managers are `managers`) wrote the object between
    two reads, and not only a controller; None when nothing does.

    A bare resourceVersion also moves when the Deployment controller writes status or its
    revision annotation, or the token controller adds a ServiceAccount's secret. What moves
    only when the tool writes: the object's existence and uid (created, re-created, deleted),
    its generation (spec changed) where the spec changed in fields the tool owns (a
    HorizontalPodAutoscaler scales a Deployment through the scale subresource: `spec.replicas`,
    which the tool left out, changes and no managedFields entry moves), a
    ConfigMap's or Secret's data, and the tool's managedFields entries (the time of its last
    change, the fields it owns) -- except that another manager's update can take fields away
    from the tool's entries without the tool doing anything: Kubernetes 1.20's StatefulSet
    controller, writing status about a second after the StatefulSet was created, takes
    `spec.volumeClaimTemplates` from its applier (it sends the templates back with the
    defaults its informer decoded). Fields that left the tool's entries for another manager's
    entry are therefore not a write of the tool's.
    """
    if before is None or after is None:
        if (before is None) == (after is None):
            return None
        return "created" if before is None else "deleted"
    old_meta, new_meta = before.get("metadata") or {}, after.get("metadata") or {}
    if old_meta.get("uid") != new_meta.get("uid"):
        return "re-created"
    if before.get("kind") in ("ConfigMap", "Secret") and any(
            before.get(key) != after.get(key) for key in ("data", "binaryData")):
        return "data changed"
    old_ours = _entries(before, managers=managers, ours=True)
    new_ours = _entries(after, managers=managers, ours=True)
    if _stamps(old_ours) != _stamps(new_ours):
        return f"its managedFields entries changed: {_stamps(old_ours)} -> {_stamps(new_ours)}"
    old_fields = set().union(*(_field_paths(e.get("fieldsV1")) for e in old_ours))
    new_fields = set().union(*(_field_paths(e.get("fieldsV1")) for e in new_ours))
    if new_fields - old_fields:
        return f"it owns new fields {sorted(new_fields - old_fields)}"
    taken = set().union(*(_field_paths(e.get("fieldsV1")) for e in _entries(after, managers=managers, ours=False)))
    if not (old_fields - new_fields) <= taken:
        return f"it gave up fields {sorted(old_fields - new_fields - taken)}"
    generations = old_meta.get("generation"), new_meta.get("generation")
    if generations[0] != generations[1]:
        spec_changed = _changed_fields(before.get("spec"), after.get("spec"), ("f:spec",))
        if not spec_changed or spec_changed & (old_fields | new_fields):
            return f"generation {generations[0]} -> {generations[1]}, spec changed at {sorted(spec_changed)}"
    return None


def _changed_fields(old: Any, new: Any, prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
    """The `fieldsV1` paths (down to the first list) at which two trees differ."""
    if old == new:
        return set()
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return {prefix}
    return {path for key in set(old) | set(new)
            for path in _changed_fields(old.get(key), new.get(key), (*prefix, f"f:{key}"))}


def _stamps(entries: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return sorted((str(e.get("manager")), str(e.get("operation")), str(e.get("apiVersion")),
                   str(e.get("subresource") or ""), str(e.get("time"))) for e in entries)


def changed(before: Versions, after: Versions, *, managers: frozenset[str]) -> int:
    """How many objects the tool wrote between two reads."""
    return sum(1 for ref in set(before) | set(after)
               if written_by(before.get(ref), after.get(ref), managers=managers))


WRITTEN_NAMED = 5
"""How many written objects a run names (a resync that writes is named; a fresh apply's
writes are every object)."""


def written_objects(before: Versions, after: Versions, *, managers: frozenset[str]) -> list[str]:
    """`Kind/namespace/name: why` of the first WRITTEN_NAMED objects the tool wrote."""
    refs = sorted(set(before) | set(after), key=qualified)
    seen = ((ref, write_seen(before.get(ref), after.get(ref), managers=managers)) for ref in refs)
    return [f"{qualified(ref)}: {why}" for ref, why in seen if why is not None][:WRITTEN_NAMED]


def created(before: Versions, after: Versions) -> int:
    return sum(1 for ref, live in after.items() if live is not None and before.get(ref) is None)


def qualified(ref: ObjectRef) -> str:
    return f"{ref.kind}/{ref.namespace or ''}/{ref.name}"


def gone(removed: Refs, after: Versions) -> dict[str, bool]:
    """`Kind/namespace/name` of each removed object -> no longer in the cluster."""
    return {qualified(ref): after.get(ref) is None for _, ref in removed}


@dataclass(frozen=True)
class CliOutcome:
    exit_code: int
    data: Any
    stderr: str


class Cluster:
    """A running control plane, syncer's CLI pointed at it, and objects read back."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.kube = Kube.connect(ClientOptions(kubeconfig=str(kubeconfig), context=ADMIN_CONTEXT))

    def version(self) -> str:
        found = self.kube.server_version()
        return ".".join(str(part) for part in found) if found else "unknown"

    def syncer(self, *args: str) -> CliOutcome:
        result = CliRunner().invoke(
            cli, [*args, "--kubeconfig", str(self.kubeconfig), "--context", ADMIN_CONTEXT, "-o", "json"]
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        try:
            data = json.loads(result.stdout) if result.stdout.strip() else None
        except ValueError:
            data = None
        return CliOutcome(result.exit_code, data, result.stderr)

    def versions(self, refs: Refs) -> Versions:
        self.kube.forget_discovery()
        found: Versions = {}
        for api_version, ref in refs:
            try:
                resource = self.kube.resource_for(api_version, ref.kind)
            except NotFound:
                found[ref] = None
                continue
            live = self.kube.get(resource, ref.name, namespace=ref.namespace if resource.namespaced else None)
            metadata = (live or {}).get("metadata") or {}
            alive = live is not None and not metadata.get("deletionTimestamp")
            found[ref] = live if alive else None
        return found

    def close(self) -> None:
        self.kube.close()


@contextmanager
def control_plane(workdir: Path, *, version: str | None) -> Iterator[Cluster]:
    """A fresh control plane of `version` (see `syncer.devcluster.find_assets`), stopped after."""
    plane = ControlPlane(workdir=Path(tempfile.mkdtemp(prefix="cp-", dir=workdir)), assets=find_assets(version=version))
    running = plane.start()
    cluster = Cluster(running.kubeconfig)
    try:
        yield cluster
    finally:
        cluster.close()
        plane.stop()
