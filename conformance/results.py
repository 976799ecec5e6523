"""What a conformance run found, as plain data kept in a JSON file per Kubernetes version
beside the report (docs/conformance-1.37.json, ...), so that one version, or one group of
sets, can be run again alone and the report rendered from every version's latest results.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TOOLS = ("syncer", "kubectl", "kpt")


def abbreviated(line: str, *, width: int = 260) -> str:
    """A long line's start and end: kpt quotes a whole object before saying what is wrong."""
    return line if len(line) <= width else f"{line[:100]} … {line[-(width - 100):]}"


@dataclass
class Run:
    """One command of one tool (a sync or an apply) and what it did to the cluster."""

    what: str
    """`fresh`, `resync`, `upgrade`, `switch`, or `upgrade, recreate` (syncer's opt-in)."""
    exit_code: int
    seconds: float
    written: int = 0
    """Objects of the set (and the tool's inventory object) created, changed or deleted, read
    from the cluster: uid, generation, data, and the tool's managed fields."""
    written_objects: list[str] = field(default_factory=list)
    """The first few of them, by `Kind/namespace/name`."""
    created: int = 0
    """Objects of the set that did not exist before and do after."""
    pruned: dict[str, bool] = field(default_factory=dict)
    """`Kind/namespace/name` of each object the previous input had and this one has not ->
    gone from the cluster afterwards."""
    error: str = ""
    """The tool's error output (syncer: its error and each failed change), trimmed."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class ToolResult:
    tool: str
    runs: list[Run] = field(default_factory=list)
    diff_exit: int | None = None
    """syncer only: `syncer diff` right after the resync."""

    def run(self, what: str) -> Run | None:
        return next((r for r in self.runs if r.what == what), None)


@dataclass
class SetResult:
    name: str
    group: int
    objects: int = 0
    expected: str = ""
    """Why syncer must fail on this version, else empty (it must sync)."""
    tools: dict[str, ToolResult] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Where syncer did not do what the set expects; empty when it conforms."""
    engine_issue: str = ""

    @property
    def syncer(self) -> ToolResult:
        return self.tools.setdefault("syncer", ToolResult("syncer"))


@dataclass
class VersionResults:
    """Every set's result on one Kubernetes version, and how long each group took."""

    kubernetes: str
    """The API server's own version (`/version`), e.g. `1.37.2`."""
    tools: dict[str, str] = field(default_factory=dict)
    """Tool -> its version, e.g. kubectl -> v1.32.4."""
    machine: str = ""
    sets: dict[str, SetResult] = field(default_factory=dict)
    group_seconds: dict[str, float] = field(default_factory=dict)
    """`<group>` -> wall seconds of the group's run: control planes started and stopped, and
    every tool's commands (the total is what a whole run of this version takes)."""
    updated: str = ""

    def merge(self, other: VersionResults) -> VersionResults:
        """These results with `other`'s sets and groups replacing the same ones here."""
        return VersionResults(kubernetes=other.kubernetes, tools={**self.tools, **other.tools},
                              machine=other.machine or self.machine, sets={**self.sets, **other.sets},
                              group_seconds={**self.group_seconds, **other.group_seconds},
                              updated=other.updated or self.updated)


def results_path(report: Path, minor: str) -> Path:
    """Where a version's results sit beside the report: `conformance-1.37.json`."""
    return report.with_name(f"{report.stem}-{minor}.json")


def save(results: VersionResults, path: Path) -> None:
    path.write_text(json.dumps(asdict(results), indent=1, sort_keys=True) + "\n")


def load(path: Path) -> VersionResults:
    data = json.loads(path.read_text())
    sets = {name: _set(raw) for name, raw in data.pop("sets").items()}
    return VersionResults(sets=sets, **data)


def _set(raw: dict[str, Any]) -> SetResult:
    tools = {name: ToolResult(tool=tool["tool"], runs=[Run(**run) for run in tool["runs"]],
                              diff_exit=tool.get("diff_exit"))
             for name, tool in raw.pop("tools").items()}
    return SetResult(tools=tools, **raw)
