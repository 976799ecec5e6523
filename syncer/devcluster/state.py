"""A control plane as recorded in `<workdir>/state.json`, and what can be done with it
from any process: check that it runs, stop it, clean up its files.

`syncer dev-cluster up` starts a control plane detached and exits; `status` and `down` are
later, separate processes that know it only from this file.
"""

from __future__ import annotations

import json
import shutil
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncer.devcluster import processes
from syncer.devcluster.assets import APISERVER, CONTROLLER_MANAGER, ETCD
from syncer.devcluster.config import Layout, Ports
from syncer.errors import SyncerError

STOP_TIMEOUT = 10.0


class ControlPlaneError(SyncerError):
    """The control plane could not be started, or its state file is unusable."""


@dataclass(frozen=True)
class RunningControlPlane:
    """A started control plane: where it listens, its processes, its files."""

    workdir: Path
    kubeconfig: Path
    server: str
    ports: Ports
    etcd_pid: int
    apiserver_pid: int
    controller_manager_pid: int | None
    audit_log: Path | None
    detached: bool
    admin_token: str = field(repr=False)
    server_version: str = "unknown"
    """What the API server's `/version` said once ready (`v1.37.2`)."""

    @property
    def layout(self) -> Layout:
        return Layout(self.workdir)

    @property
    def logs(self) -> Path:
        return self.layout.logs

    def pids(self) -> dict[str, int]:
        """Component name -> pid of every process it runs."""
        found = {ETCD: self.etcd_pid, APISERVER: self.apiserver_pid}
        if self.controller_manager_pid is not None:
            found[CONTROLLER_MANAGER] = self.controller_manager_pid
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "workdir": str(self.workdir),
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "ports": {
                "etcd_client": self.ports.etcd_client,
                "etcd_peer": self.ports.etcd_peer,
                "apiserver": self.ports.apiserver,
            },
            "pids": self.pids(),
            "audit_log": str(self.audit_log) if self.audit_log else None,
            "detached": self.detached,
            "admin_token": self.admin_token,
            "server_version": self.server_version,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunningControlPlane:
        pids = data["pids"]
        return cls(
            workdir=Path(data["workdir"]),
            kubeconfig=Path(data["kubeconfig"]),
            server=str(data["server"]),
            ports=Ports(**{k: int(v) for k, v in data["ports"].items()}),
            etcd_pid=int(pids[ETCD]),
            apiserver_pid=int(pids[APISERVER]),
            controller_manager_pid=(
                int(pids[CONTROLLER_MANAGER]) if CONTROLLER_MANAGER in pids else None
            ),
            audit_log=Path(data["audit_log"]) if data.get("audit_log") else None,
            detached=bool(data["detached"]),
            admin_token=str(data["admin_token"]),
            server_version=str(data.get("server_version", "unknown")),
        )


def http_ok(
    url: str,
    *,
    token: str | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 0.5,
) -> bool:
    """Whether GET `url` answers 2xx. The timeout is short because a starting apiserver
    accepts connections well before it completes TLS handshakes, and a poll stuck in such a
    handshake would delay noticing readiness by the whole timeout."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError):
        return False


def http_get_json(
    url: str, *, token: str, context: ssl.SSLContext, timeout: float = 5.0
) -> dict[str, Any] | None:
    """The JSON object GET `url` answers, None when it cannot be had."""
    request = urllib.request.Request(url)
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            data = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_workdir(layout: Layout, *, keep_logs: bool, whole: bool) -> None:
    """Removes what a control plane wrote into its work directory.

    Only known entries are removed (the directory may be one the user chose), then the
    directory itself if it became empty or `whole` says we created it.
    """
    entries = [
        layout.etcd_data,
        layout.pki,
        layout.kubeconfig,
        layout.audit_policy,
        layout.state_file,
    ]
    if not keep_logs:
        entries.append(layout.logs)
    for entry in entries:
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    if whole and not keep_logs:
        shutil.rmtree(layout.workdir, ignore_errors=True)
    else:
        try:
            layout.workdir.rmdir()
        except OSError:
            pass  # not empty: logs kept, or files that are not ours


def read_state(workdir: Path) -> RunningControlPlane | None:
    """The control plane recorded in `<workdir>/state.json`, None when there is none.

    It may no longer run: see `is_running`.
    """
    path = Layout(workdir.resolve()).state_file
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ControlPlaneError(f"{path}: unreadable state file ({error}); remove it") from error
    try:
        return RunningControlPlane.from_json(data)
    except (KeyError, TypeError, ValueError) as error:
        raise ControlPlaneError(
            f"{path}: not a control plane state file ({error}); remove it"
        ) from error


def _detached_processes(state: RunningControlPlane) -> dict[str, processes.Detached]:
    marker = str(state.workdir)
    return {
        name: processes.Detached(pid, marker=marker) for name, pid in state.pids().items()
    }


def alive_components(state: RunningControlPlane) -> dict[str, bool]:
    """Component name -> whether its recorded process still runs."""
    return {name: p.poll() is None for name, p in _detached_processes(state).items()}


def is_running(state: RunningControlPlane) -> bool:
    """Every recorded process runs and the API server answers `/readyz`.

    The timeout is generous: `dev-cluster up` replaces a control plane found not running,
    and a busy one must not be mistaken for a broken one.
    """
    if not all(alive_components(state).values()) or not state.layout.serving_cert.exists():
        return False
    context = ssl.create_default_context(cafile=str(state.layout.serving_cert))
    return http_ok(
        state.server + "/readyz", token=state.admin_token, context=context, timeout=5.0
    )


def stop_detached(workdir: Path, *, keep_logs: bool = False) -> RunningControlPlane | None:
    """Stops the control plane recorded in `<workdir>/state.json` and removes its files.

    Returns what was recorded, or None when there was no state file. Only processes whose
    command line still names the work directory are signalled, so a pid reused by another
    program since is left alone.
    """
    state = read_state(workdir)
    if state is None:
        return None
    found = _detached_processes(state)
    front = [found[name] for name in (APISERVER, CONTROLLER_MANAGER) if name in found]
    processes.terminate(front, timeout=STOP_TIMEOUT)
    processes.terminate([found[ETCD]], timeout=STOP_TIMEOUT)
    remove_workdir(state.layout, keep_logs=keep_logs, whole=False)
    return state
