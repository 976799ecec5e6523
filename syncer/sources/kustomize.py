"""Rendering a directory that holds a kustomization with the Kustomize binary.

`kustomize build` is preferred when on PATH, else `kubectl kustomize` (which embeds it).
Neither gets flags that widen what it may read or run (no `--load-restrictor
LoadRestrictionsNone`, no plugins, no exec functions; `helmCharts` is inflated through
syncer's own chart rendering, see syncer.sources.kustomizehelm). Kustomize itself restricts
files (patches, generators) to the kustomization's directory, but follows `resources` into
any directory on the machine and fetches URLs (`https://`, `file://`, Git repositories,
`github.com/org/repo`): a repository could make it read the machine's files, another app's
cached clone, or reach internal addresses. So every file reference of every kustomization
reached is checked here before Kustomize runs: it must name an existing path inside the
repository. Anything else (a URL, an absolute path, a path that leads out, a name that does
not exist and Kustomize would try as a remote base) is refused, naming the kustomization
file, the field and the entry.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from syncer.errors import Problem
from syncer.sources import kustomizehelm
from syncer.sources.limits import Budget, RenderLimits
from syncer.sources.tool import ToolFailed, run_bounded
from syncer.sources.yamlload import load_yaml, read_mapping

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_BASE_FIELDS = ("resources", "bases", "components")
"""Lists of files or directories; a directory is a kustomization, checked in turn."""
_FILE_LIST_FIELDS = ("crds", "configurations", "transformers", "generators", "validators", "patchesStrategicMerge")
"""Lists of files; an entry that spans lines is an inline document, not a reference."""
_PATH_ITEM_FIELDS = ("patches", "patchesJson6902", "replacements")
"""Lists of mappings whose `path` names a file."""
_GENERATOR_FIELDS = ("configMapGenerator", "secretGenerator")
"""Lists of generators whose `files` (`[key=]path`), `envs` and `env` name files."""
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^git@|^git::|^gh:|[?&](ref|version|submodules|timeout)=")
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


def kustomize_command(directory: Path, *, helm_command: Path | None = None) -> list[str]:
    """The build command; with `helm_command`, Kustomize inflates `helmCharts` by running it."""
    helm = ["--enable-helm", "--helm-command", str(helm_command)] if helm_command is not None else []
    kustomize = shutil.which("kustomize")
    if kustomize is not None:
        return [kustomize, "build", *helm, str(directory)]
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        return [kubectl, "kustomize", *helm, str(directory)]
    raise KustomizeError(
        "this directory holds a kustomization, which needs Kustomize: install `kustomize` "
        "or `kubectl` (which includes it) on PATH"
    )


def build(directory: Path, *, root: Path, budget: Budget, where: str, helm_command: Path | None = None) -> bytes:
    """The multi-document YAML Kustomize produces for `directory`, counted against `budget`
    as it arrives: past the byte bound, Kustomize is killed and nothing more is read
    (LimitExceeded), so a kustomization that multiplies its bases cannot fill memory."""
    command = kustomize_command(directory, helm_command=helm_command)
    try:
        return run_bounded(command, cwd=root, budget=budget, where=where, timeout=budget.limits.kustomize_timeout)
    except ToolFailed as failed:
        refused = kustomizehelm.refusal(helm_command.parent) if helm_command is not None else None
        if refused is not None:
            raise KustomizeError(refused) from None
        if failed.timed_out or failed.returncode is None:
            raise KustomizeError(str(failed)) from None
        message = _readable(failed.stderr, root=root)
        tool = " ".join(Path(part).name for part in command[:2])
        raise KustomizeError(f"{tool} failed: {message or f'exit status {failed.returncode}'}") from None


def local_bases(directory: Path, *, root: Path, relative: str) -> tuple[list[Path], list[Problem]]:
    """The kustomization directories `directory` builds from (itself first), following
    `resources`/`bases`/`components`, and a problem for each file reference of any of them
    that is not an existing path inside `root` (see the module docstring)."""
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
        for field, entry in _references(kustomization, where=where, problems=problems):
            resolved, why = _inside(current, entry, root=root)
            if why is not None:
                problems.append(Problem(where, f"{field} entry {entry!r}: {why}"))
            elif field in _BASE_FIELDS and resolved is not None and resolved.is_dir():
                pending.append(resolved)
    return seen, problems


def _inside(directory: Path, entry: str, *, root: Path) -> tuple[Path | None, str | None]:
    """Where a reference leads, or why it may not be followed."""
    if _URL.search(entry):
        return None, ("a URL: syncer builds kustomizations only from files inside the repository "
                      "(remote and file:// bases are refused); vendor the base into the repository")
    if entry.startswith("/") or Path(entry).is_absolute():
        return None, "an absolute path: use a path relative to the kustomization, inside the repository"
    candidate = directory / entry
    if not os.path.lexists(candidate):
        return None, ("not found in the repository (Kustomize would try it as a remote base, which "
                      "syncer refuses); check the path")
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None, "a broken symlink or a symlink loop"
    if not resolved.is_relative_to(root):
        return None, "leads outside the repository; keep bases inside it"
    return resolved, None


def _readable(stderr: str, *, root: Path) -> str:
    """Kustomize's message without kubectl's log header, with repository-relative paths."""
    lines = []
    for line in stderr.strip().splitlines():
        line = _KLOG_HEADER.sub("", line)
        wrapped = _COMMAND_FAILED.fullmatch(line)
        lines.append(wrapped.group(1) if wrapped else line)
    return "\n".join(lines).replace(f"{root}{os.sep}", "").replace(str(root), ".")


def _references(kustomization: Path, *, where: str, problems: list[Problem]) -> list[tuple[str, str]]:
    """(field, entry) for every file reference in a kustomization."""
    limits = RenderLimits()
    data = kustomization.read_bytes()[: limits.max_file_bytes]
    documents, found = load_yaml(data, file=where, budget=Budget(limits))
    problems.extend(found)
    if not documents or not isinstance(documents[0].obj, dict):
        return []
    spec: dict[str, Any] = documents[0].obj
    problems += [Problem(where, problem) for problem in helm_chart_problems(spec, directory=kustomization.parent)]
    entries: list[tuple[str, str]] = helm_chart_references(spec)
    for field in (*_BASE_FIELDS, *_FILE_LIST_FIELDS):
        entries += [(field, item) for item in _strings(spec.get(field)) if "\n" not in item]
    for field in _PATH_ITEM_FIELDS:
        entries += [(f"{field}[].path", item["path"]) for item in _mappings(spec.get(field))
                    if isinstance(item.get("path"), str)]
    openapi = spec.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        entries.append(("openapi.path", openapi["path"]))
    for field in _GENERATOR_FIELDS:
        for generator in _mappings(spec.get(field)):
            entries += [(f"{field}[].files", item.partition("=")[2] or item) for item in _strings(generator.get("files"))]
            entries += [(f"{field}[].envs", item) for item in _strings(generator.get("envs"))]
            if isinstance(generator.get("env"), str):
                entries.append((f"{field}[].env", generator["env"]))
    return entries


def uses_helm(directories: list[Path]) -> bool:
    """Whether any of the kustomizations inflates Helm charts (`helmCharts`)."""
    for directory in directories:
        kustomization = kustomization_file(directory)
        if kustomization is not None and read_mapping(kustomization).get("helmCharts"):
            return True
    return False


def chart_home(spec: dict[str, Any], *, directory: Path) -> Path:
    """Where Kustomize looks for the kustomization's charts: `helmGlobals.chartHome`, else `charts`."""
    globals_ = spec.get("helmGlobals")
    home = globals_.get("chartHome") if isinstance(globals_, dict) else None
    return directory / (home if isinstance(home, str) and home else "charts")


def helm_chart_references(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """The files and directories `helmCharts` reads: chart home, values files."""
    entries: list[tuple[str, str]] = []
    globals_ = spec.get("helmGlobals")
    if isinstance(globals_, dict) and isinstance(globals_.get("chartHome"), str):
        entries.append(("helmGlobals.chartHome", globals_["chartHome"]))
    for chart in _mappings(spec.get("helmCharts")):
        if isinstance(chart.get("valuesFile"), str):
            entries.append(("helmCharts[].valuesFile", chart["valuesFile"]))
        entries += [("helmCharts[].additionalValuesFiles", item) for item in _strings(chart.get("additionalValuesFiles"))]
    return entries


def helm_chart_problems(spec: dict[str, Any], *, directory: Path) -> list[str]:
    """What in `helmCharts` syncer does not let Kustomize do: download a chart into the
    checkout, keep helm's configuration in the repository, or the old generator field."""
    problems = []
    if spec.get("helmChartInflationGenerator"):
        problems.append("helmChartInflationGenerator: the old form of Helm inflation; use helmCharts")
    globals_ = spec.get("helmGlobals")
    if isinstance(globals_, dict) and globals_.get("configHome"):
        problems.append("helmGlobals.configHome: syncer gives helm a private, empty home; leave it out")
    home = chart_home(spec, directory=directory)
    for chart in _mappings(spec.get("helmCharts")):
        name, version = str(chart.get("name") or ""), str(chart.get("version") or "")
        if not name:
            problems.append("helmCharts: an entry without a name")
            continue
        vendored = home / f"{name}-{version}" / name if version else home / name
        if not (vendored / "Chart.yaml").is_file():
            where = f"{home.name}/{vendored.relative_to(home).as_posix()}"
            source = f" from {chart['repo']}" if chart.get("repo") else ""
            problems.append(
                f"helmCharts {name} {version}".rstrip() + f": not vendored at {where}{source}; Kustomize would "
                f"download it into the checkout, which syncer does not let it do: vendor the chart there "
                f"(helm pull --untar --untardir {where.rpartition('/')[0]} ...) and commit it")
    return problems


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _mappings(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _relative(path: Path, root: Path, *, fallback: str) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return fallback
