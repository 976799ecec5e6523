"""The watch cache keeps slimmed objects (`syncer.apply.slim`); a plan over them must be the
plan over the full objects: every proof, every diff and its explanations, every prune
decision. Random histories of managers, drift and status on an app's live objects."""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncer.apply.executor import execute
from syncer.apply.applyset import PART_OF_LABEL, Inventory
from syncer.apply.options import SyncOptions
from syncer.apply.plan import build_plan
from syncer.apply.planned import Plan
from syncer.apply.slim import slim
from syncer.kube import Resource
from syncer.model import Object, ObjectRef
from syncer.sources import open_source, render
from tests.unit.fakes import FakeKube

NAMESPACE = "shop"
OPTIONS = SyncOptions(app="shop", namespace=NAMESPACE)
APPLYSET = Inventory.for_app(app="shop", namespace=NAMESPACE).id


class Cache:
    """The watch cache's answers, over the objects given (full, or as the cache keeps them)."""

    def __init__(self, objects: Iterable[Object]) -> None:
        self.objects = list(objects)

    def members(self, resource: Resource, namespace: str | None, *, applyset: str | None = None,
                ) -> list[Object] | None:
        return [o for o in self.objects if o["kind"] == resource.kind and o["metadata"].get("namespace") == namespace
                and PART_OF_LABEL in (o["metadata"].get("labels") or {})]

    def parent(self, namespace: str, name: str) -> tuple[bool, Object | None]:
        return True, next((o for o in self.objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name
                           and o["metadata"].get("namespace") == namespace), None)

    def wrote_parent(self, namespace: str, name: str) -> None:
        pass

    def watching(self, resources: object) -> bool:
        return True


def manifests(tmp_path: Path, data: dict[str, dict[str, str]], replicas: int) -> list[Any]:
    root = tmp_path / "app"
    root.mkdir(exist_ok=True)
    for old in root.glob("*.yaml"):
        old.unlink()
    for name, values in data.items():
        lines = "".join(f"  {k}: \"{v}\"\n" for k, v in values.items())
        (root / f"{name}.yaml").write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata:\n{lines}")
    (root / "web.yaml").write_text(f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: "web:1", ports: [{{containerPort: 80}}]}}]}}
""")
    return render(open_source(str(root)).fetch(), ".", namespace=NAMESPACE)


def fields_of(obj: Object, *, under: tuple[str, ...]) -> dict[str, Any]:
    """A fieldsV1 tree owning every leaf of `obj` below `under` (list items by index)."""
    def tree(value: Any) -> dict[str, Any]:
        if isinstance(value, dict) and value:
            return {f"f:{k}": tree(v) for k, v in value.items()}
        if isinstance(value, list) and value:
            return {f"i:{i}": tree(v) for i, v in enumerate(value)}
        return {}
    node: Any = obj
    for key in under:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    result: dict[str, Any] = tree(node)
    for key in reversed(under):
        result = {f"f:{key}": result}
    return result


ENTRY = st.fixed_dictionaries({
    "manager": st.sampled_from(["syncer", "kubectl-edit", "kube-controller-manager", "hpa", "kubectl-label"]),
    "operation": st.sampled_from(["Apply", "Update"]),
    "subresource": st.sampled_from([None, "status", "scale"]),
    "owns": st.sampled_from([("data",), ("spec",), ("spec", "replicas"), ("status",), ("metadata", "labels"),
                             ("metadata", "annotations")]),
})
HISTORY = st.fixed_dictionaries({
    "git": st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["1", "2"]), min_size=1),
    "live": st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["1", "2", "3"])),
    "replicas": st.integers(0, 2),
    "live_replicas": st.integers(0, 2),
    "annotation": st.booleans(),
    "entries": st.lists(ENTRY, max_size=5),
    "status": st.booleans(),
    "status_applied": st.booleans(),
})


def drifted(obj: Object, history: dict[str, Any]) -> Object:
    """The live object after others wrote to it, and its managedFields as they would read
    (`status_applied`: syncer applied a status, as to a kind without a status subresource)."""
    live = copy.deepcopy(obj)
    if live["kind"] == "ConfigMap":
        live["data"] = dict(history["live"]) or live.get("data", {})
    else:
        live["spec"]["replicas"] = history["live_replicas"]
    if history["annotation"]:
        live["metadata"].setdefault("annotations", {})["team"] = "shop"
    if history["status"]:
        live["status"] = {"observedGeneration": 1, "conditions": [{"type": "Available", "status": "True"}]}
    entries = [{"manager": "syncer", "operation": "Apply", "apiVersion": live["apiVersion"],
                "time": "2026-12-02T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": fields_of(obj, under=("data",) if obj["kind"] == "ConfigMap" else ("spec",))
                | (fields_of(live, under=("status",)) if history["status_applied"] else {})}]
    for entry in history["entries"]:
        owned = fields_of(live, under=entry["owns"])
        if entry["subresource"] == "status":
            owned = {**owned, **fields_of(live, under=("status",))}
        entries.append({"manager": entry["manager"], "operation": entry["operation"], "apiVersion": live["apiVersion"],
                        "time": "2026-12-02T01:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": owned,
                        **({"subresource": entry["subresource"]} if entry["subresource"] else {})})
    live["metadata"]["managedFields"] = entries
    return live


def summary(plan: Plan) -> Any:
    return ([(str(ref), p.check) for ref, p in sorted(plan.objects.items(), key=lambda item: str(item[0]))],
            [(str(d.ref), d.action, d.reason, d.message) for d in plan.prune], plan.steps,
            [type(t).__name__ for t in plan.tasks], [str(f) for f in plan.failures], plan.warnings,
            plan.inventory)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.dictionaries(st.sampled_from(["one", "two", "three"]), HISTORY, min_size=1), replicas=st.integers(0, 2),
       web=HISTORY)
def test_a_plan_over_slimmed_objects_is_the_plan_over_full_ones(
    tmp_path: Path, first: dict[str, dict[str, Any]], replicas: int, web: dict[str, Any]
) -> None:
    kube = FakeKube()
    kube.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    applied = manifests(tmp_path, {name: history["git"] for name, history in first.items()} | {"gone": {"x": "1"}},
                        replicas)
    assert execute(kube, build_plan(kube, applied, options=OPTIONS, revision="r1"), dry_run=False).ok
    for path, obj in list(kube.store.items()):
        history = web if obj["kind"] == "Deployment" else first.get(obj["metadata"]["name"])
        if history is not None:
            kube.store[path] = drifted(obj, history)
    # Git changes: one ConfigMap gone (pruned), the others as the histories say.
    desired = manifests(tmp_path, {name: {k: str(int(v) % 2 + 1) for k, v in history["git"].items()}
                                   for name, history in first.items()}, web["replicas"])
    live = list(kube.store.values())
    plans = []
    for cached in (copy.deepcopy(live), [slim(o) for o in live]):
        kube.requests.clear()
        plan = build_plan(kube, desired, options=OPTIONS, revision="r2", cache=Cache(cached))
        # sorted: the plan asks the server from a thread pool, in no fixed order
        plans.append((summary(plan), sorted((r.method, r.path, r.dry_run) for r in kube.requests)))
    full, slimmed = plans
    assert slimmed[0] == full[0]
    assert slimmed[1] == full[1], "the same objects proven unchanged locally, the same asked of the server"


def test_slim_drops_status_ownership_and_versions_and_shares_keys() -> None:
    status_entry = {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
                    "apiVersion": "apps/v1", "time": "t", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:status": {"f:replicas": {}}, "f:metadata": {"f:annotations": {"f:x": {}}}}}
    applied = {"manager": "syncer", "operation": "Apply", "apiVersion": "apps/v1", "time": "t",
               "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:phase": {}}, "f:spec": {"f:replicas": {}}}}
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "managedFields": [
        status_entry, applied]}, "status": {"replicas": 1}}
    before = copy.deepcopy(obj)
    kept = slim(obj)
    assert obj == before, "the object given is not changed"
    assert kept["status"] == {"replicas": 1}, "health reads the status"
    assert kept["metadata"]["managedFields"] == [
        {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status", "time": "t",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": {"f:x": {}}}}},
        {"manager": "syncer", "operation": "Apply", "time": "t", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:status": {"f:phase": {}}, "f:spec": {"f:replicas": {}}}},
    ], "a status applied to the object itself stays: a kind may have no status subresource"
    other = slim(copy.deepcopy(obj))
    key = next(iter(kept["metadata"]["managedFields"][1]["fieldsV1"]["f:spec"]))
    assert key is next(iter(other["metadata"]["managedFields"][1]["fieldsV1"]["f:spec"])) is sys.intern("f:replicas")
