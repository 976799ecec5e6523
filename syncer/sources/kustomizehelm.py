"""Kustomize's `helmCharts`, rendered under the same rules as a chart path.

Kustomize inflates `helmCharts` by running helm itself (`--enable-helm`). syncer gives it, as
`--helm-command`, a private shim that runs this module instead of helm, so a chart that
Kustomize inflates is rendered as a chart path is (syncer.sources.helm): the chart is copied
into a private work directory (links out of the repository refused), its dependencies are
vendored or come from allowed hosts, helm runs with an environment of its own and the live
server's capabilities, its output is bounded, and hooks are left out and listed. The objects
then go through the kustomization's patches and transformers, so patching a chart (Flux's
post-render) works.

What the shim refuses: a chart that is not vendored (Kustomize would `helm pull` it into the
repository's checkout), a chart or values file outside the repository, and any helm command
but `version` and `template`. The kustomization's own checks (syncer.sources.kustomize) say
the same before Kustomize runs, naming the kustomization file.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

import syncer
from syncer.sources import helm
from syncer.sources.limits import Budget, LimitExceeded, RenderLimits
from syncer.sources.tool import ToolFailed, run_bounded
from syncer.sources.yamlload import load_yaml

SHIM_NAME = "helm"
REFUSAL_FILE = "refused"
HOOKS_FILE = "hooks.jsonl"
_VALUE_FLAGS = frozenset({"-f", "--values", "--namespace", "-n", "--api-versions", "-a", "--kube-version",
                          "--name-template", "--version"})
_SWITCHES = frozenset({"--include-crds", "--skip-tests", "--no-hooks", "--generate-name", "--debug"})


@dataclass(frozen=True)
class ShimConfig:
    """What the shim needs from the render that started Kustomize."""

    root: str
    namespace: str
    """`.Release.Namespace` when the entry names none: the app's namespace, as for a chart path."""
    kube_version: str | None
    api_versions: tuple[str, ...]
    helm_hosts: tuple[str, ...]
    helm_timeout: float
    max_total_bytes: int


def install_shim(work: Path, *, root: Path, namespace: str, settings: helm.HelmSettings, limits: RenderLimits) -> Path:
    """Write the shim and its configuration into the private directory `work`; the path to
    give Kustomize as `--helm-command`."""
    config = ShimConfig(root=str(root), namespace=namespace, kube_version=settings.kube_version, api_versions=settings.api_versions,
                        helm_hosts=limits.helm_hosts, helm_timeout=limits.helm_timeout,
                        max_total_bytes=limits.max_total_bytes)
    (work / "config.json").write_text(json.dumps(asdict(config)))
    package_parent = Path(syncer.__file__).resolve().parent.parent
    shim = work / SHIM_NAME
    shim.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={shlex.quote(str(package_parent))} exec {shlex.quote(sys.executable)} "
        f"-m syncer.sources.kustomizehelm {shlex.quote(str(work))} \"$@\"\n"
    )
    shim.chmod(0o700)
    return shim


def refusal(work: Path) -> str | None:
    """What the shim refused during the build, when it did."""
    path = work / REFUSAL_FILE
    return path.read_text() if path.is_file() else None


def hooks_left_out(work: Path) -> list[tuple[str, helm.Hook]]:
    """(chart, hook) for every hook the shim left out of the build."""
    path = work / HOOKS_FILE
    if not path.is_file():
        return []
    found = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        found.append((entry.pop("chart"), helm.Hook(**entry)))
    return found


# -- the shim --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TemplateRequest:
    """`helm template` as Kustomize asked for it."""

    chart: str
    release: list[str]
    """The release name, or the flags that name it (`--generate-name`, `--name-template X`)."""
    values_files: list[str]
    flags: list[str]
    """Every other flag, passed on (but `--no-hooks`: hooks are rendered, to be listed)."""


class Refused(Exception):
    pass


def parse_template(arguments: list[str]) -> TemplateRequest:
    positional: list[str] = []
    values_files: list[str] = []
    flags: list[str] = []
    release: list[str] = []
    items = iter(arguments)
    for item in items:
        name, has_value, inline = item.partition("=")
        if name in _VALUE_FLAGS:
            value = inline if has_value else next(items, None)
            if value is None:
                raise Refused(f"helm template: {name} needs a value")
            if name in ("-f", "--values"):
                values_files.append(value)
            elif name == "--name-template":
                release += [name, value]
            else:
                flags += [name, value]
        elif item in _SWITCHES:
            if item == "--generate-name":
                release.append(item)
            elif item != "--no-hooks":
                flags.append(item)
        elif item.startswith("-"):
            raise Refused(f"helm template: flag {item} is not one Kustomize's helmCharts gives; syncer does not pass it")
        else:
            positional.append(item)
    if len(positional) == 2:
        release, chart = [positional[0], *release], positional[1]
    elif len(positional) == 1:
        chart = positional[0]
    else:
        raise Refused(f"helm template: expected a release and a chart, got {positional}")
    return TemplateRequest(chart=chart, release=release, values_files=values_files, flags=flags)


def _inside(path: str, *, allowed: list[Path], what: str) -> Path:
    resolved = Path(path).resolve()
    if not any(resolved.is_relative_to(base) for base in allowed):
        raise Refused(f"{what} {path}: outside the repository")
    return resolved


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()


def render_template(work: Path, config: ShimConfig, arguments: list[str]) -> bytes:
    """helm's output for Kustomize's `helm template ARGUMENTS`, hooks left out (and listed
    in the hooks file)."""
    request = parse_template(arguments)
    root = Path(config.root)
    chart = _inside(request.chart, allowed=[root], what="chart")
    if not helm.is_chart(chart):
        raise Refused(f"chart {_relative(chart, root)}: no {helm.CHART_FILE} there")
    relative = _relative(chart, root)
    # Kustomize writes the chart's merged values (valuesInline, valuesFile) into its own
    # temporary directory, whose helm home it passes as HELM_CONFIG_HOME.
    helm_home = os.environ.get("HELM_CONFIG_HOME")
    allowed = [root, Path(helm_home).resolve().parent] if helm_home else [root]
    values = [_inside(path, allowed=allowed, what="values file") for path in request.values_files]
    flags = list(request.flags)
    if "--namespace" not in flags and "-n" not in flags:
        flags += ["--namespace", config.namespace]
    if "--kube-version" not in flags and config.kube_version:
        flags += ["--kube-version", config.kube_version]
    if "--api-versions" not in flags and "-a" not in flags:
        for api_version in config.api_versions:
            flags += ["--api-versions", api_version]
    limits = RenderLimits(max_total_bytes=config.max_total_bytes, helm_timeout=config.helm_timeout,
                          helm_hosts=config.helm_hosts)
    budget = Budget(limits)
    with helm.workspace(chart, root=root, relative=relative, limits=limits) as staged:
        command = ["template", *request.release, str(staged.chart), *flags]
        for path in values:
            command += ["--values", str(path)]
        output = staged.run(command, budget=budget, timeout=limits.helm_timeout)
    documents, problems = load_yaml(output, file=f"{relative} (helm template output)", budget=budget)
    if problems:
        raise Refused("; ".join(str(problem) for problem in problems))
    kept, hooks = helm.without_hooks(output, documents, chart=relative)
    with (work / HOOKS_FILE).open("a") as file:
        for hook in hooks:
            file.write(json.dumps({"chart": relative, **asdict(hook)}) + "\n")
    return yaml.safe_dump_all([document.obj for document, _ in kept], sort_keys=False).encode()


def passthrough_version(work: Path, arguments: list[str]) -> int:
    """`helm version`, which Kustomize asks before anything else."""
    try:
        output = run_bounded([helm.helm_binary(), *arguments], cwd=work, budget=None, where="helm version",
                             timeout=30, env=helm.helm_environment(work / "version-home"))
    except (ToolFailed, helm.HelmError) as failed:
        raise Refused(str(failed)) from None
    sys.stdout.buffer.write(output)
    return 0


def main(argv: list[str]) -> int:
    work, arguments = Path(argv[0]), argv[1:]
    config = ShimConfig(**json.loads((work / "config.json").read_text()))
    command = arguments[0] if arguments else ""
    try:
        if command == "version":
            return passthrough_version(work, arguments)
        if command == "template":
            sys.stdout.buffer.write(render_template(work, config, arguments[1:]))
            return 0
        if command == "pull":
            raise Refused("helmCharts: a chart that is not vendored in the repository; Kustomize would download it "
                          "into the checkout, which syncer does not let it do: vendor it (" + vendor_hint(arguments, root=Path(config.root))
                          + ")")
        raise Refused(f"helm {command}: not a command Kustomize's helmCharts may run under syncer")
    except (Refused, helm.HelmError) as refused:
        message = str(refused)
    except LimitExceeded as exceeded:
        message = str(exceeded.problem)
    (work / REFUSAL_FILE).write_text(message)
    print(message, file=sys.stderr)
    return 1


def vendor_hint(pull_arguments: list[str], *, root: Path) -> str:
    """The `helm pull` command that vendors the chart Kustomize wanted, into the repository."""
    shown = [_relative(Path(item), root) if item.startswith(str(root)) else item for item in pull_arguments]
    return "helm " + " ".join(shown) + ", then commit it"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
