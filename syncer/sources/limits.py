"""The bounds of one render, and the budget that counts them while the files are read.

The daemon renders many tenants' apps in one process tree: a render must stop reading as soon
as it passes a bound, not load everything and count afterwards (YAML takes several times its
size in memory once parsed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from syncer.errors import Problem

MiB = 1024 * 1024


@dataclass(frozen=True)
class RenderLimits:
    """Bounds for one render. The two per-app bounds (bytes, objects) are the operator's
    (`--max-render-bytes`, `--max-objects`): they keep one app from taking the memory every
    other app of the daemon needs. The rest are far above any real set of manifests."""

    max_file_bytes: int = 10 * MiB
    max_total_bytes: int = 64 * MiB
    """All files read plus Kustomize's and Helm's output: checked against the files' sizes before any is
    read, and against Kustomize's output while it arrives."""
    max_objects: int = 10_000
    """Objects in the render, the items of a `kind: List` each counting: counted while the
    YAML is read, each List item as soon as it is complete."""
    max_nodes: int = 5_000_000
    """YAML nodes in the whole render, each alias counting as the size of what it refers to."""
    max_depth: int = 256
    kustomize_timeout: float = 120.0
    """Seconds one `kustomize build` may take."""
    helm_timeout: float = 120.0
    """Seconds one `helm template` may take (and, apart, each chart dependency's download)."""
    helm_hosts: tuple[str, ...] = ()
    """The hosts (chart repositories, OCI registries) from which a chart's dependencies that
    are not vendored may be downloaded (`--helm-allow-host`); none by default."""


BYTES_FLAG, OBJECTS_FLAG = "--max-render-bytes", "--max-objects"
"""The options that set the per-app bounds, on `syncer run` and on every command that renders."""


class LimitExceeded(Exception):
    """A render limit was hit; rendering stops at once rather than reading further.

    `bound` names the per-app bound that was passed ("bytes" or "objects"); None for the
    limits on hostile input (alias bombs, nesting), which are problems of the files."""

    def __init__(self, problem: Problem, *, bound: str | None = None, limit: int = 0) -> None:
        self.problem = problem
        self.bound = bound
        self.limit = limit
        super().__init__(str(problem))


def show_bytes(count: int) -> str:
    """`67108864 bytes (64 MiB)`: exact, and readable."""
    for unit, size in (("GiB", 1024 * MiB), ("MiB", MiB), ("KiB", 1024)):
        if count >= size:
            return f"{count} bytes ({count / size:.4g} {unit})"
    return f"{count} bytes"


@dataclass
class Budget:
    """What is left of the limits while one render reads its inputs."""

    limits: RenderLimits
    bytes: int = 0
    objects: int = 0
    nodes: int = 0

    def check_bytes(self, planned: int, *, where: str) -> None:
        """Refuse before reading anything when the files to read add up to more than the limit."""
        if self.bytes + planned > self.limits.max_total_bytes:
            raise self._too_many_bytes(where, f"the files to render add up to {show_bytes(self.bytes + planned)}")

    def add_bytes(self, count: int, *, where: str) -> None:
        self.bytes += count
        if self.bytes > self.limits.max_total_bytes:
            raise self._too_many_bytes(where, "the render reads more than that")

    def _too_many_bytes(self, where: str, found: str) -> LimitExceeded:
        limit = self.limits.max_total_bytes
        return LimitExceeded(
            Problem(where, f"{found}; the limit per app is {show_bytes(limit)} of manifests (raise it with "
                           f"{BYTES_FLAG}, or render a narrower path)"),
            bound="bytes", limit=limit)

    def add_objects(self, count: int, *, where: str) -> None:
        self.objects += count
        limit = self.limits.max_objects
        if self.objects > limit:
            raise LimitExceeded(
                Problem(where, f"more than {limit} objects; the limit per app is {limit} objects (raise it with "
                               f"{OBJECTS_FLAG}, or render a narrower path)"),
                bound="objects", limit=limit)

    def add_nodes(self, count: int, *, file: str, line: int) -> None:
        self.nodes += count
        if self.nodes > self.limits.max_nodes:
            raise LimitExceeded(
                Problem(
                    f"{file}:{line}",
                    f"more than {self.limits.max_nodes} YAML nodes with aliases expanded "
                    "(an alias bomb?); rejected without expanding it",
                )
            )


def is_list(obj: Any) -> bool:
    """A `kind: List` (and other `*List` kinds with `items`): its items are the objects."""
    if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
        return False
    items = obj.get("items")
    if obj["kind"] == "List":
        return items is None or isinstance(items, list)
    return bool(obj["kind"].endswith("List")) and isinstance(items, list)


def object_count(obj: Any) -> int:
    """The objects a decoded document stands for, as `syncer.sources.validate.flatten_lists`
    yields them: a List's items, recursively, else the document itself."""
    if not is_list(obj):
        return 1
    return sum(object_count(item) for item in obj.get("items") or [])
