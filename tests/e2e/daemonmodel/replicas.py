"""`syncer run --shard` replicas as processes, with the daemon's own service account: start,
stop (SIGTERM), kill (SIGKILL), pause and resume (SIGSTOP/SIGCONT), and which one owns an App (rendezvous
hashing over the membership Leases, as the replicas compute it)."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from syncer.daemon.membership import MEMBER_LABEL, URL_ANNOTATION
from syncer.daemon.rendezvous import owner
from tests.e2e.apps import SLACK, eventually
from tests.e2e.daemonmodel.lab import DAEMON_NAMESPACE, Lab
from tests.e2e.test_daemon import SYNCER, free_port, get

LEASE_SECONDS = 4
REQUEST_TIMEOUT = "10s"
"""Each write's server-side bound: a takeover may wait the lease plus this."""


@dataclass
class Replica:
    index: int
    port: int
    log: Path
    process: subprocess.Popen[bytes]
    paused: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None


class Replicas:
    def __init__(self, lab: Lab, *, namespaces: list[str], workdir: Path) -> None:
        self.lab = lab
        self.namespaces = namespaces
        self.workdir = workdir
        self.running: list[Replica] = []
        self.started = 0

    def start(self) -> Replica:
        port = free_port()
        log = self.workdir / f"replica-{self.started}.log"
        watched = [arg for namespace in self.namespaces for arg in ("--watch-namespace", namespace)]
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "SYNCER_WEBHOOK_SECRET")}
        with log.open("wb") as stderr:
            process = subprocess.Popen(
                [str(SYNCER), "run", "--shard", *watched, "--require-service-account", "--allow-local-repos",
                 "--leader-election-namespace", DAEMON_NAMESPACE, "--lease-duration", f"{LEASE_SECONDS}s",
                 "--request-timeout", REQUEST_TIMEOUT, "--listen", f"127.0.0.1:{port}", "--log-format", "json",
                 "--kubeconfig", str(self.lab.daemon_kubeconfig), "--cache-dir", str(self.workdir / f"cache-{self.started}")],
                stdout=subprocess.DEVNULL, stderr=stderr, env=env,
            )
        replica = Replica(index=self.started, port=port, log=log, process=process)
        self.started += 1
        self.running.append(replica)
        eventually(lambda: get(replica.url + "/healthz")[0] == 200 or not replica.alive(), timeout=SLACK,
                   what=f"replica {replica.index} to serve /healthz", interval=0.2)
        assert replica.alive(), log.read_text()[-4000:]
        return replica

    def members(self) -> dict[str, str]:
        """URL -> identity of every membership Lease."""
        leases: Any = client.CoordinationV1Api(self.lab.api).list_namespaced_lease(
            DAEMON_NAMESPACE, label_selector=f"{MEMBER_LABEL}=true").items
        return {str((lease.metadata.annotations or {}).get(URL_ANNOTATION)): str(lease.spec.holder_identity)
                for lease in leases}

    def wait_members(self) -> None:
        """Every running replica holds its membership Lease, and no other Lease is left."""
        urls = {replica.url for replica in self.running}
        eventually(lambda: set(self.members()) == urls, timeout=LEASE_SECONDS + SLACK,
                   what=f"{len(urls)} membership Lease(s)", interval=0.3)

    def owner_of(self, app: str) -> Replica:
        """The replica that owns `namespace/name` by rendezvous over the live members."""
        members = self.members()
        identity = owner(app, members.values())
        url = next(u for u, i in members.items() if i == identity)
        return next(replica for replica in self.running if replica.url == url)

    def pause(self, replica: Replica) -> None:
        replica.process.send_signal(signal.SIGSTOP)
        replica.paused = True

    def resume(self, replica: Replica) -> None:
        replica.process.send_signal(signal.SIGCONT)
        replica.paused = False

    def stop(self, replica: Replica) -> int:
        if replica.paused:
            self.resume(replica)
        replica.process.send_signal(signal.SIGTERM)
        try:
            code = replica.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            code = replica.process.wait()
        self.running.remove(replica)
        return code

    def kill(self, replica: Replica) -> None:
        """SIGKILL: no chance to finish a write, release a Lease or record anything."""
        replica.process.kill()
        replica.process.wait()
        self.running.remove(replica)

    def stop_all(self) -> None:
        for replica in list(self.running):
            self.stop(replica)

    def logs(self) -> str:
        return ", ".join(str(self.workdir / f"replica-{n}.log") for n in range(self.started))
