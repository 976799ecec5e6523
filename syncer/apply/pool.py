"""A bounded pool for the requests of one stage, whose workers return results and share no state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_concurrently(fn: Callable[[T], R], items: Sequence[T], *, workers: int) -> list[R]:
    """fn over items, `workers` at a time, results in input order. Each call returns its
    result instead of writing it somewhere shared (Flux's ApplyAll writes only changes[i]):
    the caller assembles them, in one thread."""
    if len(items) <= 1 or workers <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))
