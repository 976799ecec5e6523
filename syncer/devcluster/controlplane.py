"""A local Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager as
plain processes on free loopback ports, envtest-style. No scheduler and no kubelet, so pods
are created but never run; everything syncer does (apply, diff, prune, RBAC, garbage
collection, namespace deletion) behaves as on a real cluster.

    with ControlPlane(audit_log=True) as running:
        ... use running.kubeconfig (contexts `admin` and `restricted`) ...

`syncer dev-cluster up` starts one detached (it outlives the command) and records it in
`<workdir>/state.json`; see `syncer.devcluster.state` for what works from that file.
"""

from __future__ import annotations

import json
import logging
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import TracebackType

import yaml

from syncer.devcluster import config, processes
from syncer.devcluster.assets import (
    APISERVER,
    CONTROLLER_MANAGER,
    ETCD,
    find_assets,
    has_controller_manager,
)
from syncer.devcluster.config import Layout, Ports, Version
from syncer.devcluster.state import (
    STOP_TIMEOUT,
    ControlPlaneError,
    RunningControlPlane,
    http_get_json,
    http_ok,
    remove_workdir,
)

log = logging.getLogger(__name__)

_PORT_ATTEMPTS = 3


class _PortTaken(ControlPlaneError):
    """A port chosen as free was taken by someone else before our process bound it."""


class ControlPlane:
    """Starts and stops one local control plane.

    `workdir` holds everything (etcd data, certificates, kubeconfig, logs); when omitted a
    temporary directory is made and removed again by `stop()`. `detached` processes outlive
    this Python process (for `syncer dev-cluster up`); attached ones die with it.
    `kubernetes_version` (a minor version such as `1.20`) picks the binaries when `assets`
    is not given; see `syncer.devcluster.assets.resolve_version`.
    """

    def __init__(
        self,
        *,
        workdir: Path | None = None,
        assets: Path | None = None,
        kubernetes_version: str | None = None,
        audit_log: bool = False,
        detached: bool = False,
        ready_timeout: float = 60.0,
    ) -> None:
        self._owns_workdir = workdir is None
        self.layout = Layout(
            Path(tempfile.mkdtemp(prefix="syncer-cp-")) if workdir is None else workdir.resolve()
        )
        self._assets = assets
        self._kubernetes_version = kubernetes_version
        self._audit_log = audit_log
        self._detached = detached
        self._ready_timeout = ready_timeout
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._running: RunningControlPlane | None = None

    @property
    def running(self) -> RunningControlPlane:
        if self._running is None:
            raise ControlPlaneError(f"{self.layout.workdir}: the control plane is not running")
        return self._running

    def __enter__(self) -> RunningControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop(keep_logs=exc is not None)

    def start(self) -> RunningControlPlane:
        """Starts the processes and returns once the API server answers `/readyz` and the
        `default` namespace exists. On failure nothing keeps running and the logs stay."""
        if self._running is not None:
            return self._running
        assets = self._assets or find_assets(version=self._kubernetes_version)
        started = time.monotonic()
        # Logs of an earlier run in this workdir would be mistaken for this one's. Retries
        # below append, so a port race stays visible.
        shutil.rmtree(self.layout.logs, ignore_errors=True)
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            etcd_client, etcd_peer, apiserver = processes.free_ports(3)
            ports = Ports(etcd_client=etcd_client, etcd_peer=etcd_peer, apiserver=apiserver)
            try:
                self._running = self._start_once(assets, ports)
            except _PortTaken as error:
                self._kill_all()
                if attempt == _PORT_ATTEMPTS:
                    raise ControlPlaneError(
                        f"{self.layout.workdir}: no free ports after {attempt} attempts: {error}"
                    ) from error
                log.info("port race (%s); retrying with other ports", error)
            except BaseException:
                self._kill_all()
                raise
            else:
                break
        log.info(
            "control plane ready at %s in %.1fs (workdir %s)",
            self.running.server,
            time.monotonic() - started,
            self.layout.workdir,
        )
        return self.running

    def stop(self, *, keep_logs: bool = False) -> None:
        """Stops the processes and removes the work files; safe to call more than once."""
        self._kill_all()
        self._running = None
        remove_workdir(self.layout, keep_logs=keep_logs, whole=self._owns_workdir)

    def _kill_all(self) -> None:
        # etcd last: the others would spend their shutdown retrying a vanished etcd.
        front = [
            self._processes[name]
            for name in (APISERVER, CONTROLLER_MANAGER)
            if name in self._processes
        ]
        processes.terminate(front, timeout=STOP_TIMEOUT)
        if ETCD in self._processes:
            processes.terminate([self._processes[ETCD]], timeout=STOP_TIMEOUT)
        for process in self._processes.values():
            process.wait()
        self._processes.clear()

    def _start_once(self, assets: Path, ports: Ports) -> RunningControlPlane:
        layout = self.layout
        _prepare_files(layout, audit_log=self._audit_log)
        tokens = config.Tokens.generate()
        _write_private(layout.token_file, config.token_file(tokens))
        server = f"https://127.0.0.1:{ports.apiserver}"
        for path, render in (
            (layout.kubeconfig, config.kubeconfig),
            (layout.controller_manager_kubeconfig, config.controller_manager_kubeconfig),
        ):
            rendered = render(server=server, ca_file=layout.serving_cert, tokens=tokens)
            _write_private(path, yaml.safe_dump(rendered, sort_keys=False))
        deadline = time.monotonic() + self._ready_timeout
        version = _binary_version(assets / APISERVER)

        etcd_binary = assets / ETCD
        self._spawn(
            ETCD,
            config.etcd_args(
                etcd_binary,
                layout=layout,
                ports=ports,
                supports_no_fsync=_etcd_supports_no_fsync(etcd_binary),
            ),
        )
        # The apiserver retries its etcd connection, so it starts while etcd is still
        # coming up; that overlap is a good part of the startup time.
        self._spawn(
            APISERVER,
            config.apiserver_args(
                assets / APISERVER,
                layout=layout,
                ports=ports,
                audit_log=self._audit_log,
                version=version,
            ),
        )
        self._wait_for(
            lambda: http_ok(f"http://127.0.0.1:{ports.etcd_client}/health"),
            what="etcd to report healthy",
            deadline=deadline,
        )
        self._wait_for(
            layout.serving_cert.exists, what="kube-apiserver's certificate", deadline=deadline
        )
        context = ssl.create_default_context(cafile=str(layout.serving_cert))
        self._wait_for(
            lambda: http_ok(server + "/readyz", token=tokens.admin, context=context),
            what="kube-apiserver /readyz",
            deadline=deadline,
        )
        # Readiness precedes the creation of `default`, and tests may use it at once.
        self._wait_for(
            lambda: http_ok(
                server + "/api/v1/namespaces/default", token=tokens.admin, context=context
            ),
            what="the default namespace",
            deadline=deadline,
        )
        if has_controller_manager(assets):
            self._spawn(
                CONTROLLER_MANAGER,
                config.controller_manager_args(
                    assets / CONTROLLER_MANAGER, layout=layout, version=version
                ),
            )
        self._check_alive()
        served = http_get_json(server + "/version", token=tokens.admin, context=context)
        server_version = str(served.get("gitVersion", "")) if served else ""

        running = RunningControlPlane(
            workdir=layout.workdir,
            kubeconfig=layout.kubeconfig,
            server=server,
            ports=ports,
            etcd_pid=self._processes[ETCD].pid,
            apiserver_pid=self._processes[APISERVER].pid,
            controller_manager_pid=(
                self._processes[CONTROLLER_MANAGER].pid
                if CONTROLLER_MANAGER in self._processes
                else None
            ),
            audit_log=layout.audit_log if self._audit_log else None,
            detached=self._detached,
            admin_token=tokens.admin,
            server_version=server_version or "unknown",
        )
        _write_private(layout.state_file, json.dumps(running.to_json(), indent=2) + "\n")
        return running

    def _spawn(self, name: str, argv: list[str]) -> None:
        log.debug("starting %s: %s", name, " ".join(argv))
        try:
            self._processes[name] = processes.spawn(
                argv, log_file=self.layout.log_of(name), detached=self._detached
            )
        except OSError as error:
            raise ControlPlaneError(f"{argv[0]}: cannot start {name}: {error}") from error

    def _check_alive(self) -> None:
        """Raises with the end of its log when a process has exited."""
        for name, process in self._processes.items():
            code = process.poll()
            if code is None:
                continue
            log_file = self.layout.log_of(name)
            output = processes.tail(log_file)
            if "address already in use" in output:
                raise _PortTaken(f"{name} could not bind its port")
            raise ControlPlaneError(
                f"{name} exited with code {code} during startup; end of {log_file}:\n{output}"
            )

    def _wait_for(self, check: Callable[[], bool], *, what: str, deadline: float) -> None:
        began = time.monotonic()
        while True:
            self._check_alive()
            if check():
                log.debug("waited %.2fs for %s", time.monotonic() - began, what)
                return
            if time.monotonic() >= deadline:
                logs = "\n".join(
                    f"--- end of {self.layout.log_of(name)}:\n"
                    f"{processes.tail(self.layout.log_of(name), lines=10)}"
                    for name in self._processes
                )
                raise ControlPlaneError(
                    f"{self.layout.workdir}: timed out after {self._ready_timeout:.0f}s "
                    f"waiting for {what}\n{logs}"
                )
            time.sleep(0.1)


@cache
def _binary_version(binary: Path) -> Version:
    """The version `kube-apiserver --version` states, which decides the flags it accepts.

    Asked of the binary rather than taken from the requested version because a
    `KUBEBUILDER_ASSETS` folder may hold any version.
    """
    try:
        result = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ControlPlaneError(f"{binary}: cannot run it: {error}") from error
    version = config.parse_binary_version(result.stdout + result.stderr)
    if version is None:
        raise ControlPlaneError(
            f"{binary} --version: no version in its output "
            f"{(result.stdout + result.stderr).strip()!r}"
        )
    return version


@cache
def _etcd_supports_no_fsync(binary: Path) -> bool:
    """Whether this etcd has `--unsafe-no-fsync` (3.5 and later; 3.4 refuses to start)."""
    try:
        result = subprocess.run(
            [str(binary), "--help"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--unsafe-no-fsync" in result.stdout + result.stderr


def _write_private(path: Path, text: str) -> None:
    """Writes a file only its owner can read: kubeconfigs and state files hold tokens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def _prepare_files(layout: Layout, *, audit_log: bool) -> None:
    """A clean slate for everything but the logs, plus the service-account signing key.

    The key comes from `openssl genrsa` rather than Python to avoid a cryptography
    dependency; kube-apiserver signs service-account tokens with it and kube-controller-
    manager signs the legacy token secrets.
    """
    for stale in (layout.etcd_data, layout.pki):
        shutil.rmtree(stale, ignore_errors=True)
    layout.pki.mkdir(parents=True, mode=0o700)
    layout.logs.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["openssl", "genrsa", "-out", str(layout.service_account_key), "2048"],
            capture_output=True,
            check=True,
            timeout=60,
        )
    except FileNotFoundError as error:
        raise ControlPlaneError(
            "openssl: not found; install it (it generates the service-account key)"
        ) from error
    except subprocess.CalledProcessError as error:
        raise ControlPlaneError(
            f"openssl genrsa failed: {error.stderr.decode(errors='replace').strip()}"
        ) from error
    if audit_log:
        layout.audit_policy.write_text(yaml.safe_dump(config.audit_policy(), sort_keys=False))
