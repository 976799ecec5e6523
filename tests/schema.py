"""docs/schema/v1.json, the published contract of every JSON document syncer writes, as a
test helper: `assert_valid(document, kind="Diff")`."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "schema" / "v1.json"


@cache
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def assert_valid(document: Any, *, kind: str) -> None:
    """Valid against the whole schema, and of the expected kind."""
    errors = sorted(validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors) + f"\n{json.dumps(document)[:2000]}"
    assert document["kind"] == kind and document["schemaVersion"] == "v1"
