"""Secret values never reach a message (issue 11, reports 2, 3 and 5).

The validator refuses Secret values the API server would receive changed or not at all,
naming file, line, object and key but never the value; the scrubber removes every form of
a Secret's values from a message about it.
"""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import pytest

from syncer.diff import scrub, secret_values
from syncer.errors import ClusterError, RenderError, ValidationFailed
from syncer.sources import Snapshot, render


def render_problems(root: Path, text: str) -> list[str]:
    (root / "secret.yaml").write_text(textwrap.dedent(text).lstrip("\n"))
    with pytest.raises(RenderError) as excinfo:
        render(Snapshot(revision="working-tree", root=root, repo=str(root)), namespace="shop")
    return [str(problem) for problem in excinfo.value.problems]


@pytest.mark.parametrize(("written", "problem"), [
    ("true", "must be a string, not a boolean"),
    ("1.50", "must be a string, not a number"),
    ("null", "must be a string, not null"),
    ("", "must be a string, not null"),
    ("{user: admin}", "must be a string, not a mapping"),
    ("[a, b]", "must be a string, not a list"),
    ("0755", "must be a string, not a number (YAML reads unquoted digits as a number, octal when"),
    ("0123", "must be a string, not a number (YAML reads unquoted digits as a number, octal when"),
])
def test_string_data_that_is_not_a_string_is_refused_naming_file_line_object_and_key(
    tmp_path: Path, written: str, problem: str
) -> None:
    problems = render_problems(tmp_path, f"""
        apiVersion: v1
        kind: Secret
        metadata: {{name: db}}
        stringData:
          user: "admin"
          pin: {written}
        """)

    assert len(problems) == 1
    assert problems[0].startswith(f"secret.yaml:6: Secret/shop/db: stringData.pin {problem}")
    if written not in ("", "null", "true"):
        assert written not in problems[0] and "admin" not in problems[0]


@pytest.mark.parametrize(("written", "problem"), [
    ("1234567890", "must be a base64 string, not a number"),
    ('"not base64!"', "is not valid base64"),
    ('"aGVsbG8"', "is not valid base64"),  # padding missing: the API server refuses it too
])
def test_data_that_is_not_base64_is_refused_naming_the_key(tmp_path: Path, written: str, problem: str) -> None:
    problems = render_problems(tmp_path, f"""
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: Secret
          metadata: {{name: db, namespace: vault}}
          data:
            good: aGVsbG8=
            folded: "aGVs\\nbG8="
            pin: {written}
        """)

    assert problems == [f"secret.yaml:10: Secret/vault/db: data.pin {problems[0].split('data.pin ', 1)[1]}"]
    assert problem in problems[0]
    assert written.strip('"') not in problems[0]


def test_valid_secrets_and_look_alike_kinds_pass(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Secret
        metadata: {name: db}
        data: {password: aHVudGVyMg==, empty: ""}
        stringData: {pin: "0123", flag: "true"}
        ---
        apiVersion: example.com/v1
        kind: Secret
        metadata: {name: custom}
        stringData: {anything: 5}
        """))

    manifests = render(Snapshot(revision="working-tree", root=tmp_path, repo=str(tmp_path)), namespace="shop")

    assert [m.obj["metadata"]["name"] for m in manifests] == ["db", "custom"]


SECRET = {
    "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
    "data": {"pin": 1234567890, "password": base64.b64encode(b"hunter2-horse").decode()},
    "stringData": {"token": "line one\nsecond-line-of-token", "nested": {"user": "admin-user"}},
}


@pytest.mark.parametrize("quoted", [
    "1234567890", "aHVudGVyMi1ob3JzZQ==", "hunter2-horse", "line one\\nsecond-line-of-token",
    "second-line-of-token", "{'user': 'admin-user'}", "admin-user",
])
def test_every_form_of_a_value_is_scrubbed_and_the_key_named(quoted: str) -> None:
    message = f'Secret "db" is invalid: .data.x: expected string, got &value.valueUnstructured{{Value:{quoted}}}'

    scrubbed = scrub(message, secret_values(SECRET))

    assert quoted not in scrubbed
    assert "<redacted " in scrubbed and scrubbed.startswith('Secret "db" is invalid: .data.x: expected string')


def test_short_values_are_scrubbed_only_where_they_stand_alone() -> None:
    forms = secret_values({"apiVersion": "v1", "kind": "Secret", "data": {"k": "ab"}})

    assert scrub("value ab rejected; a table", forms) == "value <redacted data.k> rejected; a table"


def test_messages_about_other_objects_are_left_alone() -> None:
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"pin": "1234567890"}}
    assert secret_values(configmap) == {}
    assert scrub("1234567890", secret_values(configmap)) == "1234567890"


def test_validation_failures_read_the_same_whatever_order_they_come_in() -> None:
    failures = [ClusterError("Secret/shop/b", "two"), ClusterError("Secret/shop/a", "one"),
                ClusterError("ConfigMap/shop/c", "three")]

    assert str(ValidationFailed(failures)) == str(ValidationFailed(list(reversed(failures))))
    assert [f.subject for f in ValidationFailed(failures).failures] == [
        "ConfigMap/shop/c", "Secret/shop/a", "Secret/shop/b"]


def test_a_value_that_does_not_fit_its_tag_is_not_quoted(tmp_path: Path) -> None:
    problems = render_problems(tmp_path, """
        apiVersion: v1
        kind: Secret
        metadata: {name: db}
        stringData: {pin: !!int hunter2-horse}
        """)

    assert problems == ["secret.yaml:1: cannot decode the document: a value does not fit its explicit tag "
                        "(!!int, !!float, ...)"]
