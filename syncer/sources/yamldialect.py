"""How Kubernetes reads a plain YAML scalar, so that syncer reads a manifest as kubectl does.

kubectl and the API server decode YAML with sigs.k8s.io/yaml, which is go-yaml v2 (YAML 1.1
rules, Go's number parsing) followed by a conversion to JSON. PyYAML also implements YAML 1.1,
but not the same way, and a manifest read differently from how Kubernetes reads it is a
manifest applied differently from how its authors tested it:

| plain scalar        | PyYAML                    | go-yaml v2 / Kubernetes  |
| ------------------- | ------------------------- | ------------------------ |
| `=`                 | tag `value`, cannot load  | the string "="           |
| `y`, `n`, `Y`, `N`  | strings                   | booleans                 |
| `1:30` (base 60)    | the integer 90            | the string "1:30"        |
| `1e3`, `1.5e3`      | strings (needs `.`, sign) | floats                   |
| `0o17`              | the string "0o17"         | the integer 15           |
| `08`, `09`          | strings                   | floats 8.0 and 9.0       |
| `2024-05-01`        | a date                    | the string "2024-05-01"  |
| map key `8443:`     | the integer 8443          | the string "8443"        |

JSON has no integral floats as Go writes them (`replicas: 3.0` reaches the API server as 3),
no NaN or infinity (kubectl refuses them), and only string keys (ints, floats and booleans are
formatted as strings, a null key is refused).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

READER_VERSION = 2
"""Part of the render cache's key: a manifest cached by a reader with other rules is stale."""

BOOL_TAG = "tag:yaml.org,2002:bool"
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
NULL_TAG = "tag:yaml.org,2002:null"
STR_TAG = "tag:yaml.org,2002:str"
MERGE_TAG = "tag:yaml.org,2002:merge"

_WORDS: dict[str, tuple[str, Any]] = {
    **{word: (BOOL_TAG, True) for word in ("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON")},
    **{word: (BOOL_TAG, False) for word in ("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF")},
    **{word: (NULL_TAG, None) for word in ("", "~", "null", "Null", "NULL")},
    **{word: (FLOAT_TAG, math.nan) for word in (".nan", ".NaN", ".NAN")},
    **{word: (FLOAT_TAG, math.inf) for word in (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF")},
    **{word: (FLOAT_TAG, -math.inf) for word in ("-.inf", "-.Inf", "-.INF")},
    "<<": (MERGE_TAG, "<<"),
}
"""go-yaml v2's `resolve_map`: looked up only for scalars whose first character hints at one."""

_HINTED = set("yYnNtTfFoO~<.+-0123456789")
_NUMERIC_START = set("+-0123456789")

# Go's strconv.ParseInt(s, 0, 64) syntax, after go-yaml removed every underscore.
_GO_INT = re.compile(
    r"(?P<sign>[-+]?)(?:0[xX](?P<hex>[0-9a-fA-F]+)|0[oO]?(?P<oct>[0-7]+)|0[bB](?P<bin>[01]+)|(?P<dec>0|[1-9][0-9]*))"
)
_GO_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
"""go-yaml v2's `yamlStyleFloat`, which guards strconv.ParseFloat for scalars starting with a
digit or a sign."""
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
"""What strconv.ParseFloat accepts of a scalar starting with `.` (go-yaml's `.` hint)."""

_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1


def resolve_plain(text: str) -> tuple[str, Any]:
    """The tag and value go-yaml v2 gives a plain (unquoted, untagged) scalar."""
    if text[:1] not in _HINTED and text != "":
        return STR_TAG, text
    word = _WORDS.get(text)
    if word is not None:
        return word
    if text[0] == ".":
        return (FLOAT_TAG, float(text)) if _DOT_FLOAT.fullmatch(text) else (STR_TAG, text)
    if text[0] not in _NUMERIC_START:
        return STR_TAG, text
    plain = text.replace("_", "")
    number = _go_int(plain)
    if number is not None:
        return INT_TAG, number
    if _GO_YAML_FLOAT.fullmatch(plain):
        return FLOAT_TAG, float(plain)
    return STR_TAG, text


def _go_int(plain: str) -> int | None:
    match = _GO_INT.fullmatch(plain)
    if match is None:
        return None
    digits, base = next(
        (match[name], base) for name, base in (("hex", 16), ("oct", 8), ("bin", 2), ("dec", 10)) if match[name]
    )
    number = int(digits, base) * (-1 if match["sign"] == "-" else 1)
    in_range = _INT64[0] <= number <= _INT64[1] or 0 <= number <= _UINT64_MAX and match["sign"] != "+"
    return number if in_range else None


def json_number(value: float) -> int | float:
    """What a YAML float becomes once Go has written it as JSON and the API server read it back:
    an integral value is an integer there. NaN and infinity cannot be written at all."""
    if not math.isfinite(value):
        raise ValueError(f"{value} cannot be sent to Kubernetes: JSON has no NaN or infinity (quote it)")
    if value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


def json_key(key: Any) -> str:
    """A map key as sigs.k8s.io/yaml writes it into JSON (keys there are strings)."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return _go_format_g(key)
    what = "null" if key is None else type(key).__name__
    raise ValueError(f"a {what} map key cannot be sent to Kubernetes (JSON keys are strings; quote it)")


def _go_format_g(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 64): the shortest digits, in exponent form below
    1e-4 and from 1e6 up (Go's rule for the shortest precision)."""
    if not math.isfinite(value):
        return {math.inf: ".inf", -math.inf: "-.inf"}.get(value, ".nan")
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    point = len(text) + exponent  # position of the decimal point in `text`
    prefix = "-" if sign else ""
    if not -4 <= point - 1 < 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if point - 1 < 0 else '+'}{abs(point - 1):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{prefix}{text}{'0' * (point - len(text))}"
    return f"{prefix}{text[:point]}.{text[point:]}"
