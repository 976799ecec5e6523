"""The prune filters, one table row each way: a filter that keeps a candidate does so under
its name with its reason (what every output shows), and lets go of the candidate it has no
reason to keep. Also the decision around them (`prune.decide`) and the one way a CRD becomes
a resource (`crds.crd_resource`). No server: `FakeKube` holds what a namespace or CRD holds."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from syncer.apply.crds import crd_resource
from syncer.apply.filters import (
    PRUNE_ANNOTATION,
    PRUNE_FILTERS,
    Candidate,
    PruneContext,
    keep_reason,
)
from syncer.apply.applyset import PART_OF_LABEL
from syncer.apply.prune import decide
from syncer.errors import Forbidden
from syncer.kube import Resource
from syncer.model import Action, Object, ObjectRef
from tests.unit.fakes import INVENTORY, FakeKube, ref, resource

APPLYSET = INVENTORY.id
MINE = {PART_OF_LABEL: APPLYSET}


def live(text: str, *, managers: tuple[str, ...] = ("syncer",), labels: dict[str, str] | None = None,
         **metadata: Any) -> Object:
    r = ref(text)
    res = resource(r.kind, r.group)
    meta: dict[str, Any] = {"name": r.name, "uid": f"uid-{r.name}", "labels": {**MINE, **(labels or {})},
                            "managedFields": [{"manager": m, "operation": "Apply"} for m in managers], **metadata}
    if r.namespace:
        meta["namespace"] = r.namespace
    return {"apiVersion": res.api_version, "kind": r.kind, "metadata": meta}


WIDGETS_CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "widgets.example.com", "uid": "uid-crd",
                            "labels": MINE, "managedFields": [{"manager": "syncer"}]},
               "spec": {"group": "example.com", "scope": "Namespaced",
                        "names": {"kind": "Widget", "plural": "widgets"},
                        "versions": [{"name": "v1", "served": True, "storage": True}]}}


def candidate(obj: Object) -> Candidate:
    r = ObjectRef.of(obj)
    return Candidate(ref=r, api_version=obj["apiVersion"], resource=resource(r.kind, r.group), live=obj)


def context(kube: FakeKube | None = None, *, desired: tuple[str, ...] = (),
            desired_uids: dict[str, str] | None = None, home: str = "shop",
            confirmed: tuple[str, ...] = ()) -> PruneContext:
    return PruneContext(kube=kube or FakeKube(), applyset=APPLYSET, app="shop", field_manager="syncer",
                        desired=frozenset(ref(d) for d in desired),
                        desired_uids={uid: ref(d) for uid, d in (desired_uids or {}).items()}, home=home,
                        confirmed=frozenset(ref(c) for c in confirmed))


def world(*objects: Object) -> FakeKube:
    kube = FakeKube()
    for obj in objects:
        kube.put(obj)
    return kube


def unreadable_widgets() -> FakeKube:
    kube = world()
    kube.fail("GET", "/apis/example.com/v1/widgets", Forbidden("Widget", "widgets is forbidden", status=403))
    return kube


KEPT = [
    pytest.param("never-applied", live("Service/shop/web",
                                       managers=("kube-controller-manager",)), context(),
                 "never applied it", id="never-applied"),
    pytest.param("prune-disabled", live("ConfigMap/shop/a", annotations={PRUNE_ANNOTATION: "disabled"}),
                 context(), f'annotated {PRUNE_ANNOTATION}: "disabled"', id="prune-disabled"),
    pytest.param("desired-uid", live("Deployment.apps/shop/web"),
                 context(desired=("Deployment.apps/shop/web2",), desired_uids={"uid-web": "Deployment.apps/shop/web2"}),
                 "the same stored object as Deployment.apps/shop/web2", id="desired-uid"),
    pytest.param("terminating", live("ConfigMap/shop/a", deletionTimestamp="2026-01-01T00:00:00Z",
                                     finalizers=["example.com/hold"]),
                 context(), "already being deleted (waiting for finalizers: example.com/hold)", id="terminating"),
    pytest.param("inventory-home", live("Namespace/shop"), context(),
                 "it holds this app's inventory and lock (ConfigMap/shop/syncer-shop)", id="inventory-home"),
    pytest.param("desired-inside", live("Namespace/old"), context(desired=("ConfigMap/old/a",)),
                 "the source still has objects in it (ConfigMap/old/a)", id="desired-inside-namespace"),
    pytest.param("desired-inside", WIDGETS_CRD, context(desired=("Widget.example.com/shop/w",)),
                 "the source still has custom resources of it (Widget/shop/w)", id="desired-inside-crd"),
    pytest.param("foreign-inside", live("Namespace/old"),
                 context(world(live("ConfigMap/old/theirs", labels={PART_OF_LABEL: "another"}))),
                 "it holds objects this app does not manage (ConfigMap/theirs)", id="foreign-inside-namespace"),
    pytest.param("foreign-inside", WIDGETS_CRD,
                 context(world(live("Widget.example.com/other/theirs", labels={PART_OF_LABEL: "another"}))),
                 "custom resources of it are not managed by this app (Widget/other/theirs)", id="foreign-inside-crd"),
    pytest.param("foreign-inside", WIDGETS_CRD, context(unreadable_widgets()),
                 "Widget.example.com (cannot list: widgets is forbidden)", id="foreign-inside-crd-unreadable"),
    pytest.param("protected", live("Namespace/old"), context(),
                 "deleting a Namespace deletes everything in it; to delete it, confirm it: --confirm-prune "
                 "Namespace/old, or pruneConfirmations: [Namespace/old] in the app's spec", id="protected-namespace"),
    pytest.param("protected", WIDGETS_CRD, context(confirmed=("Namespace/widgets.example.com",)),
                 "deletes every object of its kind, in every namespace; to delete it, confirm it: --confirm-prune "
                 "CustomResourceDefinition/widgets.example.com", id="protected-crd-other-kind-confirmed"),
    pytest.param("protected", live("PersistentVolumeClaim/shop/data"), context(confirmed=("PersistentVolumeClaim/other/data",)),
                 "--confirm-prune PersistentVolumeClaim/shop/data, or pruneConfirmations: "
                 "[PersistentVolumeClaim/shop/data]", id="protected-pvc-other-namespace-confirmed"),
    pytest.param("protected", live("PersistentVolume/pv-1"), context(),
                 "the data on it; to delete it, confirm it: --confirm-prune PersistentVolume/pv-1", id="protected-pv"),
]


@pytest.mark.parametrize(("name", "obj", "ctx", "reason"), KEPT)
def test_filter_keeps_with_its_name_and_reason(name: str, obj: Object, ctx: PruneContext, reason: str) -> None:
    kept = keep_reason(candidate(obj), ctx)
    assert kept is not None and kept[0] == name, kept
    assert reason in kept[1]
    assert decide(candidate(obj), ctx, prune=True) == (Action.KEPT, name, f"kept: {kept[1]}")


LET_GO = [
    pytest.param("never-applied", live("ConfigMap/shop/a", managers=("kubectl", "syncer")), context(),
                 id="never-applied-applied-by-syncer"),
    pytest.param("prune-disabled", live("ConfigMap/shop/a", annotations={PRUNE_ANNOTATION: "enabled"}), context(),
                 id="prune-disabled-other-value"),
    pytest.param("desired-uid", live("Deployment.apps/shop/web"),
                 context(desired_uids={"uid-other": "Deployment.apps/shop/web2"}), id="desired-uid-other-uid"),
    pytest.param("terminating", live("ConfigMap/shop/a", finalizers=["example.com/hold"]), context(),
                 id="terminating-finalizer-but-not-deleted"),
    pytest.param("inventory-home", live("Namespace/old"), context(), id="inventory-home-another-namespace"),
    pytest.param("desired-inside", live("Namespace/old"), context(desired=("ConfigMap/shop/a", "Namespace/new")),
                 id="desired-inside-namespace-nothing-in-it"),
    pytest.param("desired-inside", WIDGETS_CRD, context(desired=("Gadget.example.com/shop/g",)),
                 id="desired-inside-crd-other-kind"),
    pytest.param("foreign-inside", live("Namespace/old"),
                 context(world(live("ConfigMap/old/mine"),
                               {"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "kube-root-ca.crt", "namespace": "old"}},
                               live("ConfigMap/elsewhere/theirs", labels={PART_OF_LABEL: "another"}))),
                 id="foreign-inside-namespace-only-members-and-the-systems"),
    pytest.param("foreign-inside", WIDGETS_CRD, context(world(live("Widget.example.com/shop/mine"))),
                 id="foreign-inside-crd-only-members"),
    pytest.param("foreign-inside", live("ConfigMap/shop/a"), context(), id="foreign-inside-not-a-container"),
    pytest.param("protected", live("Namespace/old"), context(confirmed=("Namespace/old",)),
                 id="protected-namespace-confirmed"),
    pytest.param("protected", WIDGETS_CRD, context(confirmed=("CustomResourceDefinition/widgets.example.com",)),
                 id="protected-crd-confirmed"),
    pytest.param("protected", live("PersistentVolumeClaim/shop/data"),
                 context(confirmed=("PersistentVolumeClaim/shop/data",)), id="protected-pvc-confirmed"),
    pytest.param("protected", live("ConfigMap/shop/old"), context(), id="protected-not-a-protected-kind"),
]


@pytest.mark.parametrize(("name", "obj", "ctx"), LET_GO)
def test_filter_lets_go(name: str, obj: Object, ctx: PruneContext) -> None:
    keep = dict(PRUNE_FILTERS)[name]
    assert keep(candidate(obj), ctx) is None
    ctx = replace(ctx, confirmed=ctx.confirmed | {candidate(obj).ref})  # the protected kinds, confirmed
    assert keep_reason(candidate(obj), ctx) is None
    assert decide(candidate(obj), ctx, prune=True) == (Action.DELETED, "", "pruned: no longer in the source")


def test_every_filter_has_rows_both_ways() -> None:
    names = {name for name, _ in PRUNE_FILTERS}
    assert {p.values[0] for p in KEPT} == names
    assert {p.values[0] for p in LET_GO} == names


def test_first_filter_decides() -> None:
    obj = live("ConfigMap/shop/a", annotations={PRUNE_ANNOTATION: "disabled"}, deletionTimestamp="2026-01-01T00:00:00Z")
    kept = keep_reason(candidate(obj), context())
    assert kept is not None and kept[0] == "prune-disabled"


def test_pruning_off_skips_what_no_filter_keeps() -> None:
    obj = live("ConfigMap/shop/a")
    assert decide(candidate(obj), context(), prune=False) == (
        Action.SKIPPED, "prune-off", "not pruned: pruning is off (--no-prune)")
    kept = live("ConfigMap/shop/a", annotations={PRUNE_ANNOTATION: "disabled"})
    assert decide(candidate(kept), context(), prune=False)[:2] == (Action.KEPT, "prune-disabled")


# -- one way a CRD becomes a resource -------------------------------------------------------------

def crd(*versions: dict[str, Any], version: str | None = None, scope: str = "Namespaced") -> Object:
    spec: dict[str, Any] = {"group": "example.com", "scope": scope, "names": {"kind": "Widget", "plural": "widgets"}}
    if versions:
        spec["versions"] = list(versions)
    if version:
        spec["version"] = version
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "spec": spec}


def v(name: str, *, served: bool = True, storage: bool = False) -> dict[str, Any]:
    return {"name": name, "served": served, "storage": storage}


CRD_VERSIONS = [
    pytest.param(crd(v("v1beta1"), v("v1", storage=True)), None, "v1", id="storage-version-served"),
    pytest.param(crd(v("v1", storage=True), v("v2")), None, "v1", id="storage-version-not-first"),
    pytest.param(crd(v("v1", served=False, storage=True), v("v2")), None, "v2", id="storage-not-served-first-served"),
    pytest.param(crd(v("v1", served=False, storage=True)), None, None, id="nothing-served"),
    pytest.param(crd(version="v1alpha1"), None, "v1alpha1", id="legacy-spec-version"),
    pytest.param(crd(v("v1beta1"), v("v1", storage=True)), "v1beta1", "v1beta1", id="declared-version-served"),
    pytest.param(crd(v("v1beta1", served=False), v("v1", storage=True)), "v1beta1", None,
                 id="declared-version-not-served"),
    pytest.param(crd(v("v1", storage=True)), "v2", None, id="declared-version-unknown"),
]


@pytest.mark.parametrize(("definition", "declared", "want"), CRD_VERSIONS)
def test_crd_resource(definition: Object, declared: str | None, want: str | None) -> None:
    got = crd_resource(definition, version=declared)
    if want is None:
        assert got is None
    else:
        assert got == Resource(group="example.com", version=want, kind="Widget", plural="widgets", namespaced=True)


def test_crd_resource_scope() -> None:
    got = crd_resource(crd(v("v1", storage=True), scope="Cluster"))
    assert got is not None and not got.namespaced
