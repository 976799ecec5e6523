"""Taking over an app's inventory from the layout before an app was (namespace, name).

Until this release, an App's ApplySet parent and lock lived in its *target* namespace, so an
App in team-a whose `targetNamespace` named team-b shared a parent (and ApplySet id) with
team-b's App of the same name. Now they live in the App's own namespace. When the two
differ, the first sync after the upgrade takes the old parent's members over:

1. the new parent is written first, recording the old parent's group-kinds and namespaces
   too, so that a sync cut off half-way still knows every place the members may be;
2. each old member is relabelled once (a merge patch conditional on its resourceVersion);
3. the old parent is deleted (conditional on its uid).

Every step is repeatable: a second run relabels what is left and deletes the parent. Runs
under the app's lock, before the plan that the sync then makes again.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from syncer.apply.applyset import PART_OF_LABEL, Inventory
from syncer.apply.live import members
from syncer.apply.options import SyncOptions
from syncer.kube import Kube
from syncer.model import ObjectRef

log = logging.getLogger(__name__)


def legacy_inventory(options: SyncOptions) -> Inventory | None:
    """Where the app's inventory lived before the upgrade, if it may have lived elsewhere."""
    if options.adopt_from is None or options.adopt_from == options.inventory_namespace:
        return None
    return Inventory.for_app(app=options.app, namespace=options.adopt_from)


def take_over_legacy(kube: Kube, options: SyncOptions) -> int:
    """Carry out the takeover above; the number of members relabelled (0: nothing to take)."""
    legacy = legacy_inventory(options)
    if legacy is None:
        return 0
    configmaps = kube.resource_for("v1", "ConfigMap")
    legacy_parent = kube.get(configmaps, legacy.parent.name, namespace=legacy.parent.namespace)
    if legacy_parent is None:
        return 0
    legacy = legacy.read(legacy_parent)
    if not (legacy.tooling or "").startswith("syncer/"):
        return 0
    found, _ = members(kube, legacy, {}, cache=None)
    inventory = Inventory.for_app(app=options.app, namespace=options.inventory_namespace)
    inventory = inventory.read(kube.get(configmaps, inventory.parent.name, namespace=inventory.parent.namespace))
    # The old parent's namespace held members without recording it (a parent's own namespace
    # is implied); here it is not the parent's, so it is recorded.
    assert legacy.parent.namespace is not None
    widened = inventory.including([ObjectRef.of(obj) for _, obj in found])
    widened = replace(widened, group_kinds=widened.group_kinds | legacy.group_kinds,
                      namespaces=widened.namespaces | legacy.namespaces | {legacy.parent.namespace})
    kube.apply(configmaps, widened.parent_body(), subject=str(widened.parent), field_manager=options.field_manager,
               force=True, dry_run=False, decode=False)
    for resource, obj in found:
        metadata = obj["metadata"]
        kube.merge_patch(resource, metadata["name"], {"metadata": {
            "labels": {PART_OF_LABEL: inventory.id}, "resourceVersion": metadata["resourceVersion"]}},
            namespace=metadata.get("namespace"), subject=str(ObjectRef.of(obj)))
    kube.delete(configmaps, legacy.parent.name, namespace=legacy.parent.namespace, subject=str(legacy.parent),
                uid=legacy_parent["metadata"]["uid"])
    log.info("app %s: took over %d object(s) from %s, its inventory before the upgrade; now %s", options.app,
             len(found), legacy.parent, inventory.parent)
    return len(found)
