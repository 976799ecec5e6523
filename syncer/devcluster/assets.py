"""Finding (and on first use, installing) the control plane binaries of a Kubernetes version.

The folder layout is envtest's `KUBEBUILDER_ASSETS`: one directory holding `etcd`,
`kube-apiserver` and `kube-controller-manager`, so a folder prepared for controller-runtime's
envtest works here too. Each version has its own folder,
`~/.cache/syncer/control-plane/v1.N.x`.

The known versions are read from the repository, not listed here: each folder
`kubernetes/v1.N` beside this module is a Go module pinning `k8s.io/kubernetes v1.N.x`, and
1.20, the oldest supported, is built from Debian's source package. The default is the newest.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

from syncer.errors import ConfigError

log = logging.getLogger(__name__)

LEGACY_VERSION = "1.20.2"
"""The oldest supported version, the only one not built from Go modules."""
MODULES_DIR = Path(__file__).parent / "kubernetes"
VERSION_ENV = "SYNCER_KUBERNETES_VERSION"
ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
BINARIES = (ETCD, APISERVER, CONTROLLER_MANAGER)
INSTALL_SCRIPT = Path(__file__).parent / "install-control-plane.sh"
BUILD_TIME = "about 20 minutes on 2 cores the first time"
"""A build from Go modules with an empty module and build cache (see the README)."""


_PINNED = re.compile(
    r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+v(1\.\d+\.\d+)\s*(?://.*)?$", re.MULTILINE
)


@cache
def known_versions() -> dict[str, str]:
    """Minor version -> the full version syncer builds for it, newest first."""
    found = {_minor(LEGACY_VERSION): LEGACY_VERSION}
    for go_mod in MODULES_DIR.glob("v1.*/go.mod"):
        pinned = _PINNED.search(go_mod.read_text())
        if pinned is None:
            raise ConfigError(f"{go_mod}: pins no k8s.io/kubernetes v1.N.x")
        found[_minor(pinned.group(1))] = pinned.group(1)
    return dict(sorted(found.items(), key=lambda item: _key(item[1]), reverse=True))


def current_version() -> str:
    """The newest known version: what `dev-cluster up` starts unless told otherwise."""
    return next(iter(known_versions().values()))


def resolve_version(requested: str | None) -> str:
    """The full version for `requested` (`1.37`, `v1.37` or `1.37.2`), else for
    `SYNCER_KUBERNETES_VERSION`, else the current one. A version syncer has no build for is
    refused with the list of those it has; a patch version must be the one pinned."""
    wanted = requested or os.environ.get(VERSION_ENV) or current_version()
    wanted = wanted.removeprefix("v")
    known = known_versions()
    full = known.get(_minor(wanted)) if re.fullmatch(r"1\.\d+(\.\d+)?", wanted) else None
    if full is None or (wanted.count(".") == 2 and wanted != full):
        source = "" if requested else f" (from {VERSION_ENV})"
        raise ConfigError(
            f"Kubernetes {wanted}{source}: not a version syncer builds; known: "
            + ", ".join(known)
        )
    return full


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def default_assets_dir(version: str | None = None) -> Path:
    """`SYNCER_CONTROL_PLANE_DIR`, else the per-user cache folder of `version` (see
    `resolve_version`) that the install script fills."""
    configured = os.environ.get("SYNCER_CONTROL_PLANE_DIR")
    if configured:
        return Path(configured).expanduser()
    full = resolve_version(version)
    return Path.home() / ".cache" / "syncer" / "control-plane" / f"v{full}"


def missing_binaries(folder: Path) -> list[str]:
    """The binaries of BINARIES that are not an executable file in `folder`."""
    return [name for name in BINARIES if not os.access(folder / name, os.X_OK)]


def has_controller_manager(folder: Path) -> bool:
    return os.access(folder / CONTROLLER_MANAGER, os.X_OK)


def find_assets(*, version: str | None = None, install: bool = True) -> Path:
    """The folder holding the control plane binaries of `version` (see `resolve_version`).

    `KUBEBUILDER_ASSETS` wins when set and is used as it is, whatever version it holds:
    envtest folders often lack kube-controller-manager, in which case the control plane runs
    without it (no garbage collection, namespaces never finish deleting) and a warning says
    so. Otherwise the binaries come from `default_assets_dir(version)`, built there by the
    packaged install script when missing and `install` is true.
    """
    envtest = os.environ.get("KUBEBUILDER_ASSETS")
    if envtest:
        return _check_envtest_assets(Path(envtest).expanduser())

    full = resolve_version(version)
    folder = default_assets_dir(full)
    missing = missing_binaries(folder)
    if not missing:
        return folder
    command = f"{INSTALL_SCRIPT} --kubernetes-version {_minor(full)} {folder}"
    if not install:
        raise ConfigError(
            f"{folder}: missing {', '.join(missing)}; run {command} "
            "(or set KUBEBUILDER_ASSETS to a folder that holds them)"
        )
    _run_install_script(folder, version=full)
    missing = missing_binaries(folder)
    if missing:
        raise ConfigError(
            f"{folder}: the install script succeeded but {', '.join(missing)} "
            f"are still missing; check {INSTALL_SCRIPT}"
        )
    return folder


def _check_envtest_assets(folder: Path) -> Path:
    missing = missing_binaries(folder)
    required_missing = [name for name in missing if name != CONTROLLER_MANAGER]
    if required_missing:
        raise ConfigError(
            f"KUBEBUILDER_ASSETS={folder}: missing {', '.join(required_missing)}; point it "
            "at a folder holding etcd and kube-apiserver, or unset it to use syncer's own"
        )
    if CONTROLLER_MANAGER in missing:
        log.warning(
            "KUBEBUILDER_ASSETS=%s has no %s: running without it, so garbage collection "
            "and namespace deletion will not happen",
            folder,
            CONTROLLER_MANAGER,
        )
    return folder


def _run_install_script(folder: Path, *, version: str) -> None:
    """Runs the install script, copying its output (the build's progress) line by line to
    stderr.

    The output goes through `sys.stderr.write` rather than handing the child our file
    descriptor, because under pytest or a redirected CLI `sys.stderr` may have none.
    """
    log.warning(
        "Kubernetes %s: control plane binaries missing in %s; building them (%s)",
        version,
        folder,
        "about 5 minutes" if version == LEGACY_VERSION else BUILD_TIME,
    )
    try:
        process = subprocess.Popen(
            ["bash", str(INSTALL_SCRIPT), "--kubernetes-version", _minor(version), str(folder)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    except OSError as error:
        raise ConfigError(f"{INSTALL_SCRIPT}: cannot run it: {error}") from error
    assert process.stdout is not None
    with process:
        for line in process.stdout:
            sys.stderr.write(line)
    if process.returncode != 0:
        raise ConfigError(
            f"{INSTALL_SCRIPT}: failed with exit code {process.returncode} installing into "
            f"{folder} (output above); fix the cause and rerun, or set KUBEBUILDER_ASSETS"
        )
