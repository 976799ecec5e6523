"""Mask Secret values before anything is diffed, printed or logged.

A diff of a Secret must still say *whether* a value changed, so each value becomes a short
salted hash of its decoded bytes: equal values look equal within one run, changed values
look changed, and the salt (new per process) keeps the short hash from being looked up or
compared across runs. Neither the plain value nor its base64 form ever leaves this module.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
from secrets import token_bytes
from typing import Any

from syncer.diff.normalize import LAST_APPLIED_ANNOTATION
from syncer.model import Object, split_api_version

PROCESS_SALT: bytes = token_bytes(16)
"""Salt for `mask_secret`, made once per process."""

_HASH_CHARS = 12


def is_secret(obj: Object) -> bool:
    """A core-group Secret (a CRD that happens to call its kind Secret is not one)."""
    group, _ = split_api_version(str(obj.get("apiVersion", "")))
    return obj.get("kind") == "Secret" and group == ""


def secret_marker(value: bytes, *, salt: bytes) -> str:
    """`<secret sha256:1a2b3c4d5e6f, 12 bytes>` for one decoded value."""
    digest = hashlib.sha256(salt + value).hexdigest()[:_HASH_CHARS]
    unit = "byte" if len(value) == 1 else "bytes"
    return f"<secret sha256:{digest}, {len(value)} {unit}>"


def _decoded(value: Any) -> bytes:
    """`data` holds base64; a value that is not valid base64 is hashed as it is, so a broken
    manifest still shows up as a difference without its content being printed."""
    if isinstance(value, bytes):
        return value
    text = value if isinstance(value, str) else str(value)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text.encode()


def _plain(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return (value if isinstance(value, str) else str(value)).encode()


def mask_secret(obj: Object, *, salt: bytes) -> Object:
    """A deep copy of `obj` whose Secret values are replaced by `secret_marker`s.

    `stringData` is folded into `data` first, as the server does (stringData wins on a shared
    key), so a manifest with stringData compares equal to the live Secret holding the same
    bytes in data. The `kubectl.kubernetes.io/last-applied-configuration` annotation holds
    the values too and is dropped. Objects other than Secrets are returned as copies.
    """
    result = copy.deepcopy(obj)
    if not is_secret(result):
        return result
    data = result.pop("data", None)
    string_data = result.pop("stringData", None)
    values: dict[str, bytes] = {}
    malformed: list[bytes] = []
    for source, decode in ((data, _decoded), (string_data, _plain)):
        if isinstance(source, dict):
            for key, value in source.items():
                if value is not None:
                    values[str(key)] = decode(value)
        elif source is not None:
            malformed.append(_plain(source))
    if malformed:
        result["data"] = secret_marker(b"".join(malformed), salt=salt)
    elif values:
        result["data"] = {key: secret_marker(value, salt=salt) for key, value in values.items()}
    metadata = result.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if isinstance(metadata, dict) and isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED_ANNOTATION, None)
        if not annotations:
            del metadata["annotations"]
    return result
