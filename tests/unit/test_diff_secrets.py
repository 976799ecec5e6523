"""Secret values are masked: changes stay visible, values never do."""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any

import pytest

from syncer.diff import PROCESS_SALT, mask_secret, to_yaml

SALT = b"0123456789abcdef"
PASSWORD = "hunter2-correct-horse"
B64 = base64.b64encode(PASSWORD.encode()).decode()
MARKER = re.compile(r"<secret sha256:[0-9a-f]{12}, \d+ bytes?>")


def secret(*, data: dict[str, str] | None = None, string_data: dict[str, str] | None = None,
           api_version: str = "v1", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop"},
        "type": "Opaque",
    }
    if annotations:
        obj["metadata"]["annotations"] = annotations
    if data is not None:
        obj["data"] = data
    if string_data is not None:
        obj["stringData"] = string_data
    return obj


def test_values_become_short_salted_hashes_with_the_decoded_length() -> None:
    masked = mask_secret(secret(data={"password": B64}), salt=SALT)
    assert MARKER.fullmatch(masked["data"]["password"])
    assert masked["data"]["password"].endswith(f", {len(PASSWORD)} bytes>")
    assert masked["type"] == "Opaque"


@pytest.mark.parametrize(
    "obj",
    [
        secret(data={"password": B64}),
        secret(string_data={"password": PASSWORD}),
        secret(data={"password": base64.b64encode(b"old").decode()}, string_data={"password": PASSWORD}),
    ],
    ids=["data", "stringData", "stringData-wins-over-data"],
)
def test_string_data_and_data_holding_the_same_bytes_mask_equal(obj: dict[str, Any]) -> None:
    want = mask_secret(secret(data={"password": B64}), salt=SALT)
    assert mask_secret(obj, salt=SALT) == want
    assert "stringData" not in mask_secret(obj, salt=SALT)


def test_a_changed_value_masks_differently_and_the_salt_matters() -> None:
    one = mask_secret(secret(data={"password": B64}), salt=SALT)["data"]["password"]
    other = mask_secret(secret(string_data={"password": PASSWORD + "!"}), salt=SALT)["data"]["password"]
    resalted = mask_secret(secret(data={"password": B64}), salt=b"another-salt")["data"]["password"]
    assert len({one, other, resalted}) == 3


@pytest.mark.parametrize(
    "obj",
    [
        secret(data={"password": B64, "user": base64.b64encode(b"admin").decode()}),
        secret(string_data={"password": PASSWORD}),
        secret(data={"password": B64}, annotations={
            "kubectl.kubernetes.io/last-applied-configuration": json.dumps(
                {"stringData": {"password": PASSWORD}, "data": {"password": B64}})
        }),
        secret(data={"password": PASSWORD + "%not-base64"}),
        {**secret(), "data": f"{PASSWORD} {B64}"},
    ],
    ids=["data", "stringData", "last-applied-annotation", "invalid-base64", "malformed-data"],
)
def test_neither_plain_nor_base64_value_survives(obj: dict[str, Any]) -> None:
    text = to_yaml(mask_secret(obj, salt=PROCESS_SALT)) + repr(mask_secret(obj, salt=PROCESS_SALT))
    assert PASSWORD not in text
    assert B64 not in text
    assert "<secret sha256:" in text


def test_last_applied_annotation_is_scrubbed_but_others_stay() -> None:
    obj = secret(data={"password": B64}, annotations={
        "kubectl.kubernetes.io/last-applied-configuration": "{}", "owner": "team-a"})
    assert mask_secret(obj, salt=SALT)["metadata"]["annotations"] == {"owner": "team-a"}


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"password": PASSWORD}},
        # A custom resource that happens to be called Secret is not a core Secret.
        {"apiVersion": "vault.example.com/v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "v"}},
    ],
    ids=["configmap", "crd-named-secret"],
)
def test_other_objects_pass_through_as_copies(obj: dict[str, Any]) -> None:
    before = copy.deepcopy(obj)
    masked = mask_secret(obj, salt=SALT)
    assert masked == before
    masked["data"]["extra"] = "x"
    assert obj == before


def test_empty_secret_gets_no_data() -> None:
    assert "data" not in mask_secret(secret(string_data={}), salt=SALT)


def test_input_is_not_modified() -> None:
    obj = secret(string_data={"password": PASSWORD})
    before = copy.deepcopy(obj)
    mask_secret(obj, salt=SALT)
    assert obj == before
