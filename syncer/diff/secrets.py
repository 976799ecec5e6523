"""Mask Secret values before anything is diffed, printed or logged.

A diff of a Secret must still say *whether* a value changed, so each value becomes a short
salted hash of its decoded bytes: equal values look equal within one run, changed values
look changed, and the salt (new per process) keeps the short hash from being looked up or
compared across runs. Neither the plain value nor its base64 form ever leaves this module.

Messages about a Secret (an API server's error quoting what it was sent) are scrubbed with
`scrub(message, secret_values(body))`: every form of every value is replaced by a fixed
`<redacted data.KEY>`, so the text names the key, never the value, and is the same on every
run (a repeated failure is recognised as the same failure).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import re
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


_SHORT = 4
"""Values shorter than this are scrubbed only where they stand alone, not inside words."""
_TOKEN = "A-Za-z0-9+/=_.-"


def secret_values(obj: Any) -> dict[str, str]:
    """Every text form a core Secret's values can take in a message, each mapped to what
    replaces it (`<redacted data.pin>`); empty for anything that is not a Secret.

    A server's error may quote a value as it was sent (base64 in `data`, plain in
    `stringData`), decoded, escaped as JSON or Go do, or as the number or mapping it was
    when the manifest was not valid. Keys are visited in sorted order, so the same Secret
    always gives the same replacements (a repeated failure reads the same).
    """
    if not isinstance(obj, dict) or not is_secret(obj):
        return {}
    forms: dict[str, str] = {}
    for field, decode in (("data", True), ("stringData", False)):
        values = obj.get(field)
        if not isinstance(values, dict):
            if values is not None:
                _add_forms(forms, values, label=f"<redacted {field}>", decode=False)
            continue
        for key in sorted(values, key=str):
            _add_forms(forms, values[key], label=f"<redacted {field}.{key}>", decode=decode)
    return forms


def _add_forms(forms: dict[str, str], value: Any, *, label: str, decode: bool) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        for item in value.values():
            _add_forms(forms, item, label=label, decode=False)
    elif isinstance(value, list):
        for item in value:
            _add_forms(forms, item, label=label, decode=False)
    texts = [value] if isinstance(value, str) else [str(value), json.dumps(value, default=str)]
    if decode and isinstance(value, str):
        decoded = _decoded(value)
        if decoded != value.encode():
            texts.append(decoded.decode("utf-8", "replace"))
    elif isinstance(value, str):  # stringData is sent folded into data, base64-encoded
        texts.append(base64.b64encode(value.encode()).decode())
    for text in list(texts):
        texts += [json.dumps(text)[1:-1], repr(text)[1:-1]]
        texts += [line.strip() for line in text.splitlines() if len(line.strip()) >= 8]
    for text in texts:
        if text:
            forms.setdefault(text, label)


def scrub(message: str, forms: dict[str, str]) -> str:
    """`message` with every form of a Secret value (see `secret_values`) replaced."""
    if not forms or not message:
        return message
    for text in sorted(forms, key=lambda form: (-len(form), form)):
        if text not in message:
            continue
        if len(text) >= _SHORT:
            message = message.replace(text, forms[text])
        else:
            pattern = rf"(?<![{_TOKEN}]){re.escape(text)}(?![{_TOKEN}])"
            message = re.sub(pattern, lambda _: forms[text], message)
    return message
