"""Finding (and on first use, installing) the control plane binaries.

The folder layout is envtest's `KUBEBUILDER_ASSETS`: one directory holding `etcd`,
`kube-apiserver` and `kube-controller-manager`, so a folder prepared for controller-runtime's
envtest works here too.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from syncer.errors import ConfigError

log = logging.getLogger(__name__)

K8S_VERSION = "1.20.2"
ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
BINARIES = (ETCD, APISERVER, CONTROLLER_MANAGER)
INSTALL_SCRIPT = Path(__file__).parent / "install-control-plane.sh"


def default_assets_dir() -> Path:
    """`SYNCER_CONTROL_PLANE_DIR`, else the per-user cache the install script fills."""
    configured = os.environ.get("SYNCER_CONTROL_PLANE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "syncer" / "control-plane" / f"v{K8S_VERSION}"


def missing_binaries(folder: Path) -> list[str]:
    """The binaries of BINARIES that are not an executable file in `folder`."""
    return [name for name in BINARIES if not os.access(folder / name, os.X_OK)]


def has_controller_manager(folder: Path) -> bool:
    return os.access(folder / CONTROLLER_MANAGER, os.X_OK)


def find_assets(*, install: bool = True) -> Path:
    """The folder holding the control plane binaries.

    `KUBEBUILDER_ASSETS` wins when set and is used as it is: envtest folders often lack
    kube-controller-manager, in which case the control plane runs without it (no garbage
    collection, namespaces never finish deleting) and a warning says so. Otherwise the
    binaries come from `default_assets_dir()`, built there by the packaged install script
    when missing and `install` is true.
    """
    envtest = os.environ.get("KUBEBUILDER_ASSETS")
    if envtest:
        return _check_envtest_assets(Path(envtest).expanduser())

    folder = default_assets_dir()
    missing = missing_binaries(folder)
    if not missing:
        return folder
    if not install:
        raise ConfigError(
            f"{folder}: missing {', '.join(missing)}; run {INSTALL_SCRIPT} {folder} "
            "(or set KUBEBUILDER_ASSETS to a folder that holds them)"
        )
    _run_install_script(folder)
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


def _run_install_script(folder: Path) -> None:
    """Runs the install script, copying its output line by line to stderr.

    The output goes through `sys.stderr.write` rather than handing the child our file
    descriptor, because under pytest or a redirected CLI `sys.stderr` may have none.
    """
    log.warning("control plane binaries missing in %s; building them (about 5 minutes)", folder)
    try:
        process = subprocess.Popen(
            ["bash", str(INSTALL_SCRIPT), str(folder)],
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
