"""Rendering: the files under a path of a snapshot become an ordered, validated manifest list.

A directory with a `Chart.yaml` is rendered with `helm template` (`syncer.sources.helm`); one
with a kustomization is built with Kustomize; any other directory is walked in
sorted order (recursively, skipping hidden entries such as .git and .github, and building
subdirectories that hold a kustomization with Kustomize), reading *.yaml, *.yml and *.json.
The order is deterministic so that the same revision always renders the same list.

Everything read must lie inside the snapshot's root: a `..` in the path or a symlink leading
out of the repository is an error, so a repository cannot make syncer read (and apply, or
show in a diff) files from the machine it runs on.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from syncer.errors import Problem, RenderError, RenderTooLarge, SourceError
from syncer.model import Manifest, ObjectRef, Origin
from syncer.sources import helm, kustomize, kustomizehelm, rendercache
from syncer.sources.helm import HelmSettings
from syncer.sources.snapshot import Snapshot
from syncer.sources.validate import RenderedDocument, validate
from syncer.sources.limits import Budget, LimitExceeded, RenderLimits
from syncer.sources.yamlload import load_json, load_yaml

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class _Unit:
    """Something that renders to documents: a file, or a kustomization directory."""

    path: Path
    kustomization: bool = False
    chart: bool = False


def render(
    snapshot: Snapshot,
    path: str = ".",
    *,
    namespace: str = "default",
    limits: RenderLimits = RenderLimits(),
    helm_settings: HelmSettings = HelmSettings(),
    warnings: list[str] | None = None,
) -> list[Manifest]:
    """The manifests under `path` (relative to the repository root) of `snapshot`; a chart
    is rendered with `helm_settings`, and what the render leaves out (Helm hooks) is said in
    `warnings`.

    Raises SourceError when `path` is not in the repository, and RenderError listing every
    problem found when any document is invalid or a limit is exceeded.
    """
    root = snapshot.root.resolve()
    target = resolve_path(snapshot, path)
    # A chart's render is never stored, so a stored render is of a path that is no chart, and
    # stays right for it whatever the Helm settings; unless the path must be a chart.
    cache = None if helm_settings.required else rendercache.cache_file(snapshot, path=path, namespace=namespace,
                                                                       limits=limits)
    cached = rendercache.load(cache) if cache is not None else None
    if cached is not None:
        return cached
    problems: list[Problem] = []
    budget = Budget(limits)
    documents: list[RenderedDocument] = []
    kustomized = False
    try:
        units = _units(target, root=root, problems=problems)
        if helm_settings.required and not any(unit.chart for unit in units):
            problems.append(Problem(_relative(target, root), f"Helm settings were given, but the path holds no "
                                                             f"{helm.CHART_FILE}: give the chart's directory"))
        budget.check_bytes(sum(_size(unit.path) for unit in units if not (unit.kustomization or unit.chart)),
                           where=f"path {_relative(target, root)}")
        for unit in units:
            if unit.chart:
                kustomized = True
                documents += _build_chart(unit.path, root=root, namespace=namespace, settings=helm_settings,
                                          budget=budget, problems=problems, warnings=warnings)
            elif unit.kustomization:
                kustomized = True
                documents += _build_kustomization(unit.path, root=root, namespace=namespace, budget=budget,
                                                  problems=problems, settings=helm_settings, warnings=warnings)
            else:
                documents += _read_file(unit.path, root=root, budget=budget, problems=problems)
    except LimitExceeded as exceeded:
        if exceeded.bound is not None:
            raise RenderTooLarge([exceeded.problem, *problems], bound=exceeded.bound, limit=exceeded.limit) from None
        raise RenderError([*problems, exceeded.problem]) from None
    manifests, found = validate(documents, namespace=namespace)
    problems += found
    if problems:
        raise RenderError(problems)
    if cache is not None and not kustomized:
        rendercache.store(cache, manifests)
    return manifests


CREATE_NAMESPACE_ORIGIN = Origin(file="<create-namespace>", document=0, line=0)


def with_created_namespace(manifests: list[Manifest], namespace: str) -> list[Manifest]:
    """`manifests` plus a Namespace `namespace`, unless they define it already.

    Sets such as Argo CD's install name no namespace and expect the user to pick one (Argo
    CD's `CreateNamespace=true`, Helm's `--create-namespace`). As an ordinary manifest the
    Namespace is applied first, recorded in the app's inventory and pruned, with the same
    safety as any Namespace, once the option is dropped. An empty render stays empty, so that
    the refusal to sync an empty source still holds.
    """
    if not manifests or any(
        manifest.ref == ObjectRef(group="", kind="Namespace", namespace=None, name=namespace) for manifest in manifests
    ):
        return manifests
    created = Manifest(
        obj={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        origin=CREATE_NAMESPACE_ORIGIN,
    )
    return [created, *manifests]


def chart_at(snapshot: Snapshot, path: str) -> bool:
    """Whether `path` of the snapshot is a Helm chart (False when it does not exist: the
    render says so)."""
    try:
        return helm.is_chart(resolve_path(snapshot, path))
    except SourceError:
        return False


def runs_helm(snapshot: Snapshot, path: str) -> bool:
    """Whether rendering `path` runs helm: it is a chart, or a kustomization there (or one of
    its bases) inflates `helmCharts`. Such a render is given the server's capabilities."""
    try:
        target = resolve_path(snapshot, path)
    except SourceError:
        return False
    if helm.is_chart(target):
        return True
    root = snapshot.root.resolve()
    for unit in _units(target, root=root, problems=[]):
        if unit.kustomization:
            bases, _ = kustomize.local_bases(unit.path, root=root, relative=_relative(unit.path, root))
            if kustomize.uses_helm(bases):
                return True
    return False


def resolve_path(snapshot: Snapshot, path: str) -> Path:
    """The absolute, symlink-free location of `path`, checked to be inside the repository."""
    relative = PurePosixPath(path or ".")
    if relative.is_absolute() or ".." in relative.parts:
        raise SourceError(
            f"path {path!r}: must be relative to the repository root and must not contain '..'"
        )
    root = snapshot.root.resolve()
    candidate = root.joinpath(*relative.parts)
    if not os.path.lexists(candidate):
        raise SourceError(
            f"path {path!r} not found in repository {snapshot.repo} at revision "
            f"{snapshot.revision}; check --path (it is relative to the repository root)"
        )
    try:
        target = candidate.resolve()
    except (OSError, RuntimeError) as error:
        raise SourceError(f"path {path!r} in repository {snapshot.repo}: cannot resolve it ({error})") from None
    if not target.is_relative_to(root):
        raise SourceError(f"path {path!r} in repository {snapshot.repo} is a symlink leading outside the repository")
    if not target.exists():
        raise SourceError(f"path {path!r} in repository {snapshot.repo} is a broken symlink")
    return target


def _units(target: Path, *, root: Path, problems: list[Problem]) -> list[_Unit]:
    if target.is_file():
        if not target.name.lower().endswith(MANIFEST_SUFFIXES):
            problems.append(Problem(_relative(target, root), "not a .yaml, .yml or .json file"))
            return []
        return [_Unit(target)]
    if helm.is_chart(target):
        return [_Unit(target, chart=True)]
    if kustomize.kustomization_file(target) is not None:
        return [_Unit(target, kustomization=True)]
    units: list[_Unit] = []
    _walk(target, root=root, visited=set(), units=units, problems=problems)
    return units


def _walk(directory: Path, *, root: Path, visited: set[Path], units: list[_Unit], problems: list[Problem]) -> None:
    """Depth-first in name order; `visited` holds real paths so symlinked loops end."""
    real = directory.resolve()
    if real in visited:
        return
    visited.add(real)
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError as error:
        problems.append(Problem(_relative(directory, root), f"cannot list the directory: {error.strerror}"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_symlink():
            problem = _symlink_problem(path, root=root)
            if problem is not None:
                problems.append(problem)
                continue
            if not path.exists():
                if entry.name.lower().endswith(MANIFEST_SUFFIXES):
                    problems.append(Problem(_relative(path, root), "broken symlink: its target does not exist"))
                continue
        if path.is_dir():
            if helm.is_chart(path):
                problems.append(Problem(_relative(path, root), f"a Helm chart ({helm.CHART_FILE}) inside the directory "
                                                               "rendered: render it on its own (--path to the chart, "
                                                               "or an App per chart)"))
            elif kustomize.kustomization_file(path) is not None:
                units.append(_Unit(path, kustomization=True))
            else:
                _walk(path, root=root, visited=visited, units=units, problems=problems)
        elif entry.name.lower().endswith(MANIFEST_SUFFIXES) and path.is_file():
            units.append(_Unit(path))


def _symlink_problem(path: Path, *, root: Path) -> Problem | None:
    try:
        target = path.resolve()
    except (OSError, RuntimeError):
        return Problem(_relative(path, root), "symlink loop: the link resolves to itself")
    if target.is_relative_to(root):
        return None
    return Problem(
        _relative(path, root),
        f"symlink leads outside the repository (to {os.readlink(path)}); "
        "only links to files inside the repository are followed",
    )


def _escaping_symlinks(directory: Path, *, root: Path) -> list[Problem]:
    problems: list[Problem] = []
    for current, dirs, files in os.walk(directory):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        for name in sorted([*dirs, *files]):
            path = Path(current, name)
            if path.is_symlink():
                problem = _symlink_problem(path, root=root)
                if problem is not None:
                    problems.append(problem)
    return problems


def _read_file(path: Path, *, root: Path, budget: Budget, problems: list[Problem]) -> list[RenderedDocument]:
    relative = _relative(path, root)
    limit = budget.limits.max_file_bytes
    try:
        size = path.stat().st_size
        if size > limit:
            problems.append(Problem(relative, f"the file has {size} bytes, more than the limit of {limit}; split it"))
            return []
        with path.open("rb") as stream:
            data = stream.read(limit + 1)
    except OSError as error:
        problems.append(Problem(relative, f"cannot read the file: {error.strerror}"))
        return []
    if len(data) > limit:
        problems.append(Problem(relative, f"the file has more than {limit} bytes; split it"))
        return []
    budget.add_bytes(len(data), where=relative)
    load = load_json if path.name.lower().endswith(".json") else load_yaml
    loaded, found = load(data, file=relative, budget=budget)
    problems += found
    return [
        RenderedDocument(
            obj=document.obj,
            origin=Origin(file=relative, document=document.index, line=document.line),
            where=f"{relative}:{document.line}",
            item_lines=document.item_lines,
            value_lines=document.value_lines,
        )
        for document in loaded
    ]


def _build_kustomization(
    directory: Path, *, root: Path, namespace: str, budget: Budget, problems: list[Problem], settings: HelmSettings,
    warnings: list[str] | None,
) -> list[RenderedDocument]:
    relative = _relative(directory, root)
    bases, found = kustomize.local_bases(directory, root=root, relative=relative)
    for base in bases:
        found += _escaping_symlinks(base, root=root)
    if found:
        problems += found
        return []
    with tempfile.TemporaryDirectory(prefix="syncer-kustomize-helm-") as work_dir:
        work = Path(work_dir)
        os.chmod(work, 0o700)
        shim = (kustomizehelm.install_shim(work, root=root, namespace=namespace, settings=settings, limits=budget.limits)
                if kustomize.uses_helm(bases) else None)
        try:
            output = kustomize.build(directory, root=root, budget=budget, where=f"{relative} (kustomize output)",
                                     helm_command=shim)
        except kustomize.KustomizeError as error:
            problems.append(Problem(relative, str(error)))
            return []
        hooks = kustomizehelm.hooks_left_out(work)
    if warnings is not None:
        for chart in sorted({chart for chart, _ in hooks}):
            warnings.append(helm.hooks_warning(f"{relative}: helmCharts {chart}",
                                               [hook for of, hook in hooks if of == chart]))
    loaded, found = load_yaml(output, file=f"{relative} (kustomize output)", budget=budget)
    problems += found
    return [
        RenderedDocument(
            obj=document.obj,
            origin=Origin(file=relative, document=document.index),
            where=f"{relative} (kustomize output, document {document.index + 1})",
        )
        for document in loaded
    ]


def _build_chart(
    directory: Path, *, root: Path, namespace: str, settings: HelmSettings, budget: Budget, problems: list[Problem],
    warnings: list[str] | None,
) -> list[RenderedDocument]:
    relative = _relative(directory, root)
    try:
        output = helm.template(directory, root=root, relative=relative, namespace=namespace, settings=settings,
                               budget=budget)
    except helm.HelmError as error:
        problems.append(Problem(relative, str(error)))
        return []
    loaded, found = load_yaml(output, file=f"{relative} (helm template output)", budget=budget)
    problems += found
    kept, hooks = helm.without_hooks(output, loaded, chart=relative)
    if hooks and warnings is not None:
        warnings.append(helm.hooks_warning(relative, hooks))
    return [
        RenderedDocument(
            obj=document.obj,
            origin=Origin(file=file, document=document.index),
            where=f"{file} (helm template output, document {document.index + 1})",
        )
        for document, file in kept
    ]


def _size(path: Path) -> int:
    """What reading the file will count (0 when it cannot be read: that is reported when it is)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _relative(path: Path, root: Path) -> str:
    """Repository-relative, `/`-separated; `.` for the root itself."""
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return path.as_posix()
