"""docs/schema/v1.json keeps the promise the README makes for v1: new optional fields may
appear anywhere (so a v1 document with a field this file does not know is valid, at the top
and inside an entry), new kinds join v1 (a kind the file does not list is valid on its
envelope), while what v1 guarantees still holds: required fields, their types and the closed
vocabularies. A field that changes meaning makes v2."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.schema import undocumented_fields, validation_errors

INVENTORY = "ConfigMap/shop/syncer-shop"
CHANGE = {"action": "configured", "reason": "", "apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop",
          "name": "web", "message": "",
          "fields": [{"path": ".spec.replicas", "cause": "drift", "manager": "kubectl-scale",
                      "time": "2026-12-02T13:10:00Z", "takesOver": True},
                     {"path": ".spec.template.spec.containers[0].image", "cause": "git"},
                     {"path": ".spec.strategy", "cause": "default"}]}
STATUS = {"app": "shop", "namespace": "shop", "inventory": INVENTORY, "revision": "abc", "appliedRevision": "abc",
          "time": "2024-05-01T10:00:00Z", "result": "Succeeded", "error": None, "summary": {"unchanged": 3}}
DOCUMENTS: dict[str, dict[str, Any]] = {
    "Diff": {"schemaVersion": "v1", "kind": "Diff", "app": "shop", "inventory": INVENTORY, "revision": "abc",
             "hasChanges": True, "warnings": [], "summary": {"configured": 1},
             "changes": [{**CHANGE, "diff": "--- a\n+++ b\n", "removedFields": []}]},
    "RevisionDiff": {"schemaVersion": "v1", "kind": "RevisionDiff", "repo": ".", "path": "deploy", "namespace": "shop",
                     "from": {"revision": "main", "sha": "abc"}, "to": {"revision": "pr-7", "sha": "def"},
                     "hasChanges": True, "warnings": [], "notes": [], "summary": {"configured": 1},
                     "changes": [{**CHANGE, "origin": "web.yaml:1", "diff": "--- a\n+++ b\n",
                                  "fields": [{"path": ".spec.replicas", "cause": "git"}]}]},
    "Sync": {"schemaVersion": "v1", "kind": "Sync", "app": "shop", "inventory": INVENTORY, "revision": "abc",
             "dryRun": False, "ok": True, "result": "Succeeded", "error": None, "warnings": [],
             "summary": {"configured": 1}, "changes": [CHANGE]},
    "AppStatus": {"schemaVersion": "v1", "kind": "AppStatus", **STATUS},
    "AppStatusList": {"schemaVersion": "v1", "kind": "AppStatusList", "items": [STATUS]},
    "Error": {"schemaVersion": "v1", "kind": "Error",
              "error": {"type": "RenderError", "message": "invalid manifests", "exitCode": 2,
                        "problems": [{"where": "a.yaml:1", "message": "metadata.name is missing"}]}},
}
NESTED = {"Diff": ("changes", 0), "RevisionDiff": ("changes", 0), "Sync": ("changes", 0),
          "AppStatusList": ("items", 0), "Error": ("error", "problems", 0)}
"""Where each kind has an object entry nested inside it."""


def document(kind: str) -> dict[str, Any]:
    return copy.deepcopy(DOCUMENTS[kind])


def entry(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    node: Any = doc
    for step in NESTED[kind]:
        node = node[step]
    assert isinstance(node, dict)
    return node  # the entry itself, to edit in place


@pytest.mark.parametrize("kind", sorted(DOCUMENTS))
def test_each_document_as_syncer_writes_it_is_valid(kind: str) -> None:
    assert validation_errors(document(kind)) == []
    assert undocumented_fields(document(kind)) == []


@pytest.mark.parametrize("kind", sorted(DOCUMENTS))
def test_a_field_v1_does_not_know_yet_is_valid_at_the_top(kind: str) -> None:
    doc = document(kind)
    doc["newField"] = {"added": "in a later v1 release"}
    assert validation_errors(doc) == []


@pytest.mark.parametrize("kind", sorted(NESTED))
def test_a_field_v1_does_not_know_yet_is_valid_inside_an_entry(kind: str) -> None:
    doc = document(kind)
    entry(doc, kind)["newField"] = 1
    assert validation_errors(doc) == []


def test_unknown_fields_are_valid_in_every_nested_object() -> None:
    doc = document("Error")
    doc["error"]["newField"] = "x"
    assert validation_errors(doc) == []
    version = {"schemaVersion": "v1", "kind": "Version", "clientVersion": "1.0", "newField": True,
               "serverVersion": {"gitVersion": "v1.20.2", "major": "1", "platform": "linux/amd64"}}
    assert validation_errors(version) == []


@pytest.mark.parametrize(("kind", "field"), [
    ("Diff", "summary"), ("Diff", "hasChanges"), ("Sync", "result"), ("AppStatus", "appliedRevision"),
    ("AppStatusList", "items"), ("Error", "error"),
])
def test_a_document_missing_a_required_field_fails(kind: str, field: str) -> None:
    doc = document(kind)
    del doc[field]
    assert [e for e in validation_errors(doc) if f"'{field}' is a required property" in e]


@pytest.mark.parametrize(("kind", "field"), [
    ("Diff", "diff"), ("Diff", "action"), ("RevisionDiff", "origin"), ("Sync", "name"), ("AppStatusList", "result"), ("Error", "where"),
])
def test_an_entry_missing_a_required_field_fails(kind: str, field: str) -> None:
    doc = document(kind)
    del entry(doc, kind)[field]
    assert [e for e in validation_errors(doc) if f"'{field}' is a required property" in e]


@pytest.mark.parametrize(("kind", "path", "value"), [
    ("Diff", ("hasChanges",), "yes"),
    ("RevisionDiff", ("from", "sha"), 7),
    ("Sync", ("changes", 0, "action"), "exploded"),
    ("Sync", ("result",), "Partly"),
    ("Sync", ("changes", 0, "fields", 0, "cause"), "someone"),
    ("Diff", ("changes", 0, "fields", 1), {"cause": "git"}),
    ("AppStatus", ("summary",), {"unchanged": -1}),
    ("Error", ("error", "exitCode"), "2"),
])
def test_types_and_closed_vocabularies_still_hold(kind: str, path: tuple[Any, ...], value: Any) -> None:
    doc = document(kind)
    node: Any = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    assert validation_errors(doc)


def test_a_new_kind_joins_v1_on_its_envelope() -> None:
    assert validation_errors({"schemaVersion": "v1", "kind": "AppHistory", "entries": []}) == []
    assert validation_errors({"schemaVersion": "v2", "kind": "AppHistory"})
    assert validation_errors({"schemaVersion": "v1"})
    assert validation_errors({"kind": "Diff"})


def test_syncer_itself_writes_only_documented_fields() -> None:
    """The schema is open to readers; syncer's tests are not: `assert_valid` reports a field
    that syncer writes and v1.json does not describe, at the top and inside an entry, but not
    inside objects that are open by design (the API server's version, a LogRecord)."""
    diff = document("Diff")
    diff["newField"] = 1
    diff["changes"][0]["typo"] = 2
    diff["changes"][0]["fields"][0]["why"] = 3
    assert undocumented_fields(diff) == ["/newField", "/changes/0/typo", "/changes/0/fields/0/why"]
    version = {"schemaVersion": "v1", "kind": "Version", "clientVersion": "1.0",
               "serverVersion": {"gitVersion": "v1.20.2", "major": "1"}}
    assert undocumented_fields(version) == []
    record = {"schemaVersion": "v1", "kind": "LogRecord", "time": "t", "level": "info", "logger": "syncer",
              "message": "m", "lease": "syncer-leader"}
    assert undocumented_fields(record) == []
    assert undocumented_fields({"schemaVersion": "v1", "kind": "AppHistory"}) == [
        "/kind: 'AppHistory' is not described in v1.json"]
