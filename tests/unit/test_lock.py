"""Installs are reproducible: every dependency is pinned with its hashes (scripts/lock), the
pins cover what pyproject.toml asks for, and the suite runs on exactly those versions (unless
SYNCER_DEPS=latest asked for the newest releases)."""

from __future__ import annotations

import os
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)(?: ;[^\\]*)? \\$")


def pins(name: str) -> dict[str, tuple[str, list[str]]]:
    """{package: (version, hashes)} of requirements/<name>.txt."""
    result: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match["name"])
            result[current] = (match["version"], [])
        elif line.strip().startswith("--hash=sha256:"):
            result[current][1].append(line.strip().removeprefix("--hash=sha256:").rstrip(" \\"))
    return result


def wanted(*, extras: tuple[str, ...]) -> set[str]:
    requirements = list(PYPROJECT["project"]["dependencies"]) + list(PYPROJECT["build-system"]["requires"])
    for extra in extras:
        requirements += PYPROJECT["project"]["optional-dependencies"][extra]
    return {canonicalize_name(Requirement(r).name) for r in requirements}


@pytest.mark.parametrize(("lock", "extras"), [("test.txt", ("test",)), ("runtime.txt", ())])
def test_every_dependency_is_pinned_with_hashes(lock: str, extras: tuple[str, ...]) -> None:
    pinned = pins(lock)
    assert wanted(extras=extras) - set(pinned) == set(), f"run ./scripts/lock: {lock} lacks these"
    assert [name for name, (_, hashes) in pinned.items() if not hashes] == []


def test_runtime_pins_are_the_tested_pins() -> None:
    tested = pins("test.txt")
    assert {name: pin for name, pin in pins("runtime.txt").items()} == {
        name: tested[name] for name in pins("runtime.txt")}


@pytest.mark.skipif(os.environ.get("SYNCER_DEPS") == "latest", reason="SYNCER_DEPS=latest tests the newest releases")
def test_the_suite_runs_on_the_pinned_versions() -> None:
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    differ = {name: (version, installed.get(name)) for name, (version, _) in pins("test.txt").items()
              if name in installed and installed[name] != version}
    missing = wanted(extras=("test",)) - set(installed)
    assert (differ, missing) == ({}, set()), "run ./scripts/bootstrap (it installs requirements/test.txt)"
