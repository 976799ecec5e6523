"""A CLI app's rollback hold, kept on its ApplySet parent (`syncer.hold` has the why).

An App keeps its hold in its spec; an app synced only by hand (`syncer sync --name`) has no
object of its own but its parent, so `syncer rollback --name` records the hold there, as the
annotation `syncer.dev/hold` (the hold as JSON), under a field manager of its own
(`syncer-hold`): the sync's inventory fields and the status annotations are never touched by
it, nor it by them. A plain `syncer sync` of a held app is refused before anything is
written (it would undo the rollback); `--release-hold` syncs anyway and removes the hold.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from syncer.apply.applyset import Inventory
from syncer.apply.options import SyncOptions
from syncer.apply.planned import Plan
from syncer.errors import SyncerError
from syncer.hold import Hold, parse_hold
from syncer.kube import Kube

HOLD_ANNOTATION = "syncer.dev/hold"
HOLD_MANAGER = "syncer-hold"


class HeldByRollback(SyncerError):
    """A plain sync of an app a rollback holds: refused before any write (exit 2)."""


def recorded_hold(annotations: Mapping[str, str], *, parent: str) -> Hold | None:
    """The hold a parent's annotations record (None: none). A hold that cannot be read is
    refused rather than ignored: ignoring it would let a sync undo the rollback."""
    text = annotations.get(HOLD_ANNOTATION)
    if not text:
        return None
    try:
        return parse_hold(json.loads(text))
    except (ValueError, json.JSONDecodeError) as error:
        raise HeldByRollback(f"{parent}: annotation {HOLD_ANNOTATION} is not a hold syncer rollback wrote ({error}); "
                             f"remove it with `kubectl annotate` to sync") from None


def refuse_held(plan: Plan, options: SyncOptions) -> None:
    """Refuse a sync that would undo a rollback's hold: any sync but the rollback itself (or
    another one), unless it releases the hold."""
    hold = recorded_hold(plan.parent_annotations, parent=str(plan.inventory.parent))
    if hold is None or options.rollback is not None or options.release_hold:
        return
    who = f" by {hold.requested_by}" if hold.requested_by else ""
    raise HeldByRollback(
        f"app {options.app}: {plan.inventory.parent} records a rollback hold ({hold.describe()}{who}): this sync "
        f"would undo it, so nothing was written; pass --release-hold to sync anyway and end the hold, or "
        f"`syncer rollback --release --name {options.app} -n {options.inventory_namespace}`")


def write_hold(kube: Kube, *, app: str, namespace: str, hold: Hold | None) -> None:
    """Record `hold` on the app's parent, or (None) remove the one recorded: server-side apply
    of the annotation alone, so that what this manager leaves out the server removes."""
    parent = Inventory.for_app(app=app, namespace=namespace).parent
    metadata: dict[str, object] = {"name": parent.name, "namespace": namespace}
    if hold is not None:
        metadata["annotations"] = {HOLD_ANNOTATION: json.dumps(hold.to_spec(), sort_keys=True, separators=(",", ":"))}
    kube.apply(kube.resource_for("v1", "ConfigMap"), {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata},
               subject=str(parent), field_manager=HOLD_MANAGER, force=True, dry_run=False, decode=False)
