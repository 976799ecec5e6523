"""Properties of the two functions between untrusted bytes and the cluster (issue 11):
the manifest loader/validator and the Secret scrubber.

Runs 200 examples with a fixed seed (derandomized) in the default suite; set
SYNCER_FUZZ_EXAMPLES=100000 for a long run with fresh random examples.
"""

from __future__ import annotations

import base64
import json
import string
from typing import Any

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from syncer.diff import scrub, secret_values
from syncer.model import Origin
from syncer.sources.validate import RenderedDocument, validate
from syncer.sources.yamlload import Budget, LimitExceeded, RenderLimits, load_json, load_yaml
from tests.unit.properties import property_settings

FUZZ = property_settings(examples=200)
LIMITS = RenderLimits(max_nodes=20_000, max_depth=64, max_objects=200)

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=20))
YAML_11_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
keys = st.text(string.ascii_letters, min_size=1, max_size=6).filter(lambda key: key.lower() not in YAML_11_WORDS)
"""Keys PyYAML's dumper leaves unquoted and Kubernetes' YAML 1.1 reader takes as text
(`Y:` is the boolean true to it; infinity is refused before validation)."""
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
yaml_fragments = st.lists(st.sampled_from([
    "apiVersion: v1\n", "kind: Secret\n", "kind: List\n", "items:\n", "- ", "  ", "metadata: {name: x}\n",
    "stringData:\n", "data:\n", "  k: ", "0755", "0123", "true", "null", "~", "1.50", "&a [1, 2]", "*a", "<<: *a\n",
    "!!binary ", "!!int ", "'", '"', "{", "}", "[", "]", ":", "\n", "---\n", "\t", "#", "%YAML 1.1\n", "\x00", "é",
]), max_size=40).map("".join)


def documents_of(data: bytes, *, json_file: bool = False) -> list[RenderedDocument]:
    load = load_json if json_file else load_yaml
    loaded, _ = load(data, file="f.yaml", budget=Budget(LIMITS))
    return [RenderedDocument(obj=d.obj, origin=Origin(file="f.yaml", document=d.index, line=d.line),
                             where=f"f.yaml:{d.line}", item_lines=d.item_lines, value_lines=d.value_lines)
            for d in loaded]


def check_loader_and_validator(data: bytes, *, json_file: bool = False) -> None:
    """Untrusted bytes give documents and problems, or a limit; nothing else escapes."""
    try:
        documents = documents_of(data, json_file=json_file)
    except LimitExceeded:
        return
    manifests, problems = validate(documents, namespace="fuzz")
    for problem in problems:
        assert isinstance(problem.where, str) and problem.message
    for manifest in manifests:
        assert manifest.obj["metadata"]["name"]


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash_the_loader_or_validator(data: bytes) -> None:
    check_loader_and_validator(data)
    check_loader_and_validator(data, json_file=True)


@FUZZ
@given(yaml_fragments)
@example("!!int ")  # found by this test: PyYAML raised IndexError, a traceback instead of a problem
def test_yaml_shaped_text_never_crashes_the_loader_or_validator(text: str) -> None:
    check_loader_and_validator(text.encode())


@FUZZ
@given(st.dictionaries(keys, values, min_size=1, max_size=4))
def test_every_string_data_value_that_is_not_text_is_refused(string_data: dict[str, Any]) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": string_data}
    documents = documents_of(yaml.safe_dump(secret).encode())

    _, problems = validate(documents, namespace="fuzz")

    refused = {p.message.split("stringData.", 1)[1].split(" ", 1)[0] for p in problems}
    assert refused == {key for key, value in string_data.items() if not isinstance(value, str)}


NOT_BASE64 = "is not valid base64 (data holds base64-encoded values; put plain text under stringData)"


@FUZZ
@given(st.dictionaries(keys,
                       st.one_of(st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
                                 st.text(max_size=20)), min_size=1, max_size=4))
def test_data_is_accepted_exactly_when_it_is_base64(data: dict[str, str]) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": data}
    documents = documents_of(yaml.safe_dump(secret).encode())

    _, problems = validate(documents, namespace="fuzz")

    def is_base64(value: str) -> bool:
        try:
            base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)
            return True
        except ValueError:
            return False

    refused = {p.message.split("data.", 1)[1].split(" ", 1)[0] for p in problems}
    assert refused == {key for key, value in data.items() if not is_base64(value)}
    for problem in problems:
        explanation = problem.message.split(": data.", 1)[1].split(" ", 1)[1]
        for value in data.values():
            # A value that is a piece of the explanation itself ("stringDat") proves nothing.
            if len(value) >= 4 and not is_base64(value) and value not in NOT_BASE64:
                assert value not in explanation


# -- the scrubber -------------------------------------------------------------------------------

SAFE_TEXT = "".join(c for c in string.printable if c not in "<>") + "äé€"
KEYS = ("k0", "k1", "k2")
LABELS = [f"<redacted {field}.{key}>" for field in ("data", "stringData") for key in KEYS]
secret_texts = st.text(SAFE_TEXT, min_size=4, max_size=24).filter(
    lambda value: not any(value in label for label in LABELS))


def forms(value: str) -> list[str]:
    return [value, base64.b64encode(value.encode()).decode(), json.dumps(value)[1:-1]]


@FUZZ
@given(
    data=st.lists(secret_texts, min_size=0, max_size=3),
    string_data=st.lists(secret_texts, min_size=0, max_size=3),
    around=st.lists(st.text(SAFE_TEXT, max_size=12), min_size=4, max_size=12),
    picks=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2)), min_size=1, max_size=6),
)
@example(data=[], string_data=["0000"], around=[""] * 4, picks=[(0, 1)])  # found: stringData's base64 form
def test_no_form_of_any_value_survives_scrubbing(
    data: list[str], string_data: list[str], around: list[str], picks: list[tuple[int, int]]
) -> None:
    secret = {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in zip(KEYS, data)},
        "stringData": dict(zip(KEYS, string_data)),
    }
    plain = [*data, *string_data]
    if not plain:
        return
    parts = [around[0]]
    for number, (which, form) in enumerate(picks):
        parts += [forms(plain[which % len(plain)])[form], around[(number + 1) % len(around)]]
    message = "".join(parts)

    scrubbed = scrub(message, secret_values(secret))

    for value in plain:
        for form in forms(value):
            assert form not in scrubbed, (form, scrubbed)
    assert scrub(scrubbed, secret_values(secret)) == scrubbed, "scrubbing is idempotent"
