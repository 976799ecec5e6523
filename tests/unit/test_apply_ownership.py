"""Ownership between apps, on plain planned objects and an in-memory cluster: the refusal names
the app that owns the object and this app, each with its namespace, so a wrong `-n` ("app
payments, not app payments") is told apart from a real second app."""

from __future__ import annotations

from dataclasses import dataclass

from syncer.apply.applyset import ID_LABEL, PART_OF_LABEL, Inventory
from syncer.apply.ownership import ADOPT_ANNOTATION, ownership_failures
from syncer.model import Object, ObjectRef, Origin
from tests.unit.fakes import FakeKube


@dataclass(frozen=True)
class Planned:
    ref: ObjectRef
    body: Object
    live: Object | None
    origin: Origin


def configmap(name: str, namespace: str, *, labels: dict[str, str] | None = None,
              annotations: dict[str, str] | None = None) -> Object:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {},
                         "annotations": annotations or {}}}


def planned(obj: Object, live: Object | None) -> Planned:
    return Planned(ref=ObjectRef.of(obj), body=obj, live=live, origin=Origin(file="app/cm.yaml", line=1))


def test_a_wrong_namespace_names_both_inventories() -> None:
    before = Inventory.for_app(app="payments", namespace="payments")
    now = Inventory.for_app(app="payments", namespace="payments-v2")
    kube = FakeKube()
    kube.put({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "syncer-payments", "namespace": "payments", "labels": {ID_LABEL: before.id}}})
    live = configmap("settings", "shop", labels={PART_OF_LABEL: before.id})
    failures = ownership_failures(kube, [planned(configmap("settings", "shop"), live)], inventory=now,
                                  app="payments", namespace="payments-v2")
    assert [f.message.split(" (app/cm.yaml:1)")[0] for f in failures] == [
        "belongs to app payments (namespace payments), not to app payments (namespace payments-v2)"]


def test_the_apps_own_members_and_adopted_objects_pass() -> None:
    mine = Inventory.for_app(app="shop", namespace="shop")
    theirs = Inventory.for_app(app="other", namespace="shop")
    ours = configmap("a", "shop", labels={PART_OF_LABEL: mine.id})
    adopted = configmap("b", "shop", annotations={ADOPT_ANNOTATION: "true"})
    assert ownership_failures(FakeKube(), [
        planned(configmap("a", "shop"), ours),
        planned(adopted, configmap("b", "shop", labels={PART_OF_LABEL: theirs.id})),
        planned(configmap("c", "shop"), None),
    ], inventory=mine, app="shop", namespace="shop") == []
