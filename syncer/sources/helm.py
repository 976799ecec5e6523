"""Rendering a Helm chart with the real `helm template`, as Argo CD does, and no further.

A directory with a `Chart.yaml` is a chart. It is rendered with `helm template` and nothing
else of Helm: no release Secrets, no hooks run, no plugins, no post-renderer, no cluster.

- **Confinement.** Helm reads a chart's files into memory and `.Files.Get` sees only those,
  but it follows symbolic links wherever they lead. So the chart is copied into a private
  work directory first, and a link that leads out of the repository (or loops) is refused,
  as in every other render. Values files are paths inside the repository (relative to the
  chart, `..` allowed as long as they stay inside); inline values and values read from the
  cluster are written to private files (0600) in the work directory, never into arguments.
- **Environment.** helm runs with an environment of its own: HOME and every HELM_* directory
  point into the empty work directory (so the user's or the daemon's `repositories.yaml`,
  registry credentials and plugins are never read: HELM_PLUGINS is empty), KUBECONFIG is an
  empty file (`lookup` answers an empty map, as in any `helm template`), and PATH holds only
  system directories.
- **Hooks.** Objects annotated `helm.sh/hook` (tests included) are rendered by helm but left
  out here, as `--no-hooks` would, and listed in a warning so that nobody wonders where they
  went. `crds/` is included (`--include-crds`), and syncer's kind order applies CRDs first.
- **Capabilities.** `.Capabilities.KubeVersion` and `.Capabilities.APIVersions` are the live
  server's when there is one (`--kube-version`, `--api-versions`), else the flags'.
- **Dependencies.** A dependency vendored in `charts/` (a directory or a `.tgz`) is used as it
  is; a `file://` one is copied from inside the repository; one from a chart repository
  (`https://`) or an OCI registry (`oci://`) is downloaded with `helm pull` only when its host
  is allowed (`--helm-allow-host`); otherwise the render fails naming the chart, the
  dependency and the host. A repository alias (`@stable`) is refused: there is no
  repositories.yaml to resolve it.
- **Bounds.** helm's output is counted against the render's byte budget as it arrives and
  helm is stopped past it, and after `RenderLimits.helm_timeout` seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from syncer.errors import Problem
from syncer.sources.limits import Budget, RenderLimits, show_bytes
from syncer.sources.tool import ToolFailed, find_tool, run_bounded
from syncer.sources.yamlload import Document, load_yaml, read_mapping

HELM_VERSION = "v3.22.0"
"""The helm syncer is tested with, pinned in tools/helm and built by `tools/build.sh helm`."""
CHART_FILE = "Chart.yaml"
HOOK_ANNOTATION = "helm.sh/hook"
SOURCE_MARK = "# Source: "
"""helm template writes `# Source: <chart>/templates/x.yaml` above each document."""
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


class HelmError(Exception):
    """The chart cannot be rendered; the message is for the user, paths repo-relative."""


@dataclass(frozen=True)
class HelmSettings:
    """How a chart is rendered: what `helm template` is given besides the chart."""

    release_name: str | None = None
    """`.Release.Name`; None: the app's name, else the chart's name."""
    values_files: tuple[str, ...] = ()
    """Values files in the repository, relative to the chart directory, applied in order."""
    values: tuple[str, ...] = field(default=(), repr=False)
    """Values documents (YAML or JSON text) applied after the files, in order: those an App
    reads from ConfigMaps and Secrets (`valuesFrom`), then its inline `values`. Not shown in
    a repr: they may come from Secrets."""
    set_values: tuple[str, ...] = field(default=(), repr=False)
    """`--set KEY=VALUE`, applied last."""
    kube_version: str | None = None
    api_versions: tuple[str, ...] = ()
    required: bool = False
    """The path must be a chart (an App's `spec.helm` was given)."""


@dataclass(frozen=True)
class Dependency:
    name: str
    version: str
    repository: str


@dataclass(frozen=True)
class Hook:
    """An object helm would run as a hook, left out of the render."""

    kind: str
    name: str
    hook: str
    source: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} ({self.hook}, {self.source})"


def is_chart(directory: Path) -> bool:
    return (directory / CHART_FILE).is_file()


def helm_binary() -> str:
    """`SYNCER_HELM`, else `helm` on PATH, else the build `tools/build.sh helm` caches."""
    try:
        found = find_tool("helm", version=HELM_VERSION)
    except ValueError as error:
        raise HelmError(str(error)) from None
    if found is None:
        raise HelmError(f"this path is a Helm chart, which needs helm: set SYNCER_HELM, put `helm` on PATH, or "
                        f"build helm {HELM_VERSION} with `tools/build.sh helm`")
    return found


def template_command(
    helm: str, *, chart: Path, release: str, namespace: str, values_files: list[Path], settings: HelmSettings,
) -> list[str]:
    """The `helm template` command line: hooks are rendered (to be listed, then left out),
    CRDs included, no validation against a cluster."""
    command = [helm, "template", release, str(chart), "--namespace", namespace, "--include-crds"]
    for values in values_files:
        command += ["--values", str(values)]
    for assignment in settings.set_values:
        command += ["--set", assignment]
    if settings.kube_version:
        command += ["--kube-version", settings.kube_version]
    for api_version in settings.api_versions:
        command += ["--api-versions", api_version]
    return command


def helm_environment(home: Path) -> dict[str, str]:
    """An environment that reads nothing of the user's or the daemon's Helm setup."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "plugins").mkdir(exist_ok=True)
    (home / "kubeconfig").write_text("")
    environment = {
        "PATH": SYSTEM_PATH, "HOME": str(home), "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data"),
        "HELM_PLUGINS": str(home / "plugins"), "HELM_REGISTRY_CONFIG": str(home / "config" / "registry.json"),
        "HELM_REPOSITORY_CONFIG": str(home / "config" / "repositories.yaml"),
        "HELM_REPOSITORY_CACHE": str(home / "cache" / "repository"), "KUBECONFIG": str(home / "kubeconfig"),
    }
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
                 "SSL_CERT_FILE", "SSL_CERT_DIR"):
        if name in os.environ:  # only the downloads from allowed hosts use the network
            environment[name] = os.environ[name]
    return environment


# -- hooks -----------------------------------------------------------------------------------

def hook_of(obj: Any) -> str | None:
    """The `helm.sh/hook` annotation's value, when the object is a hook."""
    if not isinstance(obj, dict):
        return None
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict) or HOOK_ANNOTATION not in annotations:
        return None
    return str(annotations[HOOK_ANNOTATION])


def hooks_warning(chart: str, hooks: list[Hook]) -> str:
    shown = ", ".join(str(hook) for hook in hooks)
    return (f"{chart}: {len(hooks)} Helm hook(s) left out (helm.sh/hook; syncer applies a chart as "
            f"`helm template --no-hooks` would, as Argo CD does not run them as hooks either): {shown}")


def sources(output: bytes) -> list[tuple[int, str]]:
    """(line, template) for each `# Source:` comment of helm's output, in order."""
    found = []
    for number, line in enumerate(output.decode(errors="replace").splitlines(), start=1):
        if line.startswith(SOURCE_MARK):
            found.append((number, line[len(SOURCE_MARK):].strip()))
    return found


def source_at(marks: list[tuple[int, str]], line: int) -> str:
    """The template a document whose first line is `line` came from ("" when helm did not
    say): the last `# Source:` comment above it."""
    template = ""
    for number, source in marks:
        if number > line:
            break
        template = source
    return template


def template_file(chart: str, template: str) -> str:
    """`charts/web` and helm's `web/templates/x.yaml` -> `charts/web/templates/x.yaml`."""
    inside = template.partition("/")[2]
    return f"{chart}/{inside}" if inside else chart


def without_hooks(output: bytes, documents: list[Document], *, chart: str) -> tuple[list[tuple[Document, str]], list[Hook]]:
    """Each document of helm's output that is no hook, with the repository file it came from
    (`chart` is the chart's path in the repository), and the hooks left out."""
    marks = sources(output)
    kept: list[tuple[Document, str]] = []
    hooks: list[Hook] = []
    for document in documents:
        file = template_file(chart, source_at(marks, document.line))
        hook = hook_of(document.obj)
        if hook is None:
            kept.append((document, file))
            continue
        metadata = document.obj.get("metadata") or {}
        hooks.append(Hook(kind=str(document.obj.get("kind")), name=str(metadata.get("name")), hook=hook, source=file))
    return kept, hooks


# -- dependencies ----------------------------------------------------------------------------

def dependencies(chart: Mapping[str, Any]) -> list[Dependency]:
    """The dependencies a Chart.yaml (apiVersion v2) or requirements.yaml (v1) lists."""
    found = []
    for entry in chart.get("dependencies") or []:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            found.append(Dependency(name=entry["name"], version=str(entry.get("version") or ""),
                                    repository=str(entry.get("repository") or "")))
    return found


def vendored_names(charts_dir: Path) -> set[str]:
    """The chart names `charts/` holds, as directories (their Chart.yaml's name) or packages
    (`NAME-VERSION.tgz`, the name is all before the last dash followed by a digit)."""
    names: set[str] = set()
    if not charts_dir.is_dir():
        return names
    for entry in charts_dir.iterdir():
        if entry.is_dir() and (entry / CHART_FILE).is_file():
            name = read_mapping(entry / CHART_FILE).get("name")
            names.add(str(name) if name else entry.name)
        elif entry.name.endswith(".tgz"):
            stem = entry.name[: -len(".tgz")]
            cut = next((i for i in range(len(stem) - 1, 0, -1) if stem[i - 1] == "-" and stem[i].isdigit()), 0)
            names.add(stem[: cut - 1] if cut else stem)
    return names


def repository_host(repository: str) -> str | None:
    """The host of an `https://`, `http://` or `oci://` repository; None for anything else."""
    parts = urlsplit(repository)
    if parts.scheme not in ("https", "http", "oci") or not parts.hostname:
        return None
    return parts.hostname


def host_allowed(repository: str, allowed: tuple[str, ...]) -> bool:
    """Whether `--helm-allow-host` lets the repository be reached: by host name (any port),
    or by `host:port`."""
    parts = urlsplit(repository)
    host = parts.hostname
    if host is None:
        return False
    with_port = f"{host}:{parts.port}" if parts.port else host
    return any(entry.lower() in (host.lower(), with_port.lower()) for entry in allowed)


def dependency_problem(chart: str, dependency: Dependency, *, allowed: tuple[str, ...]) -> str | None:
    """Why a dependency that is not vendored cannot be downloaded; None when it may be."""
    what = f"chart {chart}: dependency {dependency.name} {dependency.version}".rstrip()
    repository = dependency.repository
    if repository.startswith(("@", "alias:")) or not repository:
        return (f"{what}: is not vendored in charts/ and names no repository URL ({repository or 'none'}); syncer "
                "reads no repositories.yaml: vendor it (helm dependency build) or give its https:// or oci:// URL")
    host = repository_host(repository)
    if host is None:
        return f"{what}: repository {repository!r} is not https://, oci:// or file://"
    if not host_allowed(repository, allowed):
        return (f"{what}: is not vendored in charts/, and its repository host {host} ({repository}) is not allowed; "
                f"vendor it (helm dependency build, commit charts/) or let syncer download from that host with "
                f"--helm-allow-host {host}")
    return None


def pull_command(helm: str, dependency: Dependency, *, destination: Path) -> list[str]:
    if dependency.repository.startswith("oci://"):
        reference = f"{dependency.repository.rstrip('/')}/{dependency.name}"
        command = [helm, "pull", reference]
    else:
        command = [helm, "pull", dependency.name, "--repo", dependency.repository]
    if dependency.version:
        command += ["--version", dependency.version]
    return [*command, "--destination", str(destination)]


# -- rendering -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Workspace:
    """A chart copied into a private work directory, with the helm and the environment that
    render it (see the module docstring)."""

    work: Path
    chart: Path
    """The staged copy, dependencies included."""
    helm: str
    environment: dict[str, str]
    relative: str

    def run(self, arguments: list[str], *, budget: Budget, timeout: float) -> bytes:
        """helm's output for `helm ARGUMENTS`, counted against `budget`."""
        try:
            return run_bounded([self.helm, *arguments], cwd=self.work, budget=budget, timeout=timeout,
                               where=f"{self.relative} (helm template output)", env=self.environment)
        except ToolFailed as failed:
            raise HelmError(_readable(failed, work=self.work, relative=self.relative)) from None


@contextmanager
def workspace(chart: Path, *, root: Path, relative: str, limits: RenderLimits) -> Iterator[Workspace]:
    """The chart at `chart` (inside `root`) staged for helm; removed afterwards."""
    helm = helm_binary()
    with tempfile.TemporaryDirectory(prefix="syncer-helm-") as work_dir:
        work = Path(work_dir)
        os.chmod(work, 0o700)
        staged = work / "chart"
        copied = _stage_chart(chart, staged, root=root, relative=relative, limits=limits)
        environment = helm_environment(work / "home")
        _stage_dependencies(chart, staged, root=root, relative=relative, helm=helm, environment=environment,
                            limits=limits, copied=copied)
        yield Workspace(work=work, chart=staged, helm=helm, environment=environment, relative=relative)


def template(
    chart: Path, *, root: Path, relative: str, namespace: str, settings: HelmSettings, budget: Budget,
) -> bytes:
    """helm's output for the chart at `chart` (inside `root`), counted against `budget`."""
    limits = budget.limits
    with workspace(chart, root=root, relative=relative, limits=limits) as staged:
        values_files = [_values_file(chart, entry, root=root, relative=relative) for entry in settings.values_files]
        for index, document in enumerate(settings.values):
            path = staged.work / f"values-{index}.yaml"
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(document)
            values_files.append(path)
        release = settings.release_name or str(read_mapping(chart / CHART_FILE).get("name") or chart.name)
        command = template_command(staged.helm, chart=staged.chart, release=release, namespace=namespace,
                                   values_files=values_files, settings=settings)
        return staged.run(command[1:], budget=budget, timeout=limits.helm_timeout)


def inline_values(values: Mapping[str, Any]) -> str:
    """An App's inline `values` as a values document (JSON is YAML)."""
    return json.dumps(values, sort_keys=True)


def _stage_chart(chart: Path, staged: Path, *, root: Path, relative: str, limits: RenderLimits) -> _Copied:
    """Copy the chart, refusing links out of the repository and charts past the byte bound."""
    copied = _Copied(limit=limits.max_total_bytes)
    _copy_tree(chart, staged, root=root, relative=relative, ancestors=(chart.resolve(),), copied=copied)
    return copied


@dataclass
class _Copied:
    """Bytes of a chart copied so far: the copy stops at the render's byte bound."""

    limit: int
    bytes: int = 0

    def add(self, count: int, *, where: str) -> None:
        self.bytes += count
        if self.bytes > self.limit:
            raise HelmError(f"{where}: the chart's files add up to more than the limit per app of "
                            f"{show_bytes(self.limit)} (raise it with --max-render-bytes)")


def _copy_tree(source: Path, target: Path, *, root: Path, relative: str, ancestors: tuple[Path, ...],
               copied: _Copied) -> None:
    """Copy `source` (shown as `relative`) into `target`, following links that stay inside
    the repository; only directories and regular files (a FIFO would block helm)."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()):
        where = f"{relative}/{entry.name}"
        real = entry
        if entry.is_symlink():
            try:
                real = entry.resolve(strict=True)
            except (OSError, RuntimeError):
                raise HelmError(f"{where}: a broken symlink or a symlink loop") from None
            if not real.is_relative_to(root):
                raise HelmError(f"{where}: symlink leads outside the repository (to {os.readlink(entry)}); helm "
                                "would read what it points to into the chart, so syncer refuses it")
            if real.is_dir() and any(real == ancestor or ancestor.is_relative_to(real) for ancestor in ancestors):
                raise HelmError(f"{where}: symlink loop (it leads to a directory that holds it)")
        status = real.stat()
        if stat.S_ISDIR(status.st_mode):
            _copy_tree(real, target / entry.name, root=root, relative=where, ancestors=(*ancestors, real.resolve()),
                       copied=copied)
        elif stat.S_ISREG(status.st_mode):
            copied.add(status.st_size, where=where)
            shutil.copyfile(real, target / entry.name)


def _stage_dependencies(
    chart: Path, staged: Path, *, root: Path, relative: str, helm: str, environment: dict[str, str],
    limits: RenderLimits, copied: _Copied,
) -> None:
    """Put every dependency helm needs into the staged chart's charts/, or fail naming it."""
    manifest = read_mapping(chart / CHART_FILE)
    name = str(manifest.get("name") or chart.name)
    declared = dependencies(manifest)
    if (chart / "requirements.yaml").is_file():
        declared += dependencies(read_mapping(chart / "requirements.yaml"))
    vendored = vendored_names(staged / "charts")
    missing = [dependency for dependency in declared if dependency.name not in vendored]
    if not missing:
        return
    problems = []
    for dependency in missing:
        if dependency.repository.startswith("file://"):
            problem = _stage_local(chart, staged, dependency, root=root, relative=relative, copied=copied)
        else:
            problem = dependency_problem(name, dependency, allowed=limits.helm_hosts)
        if problem is not None:
            problems.append(problem)
    if problems:
        raise HelmError("; ".join(problems))
    charts = staged / "charts"
    charts.mkdir(exist_ok=True)
    for dependency in missing:
        if dependency.repository.startswith("file://"):
            continue
        try:
            run_bounded(pull_command(helm, dependency, destination=charts), cwd=staged, budget=None,
                        where=relative, timeout=limits.helm_timeout, env=environment)
        except ToolFailed as failed:
            raise HelmError(f"chart {name}: dependency {dependency.name} {dependency.version} from "
                            f"{dependency.repository}: {failed.stderr.strip() or failed}") from None


def _stage_local(
    chart: Path, staged: Path, dependency: Dependency, *, root: Path, relative: str, copied: _Copied,
) -> str | None:
    """Copy a `file://` dependency that lies inside the repository into charts/."""
    what = f"dependency {dependency.name} ({dependency.repository})"
    source, why = _inside(chart, dependency.repository[len("file://"):], root=root)
    if source is None:
        return f"{what}: {why}"
    if not is_chart(source):
        return f"{what}: has no {CHART_FILE}"
    _copy_tree(source, staged / "charts" / dependency.name, root=root, relative=relative, ancestors=(source,),
               copied=copied)
    return None


def _values_file(chart: Path, entry: str, *, root: Path, relative: str) -> Path:
    """A values file of the repository: relative to the chart, and inside the repository."""
    resolved, why = _inside(chart, entry, root=root)
    if resolved is None:
        raise HelmError(f"values file {entry!r}: {why}")
    if not resolved.is_file():
        raise HelmError(f"values file {entry!r}: not a file")
    return resolved


def _inside(chart: Path, entry: str, *, root: Path) -> tuple[Path | None, str]:
    """Where a path relative to the chart leads, or why it may not be read."""
    if os.path.isabs(entry) or "://" in entry:
        return None, "give a path relative to the chart, inside the repository"
    try:
        resolved = (chart / entry).resolve(strict=True)
    except (OSError, RuntimeError):
        return None, "not found in the repository (it is relative to the chart)"
    if not resolved.is_relative_to(root):
        return None, "leads outside the repository"
    return resolved, ""


def _readable(failed: ToolFailed, *, work: Path, relative: str) -> str:
    """helm's message with the work directory's paths shown as the chart's."""
    said = failed.stderr.strip().replace(str(work / "chart"), relative).replace(f"{work}{os.sep}", "")
    lines = [line for line in said.splitlines() if not line.startswith("walk.go:")]
    if failed.timed_out or not lines:
        return str(failed)
    return "helm template failed: " + "\n".join(lines)


def with_capabilities(
    settings: HelmSettings, *, version: tuple[int, int, int] | None, api_versions: tuple[str, ...],
) -> HelmSettings:
    """The settings with the live server's version and group-versions, as Argo CD renders;
    those given explicitly (`--kube-version`, `--api-versions`) stay."""
    return replace(
        settings,
        kube_version=settings.kube_version or (".".join(map(str, version)) if version else None),
        api_versions=settings.api_versions or api_versions,
    )
