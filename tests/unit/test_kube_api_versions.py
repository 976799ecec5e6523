"""What differs between API server releases, without a server: which writes ask for strict
field validation, how a server's objection reads for the manifest it is about, and how a kind
the server does not serve is reported. The same behaviour against real 1.37 and 1.20 servers
is in tests/e2e/test_validation.py and tests/e2e/test_current_apis.py."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from syncer import __version__
from syncer.apply.applyset import Inventory, foreign_tooling
from syncer.apply.check import check_object
from syncer.apply.plan import build_plan
from syncer.apply.planned import Desired
from syncer.apply.options import SyncOptions
from syncer.errors import ClusterError, Conflict, Invalid, NotFound
from syncer.kube import Resource
from syncer.kube.discovery import strict_fields_supported
from syncer.model import Manifest, ObjectRef, Origin
from tests.unit.fakes import FakeKube, resource

WIDGET = ObjectRef(group="example.com", kind="Widget", namespace="shop", name="w1")
CEL_CAUSE = {"reason": "FieldValueInvalid", "field": "spec.size",
             "message": 'Invalid value: "integer": size must be at most 10'}


@pytest.mark.parametrize(("version", "strict"), [
    (None, False), ((1, 20, 2), False), ((1, 26, 15), False), ((1, 27, 0), True), ((1, 37, 2), True),
])
def test_strict_field_validation_only_where_the_server_has_it(
    version: tuple[int, int, int] | None, strict: bool
) -> None:
    assert strict_fields_supported(version) is strict


@dataclass
class QueryKube(FakeKube):
    """FakeKube that also keeps each write's query."""

    queries: list[dict[str, str]] = field(default_factory=list)

    def request(self, method: str, path: str, *, subject: str, verb: str, query: dict[str, str] | None = None,
                body: Any = None, content_type: str = "application/json", retry: bool = True,
                encoded: bytes | None = None, decode: bool = True) -> Any:
        if method != "GET":
            self.queries.append(dict(query or {}))
        return super().request(method, path, subject=subject, verb=verb, query=query, body=body,
                               content_type=content_type, retry=retry, encoded=encoded, decode=decode)


@pytest.mark.parametrize(("version", "want"), [((1, 37, 2), {"fieldValidation": "Strict"}), ((1, 20, 2), {})])
def test_applies_and_the_update_fallback_ask_for_strict_fields(
    version: tuple[int, int, int], want: dict[str, str]
) -> None:
    kube = QueryKube(version=version)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "shop"}}
    desired = Desired(ref=ObjectRef.of(body), api_version="v1", body=body, resource=resource("ConfigMap"),
                      origin=Origin("cm.yaml"), live=None)
    desired.write(kube, field_manager="syncer", force=True, dry_run=True)
    fallback = Desired(ref=ObjectRef.of(body), api_version="v1", body=body, resource=resource("ConfigMap"),
                       origin=Origin("cm.yaml"), live=None, update_instead="kubernetes#89264")
    fallback.write(kube, field_manager="syncer", force=True, dry_run=False)
    assert [{k: v for k, v in q.items() if k == "fieldValidation"} for q in kube.queries] == [want, want]


def test_an_objection_reads_as_its_causes_with_the_manifests_place() -> None:
    # The message text says something else on purpose: the report is made of the causes.
    error = Invalid(str(WIDGET), "the message text, which is not parsed", status=422, reason="Invalid",
                    details={"causes": [CEL_CAUSE, {"reason": "FieldValueRequired", "field": "spec.colour",
                                                    "message": "Required value"}]})
    located = error.about_manifest(Origin("deploy/widget.yaml", line=7))
    assert type(located) is Invalid and located.status == 422 and located.details == error.details
    assert located.__cause__ is error
    assert str(located) == (
        'Widget/shop/w1: rejected by the API server (deploy/widget.yaml:7): spec.size: Invalid value: "integer": '
        "size must be at most 10; spec.colour: Required value")


def test_an_objection_without_causes_keeps_the_servers_message() -> None:
    error = Conflict(str(WIDGET), "apply conflict", status=409)
    assert str(error.about_manifest(Origin("w.yaml", line=3))) == "Widget/shop/w1: apply conflict (w.yaml:3)"


def test_a_dry_run_objection_names_object_file_line_field_and_rule() -> None:
    kube = FakeKube(version=(1, 37, 2))
    body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "shop"},
            "spec": {"size": 12}}
    res = resource("Widget", "example.com")
    kube.fail("PATCH", res.path(namespace="shop", name="w1"),
              Invalid(str(WIDGET), 'Widget.example.com "w1" is invalid', status=422, details={"causes": [CEL_CAUSE]}))
    desired = Desired(ref=WIDGET, api_version="example.com/v1", body=body, resource=res,
                      origin=Origin("app/widget.yaml", line=4), live=None)
    objection = check_object(kube, desired, options=SyncOptions(app="shop", namespace="shop"))
    assert isinstance(objection, ClusterError)
    assert str(objection) == ('Widget/shop/w1: rejected by the API server (app/widget.yaml:4): spec.size: '
                              'Invalid value: "integer": size must be at most 10')


@dataclass
class Release120(FakeKube):
    """Discovery of a 1.20 server for two kinds: no CronJob in batch/v1 (only v1beta1), and
    PodDisruptionBudget only in policy/v1beta1."""

    def resource_for(self, api_version: str, kind: str) -> Resource:
        served = {("batch/v1beta1", "CronJob"): Resource("batch", "v1beta1", "CronJob", "cronjobs", namespaced=True),
                  ("policy/v1beta1", "PodDisruptionBudget"): Resource(
                      "policy", "v1beta1", "PodDisruptionBudget", "poddisruptionbudgets", namespaced=True)}
        if (api_version, kind) in served:
            return served[(api_version, kind)]
        if kind in ("CronJob", "PodDisruptionBudget"):
            raise NotFound(kind, f"{api_version} {kind} is not served", status=404)
        return super().resource_for(api_version, kind)

    def preferred_resource(self, group: str, kind: str) -> Resource:
        # 1.20 prefers batch/v1 (Jobs), which has no CronJob; policy/v1beta1.
        return self.resource_for({"batch": "batch/v1", "policy": "policy/v1beta1"}.get(group, "v1"), kind)


def test_a_kind_the_server_does_not_serve_names_its_release_and_the_served_version() -> None:
    kube = Release120(version=(1, 20, 2))
    cronjob = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "shop"},
               "spec": {"schedule": "@daily"}}
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "shop"}}
    manifests = [Manifest(cronjob, Origin("app/cron.yaml", line=1)), Manifest(pdb, Origin("app/pdb.yaml", line=5))]
    plan = build_plan(kube, manifests, options=SyncOptions(app="shop", namespace="shop"), revision="r1")
    assert sorted(str(failure) for failure in plan.failures) == [
        "CronJob/shop/nightly: batch/v1 CronJob is not served by this API server (Kubernetes 1.20.2), and no "
        "CustomResourceDefinition in this sync defines it (app/cron.yaml:1)",
        "PodDisruptionBudget/shop/web: policy/v1 PodDisruptionBudget is not served by this API server "
        "(Kubernetes 1.20.2; it serves PodDisruptionBudget as policy/v1beta1), and no CustomResourceDefinition "
        "in this sync defines it (app/pdb.yaml:5)",
    ]
    assert not kube.writes()


@pytest.mark.parametrize(("tooling", "foreign"), [
    (None, False), (f"syncer/v{__version__}", False), ("syncer/v0.0.1", False), ("syncer", False),
    ("kubectl/v1.32.4", True), ("kubectl/v1.32.4-dispatcher", True), ("kpt/v1", True), ("syncer-fork/v1", True),
])
def test_another_tools_applyset_is_told_by_the_tooling_name(tooling: str | None, foreign: bool) -> None:
    inventory = replace(Inventory.for_app(app="shop", namespace="shop"), exists=True, tooling=tooling)
    assert foreign_tooling(inventory) == (tooling if foreign else None)
