"""Pure pieces of the local control plane: command lines, the token file, the kubeconfig,
the audit policy. No processes and no I/O here, so each piece is checked by a unit test.

Paths are the layout of a control plane's work directory (`Layout`); ports and tokens are
chosen by the caller.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "syncer-admin"
RESTRICTED_USER = "syncer-restricted"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
ADMIN_CONTEXT = "admin"
RESTRICTED_CONTEXT = "restricted"
CLUSTER_NAME = "syncer-dev"
INSECURE_PORTS_REMOVED = (1, 24)
"""kube-apiserver's `--insecure-port` and kube-controller-manager's `--port` were removed in
1.24 (and are refused there); before it both opened unauthenticated plain-HTTP ports."""

Version = tuple[int, int, int]


def parse_binary_version(output: str) -> Version | None:
    """`Kubernetes v1.37.2` (what `kube-apiserver --version` prints) -> (1, 37, 2)."""
    found = re.search(r"\bv(\d+)\.(\d+)\.(\d+)", output)
    if found is None:
        return None
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


@dataclass(frozen=True)
class Layout:
    """Where everything of one control plane lives inside its work directory.

    Every process gets the work directory on its command line (data dir, cert dir or
    kubeconfig), which is how a later `dev-cluster down` recognises processes it may stop.
    """

    workdir: Path

    @property
    def etcd_data(self) -> Path:
        return self.workdir / "etcd"

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def serving_cert(self) -> Path:
        """Written by kube-apiserver itself (`--cert-dir`): its self-signed serving cert
        followed by the CA that signed it, so it doubles as the clients' trust bundle."""
        return self.pki / "apiserver.crt"

    @property
    def service_account_key(self) -> Path:
        return self.pki / "service-account.key"

    @property
    def token_file(self) -> Path:
        return self.pki / "tokens.csv"

    @property
    def audit_policy(self) -> Path:
        return self.workdir / "audit-policy.yaml"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def controller_manager_kubeconfig(self) -> Path:
        return self.pki / "controller-manager.kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.workdir / "state.json"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def audit_log(self) -> Path:
        return self.logs / "audit.log"

    def log_of(self, component: str) -> Path:
        return self.logs / f"{component}.log"


@dataclass(frozen=True)
class Ports:
    """Loopback ports of one control plane. kube-controller-manager serves nothing."""

    etcd_client: int
    etcd_peer: int
    apiserver: int


def etcd_args(
    binary: Path, *, layout: Layout, ports: Ports, supports_no_fsync: bool
) -> list[str]:
    """A single-member etcd on loopback.

    The test-speed options are the ones that lose nothing a throwaway cluster needs:
    `--unsafe-no-fsync` (only in etcd >= 3.5, hence the flag), a low snapshot count so the
    in-memory raft log stays small, and an explicit backend quota so a long benchmark run
    does not trip etcd's "no space" alarm on the 2 GiB default.
    """
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    args = [
        str(binary),
        "--name=default",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--initial-cluster-state=new",
        "--snapshot-count=10000",
        f"--quota-backend-bytes={8 * 1024**3}",
    ]
    if supports_no_fsync:
        args.append("--unsafe-no-fsync")
    return args


def apiserver_args(
    binary: Path, *, layout: Layout, ports: Ports, audit_log: bool, version: Version
) -> list[str]:
    """kube-apiserver `version` serving TLS on loopback only, with token auth and RBAC.

    `--insecure-port=0` matters before 1.24: 1.20 still opens an unauthenticated port 8080
    by default, which would both bypass RBAC and collide with other control planes on the
    machine. From 1.24 on the flag is gone and the port with it. The service-account issuer
    and signing key, optional in 1.20, are required since 1.22; they are passed to all.

    Current versions refuse a loopback `--advertise-address` while they maintain the
    `kubernetes` Service's endpoints ("may not be in the loopback range"), and loopback is
    all this control plane may listen on; nothing here runs pods that would call the API
    through that Service, so `--endpoint-reconciler-type=none` leaves its endpoints alone.
    """
    args = [
        str(binary),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        f"--cert-dir={layout.pki}",
        f"--secure-port={ports.apiserver}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        *(
            ["--insecure-port=0"]
            if version[:2] < INSECURE_PORTS_REMOVED
            else ["--endpoint-reconciler-type=none"]
        ),
        f"--token-auth-file={layout.token_file}",
        "--authorization-mode=RBAC",
        "--service-cluster-ip-range=10.0.0.0/24",
        f"--service-account-key-file={layout.service_account_key}",
        f"--service-account-signing-key-file={layout.service_account_key}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
        "--allow-privileged=true",
    ]
    if audit_log:
        args += [
            f"--audit-policy-file={layout.audit_policy}",
            f"--audit-log-path={layout.audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",
        ]
    return args


def controller_manager_args(binary: Path, *, layout: Layout, version: Version) -> list[str]:
    """kube-controller-manager with the default controllers (garbage collector, namespace
    deletion, deployments/replicasets, service-account tokens) and no listening port, so
    it needs no free port and cannot collide with anything.

    Its client rate limit is raised from 20 requests/s: deleting a namespace lists and
    deletes every namespaced resource type, and the garbage collector watches them all, so
    at the default rate these controllers fall behind a test or benchmark that writes fast.
    `--port=0` closes the insecure port of versions before 1.24, which have one.
    """
    return [
        str(binary),
        f"--kubeconfig={layout.controller_manager_kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        "--secure-port=0",
        *(["--port=0"] if version[:2] < INSECURE_PORTS_REMOVED else []),
        f"--service-account-private-key-file={layout.service_account_key}",
        f"--root-ca-file={layout.serving_cert}",
        "--use-service-account-credentials=false",
        "--controllers=*",
        "--kube-api-qps=200",
        "--kube-api-burst=400",
    ]


@dataclass(frozen=True)
class Tokens:
    """The bearer tokens of the three users the API server knows.

    kube-controller-manager has a user of its own (rather than the admin's) so that an audit
    log tells its requests apart from those of the program under test.
    """

    admin: str = field(repr=False)
    restricted: str = field(repr=False)
    controller_manager: str = field(repr=False)

    @classmethod
    def generate(cls) -> Tokens:
        # URL-safe tokens contain no comma, which the CSV token file could not hold.
        return cls(
            admin=secrets.token_urlsafe(32),
            restricted=secrets.token_urlsafe(32),
            controller_manager=secrets.token_urlsafe(32),
        )


def token_file(tokens: Tokens) -> str:
    """The apiserver's static token file (`token,user,uid,"group1,group2"` rows).

    The admin and kube-controller-manager are in `system:masters` (RBAC lets them do
    anything); the restricted user is in no group at all, so it may do only what a test
    grants it through RBAC.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([tokens.admin, ADMIN_USER, ADMIN_USER, "system:masters"])
    writer.writerow([tokens.restricted, RESTRICTED_USER, RESTRICTED_USER])
    writer.writerow(
        [
            tokens.controller_manager,
            CONTROLLER_MANAGER_USER,
            CONTROLLER_MANAGER_USER,
            "system:masters",
        ]
    )
    return out.getvalue()


def kubeconfig(*, server: str, ca_file: Path, tokens: Tokens) -> dict[str, Any]:
    """The users' kubeconfig: contexts `admin` (current) and `restricted`, verifying the
    server's certificate against the apiserver's own bundle rather than skipping TLS
    verification."""
    return _kubeconfig(
        server=server,
        ca_file=ca_file,
        users=[
            (ADMIN_CONTEXT, ADMIN_USER, tokens.admin),
            (RESTRICTED_CONTEXT, RESTRICTED_USER, tokens.restricted),
        ],
    )


def controller_manager_kubeconfig(
    *, server: str, ca_file: Path, tokens: Tokens
) -> dict[str, Any]:
    """kube-controller-manager's own kubeconfig (one context, its own user)."""
    return _kubeconfig(
        server=server,
        ca_file=ca_file,
        users=[("controller-manager", CONTROLLER_MANAGER_USER, tokens.controller_manager)],
    )


def _kubeconfig(
    *, server: str, ca_file: Path, users: list[tuple[str, str, str]]
) -> dict[str, Any]:
    """A kubeconfig with one context per (context, user, token); the first is current."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}} for _, user, token in users],
        "contexts": [
            {"name": context, "context": {"cluster": CLUSTER_NAME, "user": user}}
            for context, user, _ in users
        ],
        "current-context": users[0][0],
    }


def audit_policy() -> dict[str, Any]:
    """Log every request once, at `Metadata` level (verb, user, resource, status; no bodies).

    `RequestReceived` is omitted so that each request yields exactly one event
    (`ResponseComplete`, or `Panic`), which is what counting requests by verb needs.
    """
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [{"level": "Metadata"}],
    }
