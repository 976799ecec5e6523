"""docs/schema/v1.json, the published contract of every JSON document syncer writes, as a
test helper: `assert_valid(document, kind="Diff")`.

The schema is open, as v1 promises readers (new optional fields may appear; no object forbids
unknown ones), so validating alone would let syncer write a field nobody documented. The
helper therefore also holds syncer's own documents to the fields the schema describes
(`undocumented_fields`): a new field is added to v1.json in the same change that writes it.
Objects the schema marks `additionalProperties: true` (or maps, whose `additionalProperties` is
a schema) are open by design and not checked."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "schema" / "v1.json"


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text())
    return loaded


@cache
def validator() -> Draft202012Validator:
    Draft202012Validator.check_schema(schema())
    return Draft202012Validator(schema())


def validation_errors(document: Any) -> list[str]:
    """What the published schema says is wrong with `document`, one line per error."""
    errors = sorted(validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/$defs/"), ref
        node = {**schema()["$defs"][ref.removeprefix("#/$defs/")],
                **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _object_parts(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The node and every part of it that describes the same object: its allOf, and the
    branches of its oneOf/anyOf that are objects."""
    node = _resolve(node)
    parts = [node]
    for part in node.get("allOf", []):
        parts += _object_parts(part)
    for branch in [*node.get("oneOf", []), *node.get("anyOf", [])]:
        resolved = _resolve(branch)
        if resolved.get("type") == "object" or "properties" in resolved or "allOf" in resolved:
            parts += _object_parts(resolved)
    return parts


def _undocumented(value: Any, node: dict[str, Any], where: str) -> list[str]:
    parts = _object_parts(node)
    if isinstance(value, dict):
        extra = [p["additionalProperties"] for p in parts if "additionalProperties" in p]
        if extra:  # open by design (true), or a map whose values all have one schema
            return [problem for item in value.values() if isinstance(extra[0], dict)
                    for problem in _undocumented(item, extra[0], where)]
        # the node's own description of a property refines what its allOf parts say
        properties = {name: sub for p in reversed(parts) for name, sub in p.get("properties", {}).items()}
        problems = [f"{where}/{key}" for key in value if key not in properties]
        for key, item in value.items():
            if key in properties:
                problems += _undocumented(item, properties[key], f"{where}/{key}")
        return problems
    if isinstance(value, list):
        items = next((p["items"] for p in parts if "items" in p), None)
        return [problem for index, item in enumerate(value) if items is not None
                for problem in _undocumented(item, items, f"{where}/{index}")]
    return []


def undocumented_fields(document: dict[str, Any]) -> list[str]:
    """The paths of fields in `document` that v1.json does not describe for its kind."""
    kind = document.get("kind")
    if kind not in schema()["$defs"]:
        return [f"/kind: {kind!r} is not described in {SCHEMA.name}"]
    return _undocumented(document, {"$ref": f"#/$defs/{kind}"}, "")


def assert_valid(document: Any, *, kind: str) -> None:
    """Valid against the whole schema, of the expected kind, and with no field the schema
    does not describe."""
    errors = validation_errors(document)
    assert not errors, "\n".join(errors) + f"\n{json.dumps(document)[:2000]}"
    assert document["kind"] == kind and document["schemaVersion"] == "v1"
    undocumented = undocumented_fields(document)
    assert not undocumented, (f"fields syncer writes that {SCHEMA.name} does not describe: {undocumented}\n"
                              f"{json.dumps(document)[:2000]}")
