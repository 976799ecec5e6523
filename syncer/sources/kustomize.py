"""Rendering a directory that holds a kustomization with the Kustomize binary.

`kustomize build` is preferred when on PATH, else `kubectl kustomize` (which embeds it).
Neither gets flags that widen what it may read or run (no `--load-restrictor
LoadRestrictionsNone`, no plugins, no exec functions, no Helm). Kustomize itself restricts
files (patches, generators) to the kustomization's directory, but follows `resources` into
any directory on the machine, so local references are checked here to stay inside the
repository before Kustomize runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from syncer.errors import Problem
from syncer.sources.yamlload import Budget, RenderLimits, load_yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_REFERENCE_FIELDS = ("resources", "bases", "components")
_KLOG_HEADER = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w.-]+:\d+\] ")
_COMMAND_FAILED = re.compile(r'"command failed" err="(.*)"')


class KustomizeError(Exception):
    """Kustomize is missing or failed; the message is for the user, paths repo-relative."""


def kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def kustomize_command(directory: Path) -> list[str]:
    kustomize = shutil.which("kustomize")
    if kustomize is not None:
        return [kustomize, "build", str(directory)]
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        return [kubectl, "kustomize", str(directory)]
    raise KustomizeError(
        "this directory holds a kustomization, which needs Kustomize: install `kustomize` "
        "or `kubectl` (which includes it) on PATH"
    )


def build(directory: Path, *, root: Path, limits: RenderLimits) -> bytes:
    """The multi-document YAML Kustomize produces for `directory`."""
    command = kustomize_command(directory)
    try:
        completed = subprocess.run(
            command,
            cwd=root,
            capture_output=True,
            timeout=limits.kustomize_timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise KustomizeError(f"{Path(command[0]).name} timed out after {limits.kustomize_timeout:.0f}s") from None
    except OSError as error:
        raise KustomizeError(f"cannot run {command[0]}: {error.strerror}") from None
    if completed.returncode != 0:
        stderr = _readable(completed.stderr.decode(errors="replace"), root=root)
        tool = " ".join(Path(part).name for part in command[:2])
        raise KustomizeError(f"{tool} failed: {stderr or f'exit status {completed.returncode}'}")
    return completed.stdout


def local_bases(directory: Path, *, root: Path, relative: str) -> tuple[list[Path], list[Problem]]:
    """The kustomization directories `directory` builds from (itself first), following local
    `resources`/`bases`/`components`, and a problem for each that leads out of `root`.

    References that do not exist locally are left to Kustomize (remote bases, or an error it
    reports well).
    """
    seen: list[Path] = []
    problems: list[Problem] = []
    pending = [directory]
    while pending:
        current = pending.pop(0)
        if current in seen:
            continue
        seen.append(current)
        kustomization = kustomization_file(current)
        if kustomization is None:
            continue
        where = _relative(kustomization, root, fallback=relative)
        if not kustomization.resolve().is_relative_to(root):
            problems.append(Problem(where, "symlink leads outside the repository"))
            continue
        for entry in _references(kustomization, where=where, problems=problems):
            candidate = current / entry
            if not os.path.lexists(candidate):
                continue
            resolved = candidate.resolve()
            if not resolved.is_relative_to(root):
                problems.append(
                    Problem(where, f"reference {entry!r} leads outside the repository; keep bases inside it")
                )
            elif resolved.is_dir():
                pending.append(resolved)
    return seen, problems


def _readable(stderr: str, *, root: Path) -> str:
    """Kustomize's message without kubectl's log header, with repository-relative paths."""
    lines = []
    for line in stderr.strip().splitlines():
        line = _KLOG_HEADER.sub("", line)
        wrapped = _COMMAND_FAILED.fullmatch(line)
        lines.append(wrapped.group(1) if wrapped else line)
    return "\n".join(lines).replace(f"{root}{os.sep}", "").replace(str(root), ".")


def _references(kustomization: Path, *, where: str, problems: list[Problem]) -> list[str]:
    limits = RenderLimits()
    data = kustomization.read_bytes()[: limits.max_file_bytes]
    documents, found = load_yaml(data, file=where, budget=Budget(limits))
    problems.extend(found)
    if not documents or not isinstance(documents[0].obj, dict):
        return []
    entries: list[str] = []
    for field in _REFERENCE_FIELDS:
        value = documents[0].obj.get(field)
        if isinstance(value, list):
            entries += [item for item in value if isinstance(item, str)]
    return entries


def _relative(path: Path, root: Path, *, fallback: str) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return fallback
