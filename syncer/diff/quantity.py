"""Kubernetes resource quantities (`cpu: 1000m`, `memory: 1Gi`) as exact numbers.

The API server stores a quantity in its canonical form, not as written: a manifest's
`cpu: 1000m` reads back as `"1"`, `0.5` as `"500m"`, `1024Mi` as `"1Gi"`. Compared as text the
live object then always differs from Git, and the local proof that an object is unchanged
fails on every resync (every Deployment of the App benchmark was dry-run twice per commit for
its `limits.cpu: 1000m`). Compared as numbers they are equal. Exact (`Fraction`), since the
proof must never call two different quantities equal.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

_QUANTITY = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d{1,3}|[numkMGTPE]?)")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def quantity_value(value: Any) -> Fraction | None:
    """The number a quantity stands for, or None when `value` is not one (an exponent of
    more than three digits is not taken either: no proof is worth a number that large)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    match = _QUANTITY.fullmatch(str(value))
    if match is None:
        return None
    sign, whole, fraction, suffix = match.groups()
    if not whole and not fraction:
        return None
    number = Fraction(int(whole or "0")) + (Fraction(int(fraction), 10 ** len(fraction)) if fraction else 0)
    if suffix in _BINARY:
        number *= 1024 ** _BINARY[suffix]
    elif suffix[:1] in ("e", "E") and len(suffix) > 1:
        number *= Fraction(10) ** int(suffix[1:])
    else:
        number *= Fraction(10) ** _DECIMAL[suffix]
    return -number if sign == "-" else number


def same_quantity(desired: Any, live: Any) -> bool:
    """Whether two quantities are the same number (False when either is not a quantity)."""
    wanted, found = quantity_value(desired), quantity_value(live)
    return wanted is not None and wanted == found
