"""A local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) for
tests, the README demo and users' CI; see `controlplane` and `syncer dev-cluster`."""

from syncer.devcluster.assets import find_assets
from syncer.devcluster.controlplane import ControlPlane
from syncer.devcluster.state import (
    ControlPlaneError,
    RunningControlPlane,
    alive_components,
    is_running,
    read_state,
    stop_detached,
)

__all__ = [
    "ControlPlane",
    "ControlPlaneError",
    "RunningControlPlane",
    "alive_components",
    "find_assets",
    "is_running",
    "read_state",
    "stop_detached",
]
