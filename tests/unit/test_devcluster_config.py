"""The control plane's configuration: what the Kubernetes client and the processes are given."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
import yaml
from tests.conftest import namespace_name
from kubernetes import config as kube_config

from syncer.devcluster import config
from syncer.devcluster.config import Layout, Ports

LAYOUT = Layout(Path("/work/cp-1"))
PORTS = Ports(etcd_client=2379, etcd_peer=2380, apiserver=6443)
BIN = Path("/opt/bin")
TOKENS = config.Tokens(
    admin="admin-secret", restricted="restricted-secret", controller_manager="kcm-secret"
)


def _write_kubeconfig(tmp_path: Path) -> Path:
    ca_file = tmp_path / "apiserver.crt"
    ca_file.write_text("-----BEGIN CERTIFICATE-----\n")
    path = tmp_path / "kubeconfig"
    rendered = config.kubeconfig(server="https://127.0.0.1:6443", ca_file=ca_file, tokens=TOKENS)
    path.write_text(yaml.safe_dump(rendered))
    return path


def test_kubeconfig_has_admin_current_and_restricted(tmp_path: Path) -> None:
    contexts, current = kube_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
        config_file=str(_write_kubeconfig(tmp_path))
    )

    assert current["name"] == "admin"
    assert {c["name"] for c in contexts} == {"admin", "restricted"}


@pytest.mark.parametrize(
    ("context", "token"), [("admin", "admin-secret"), ("restricted", "restricted-secret")]
)
def test_kubernetes_client_uses_token_and_verifies_tls(
    tmp_path: Path, context: str, token: str
) -> None:
    path = _write_kubeconfig(tmp_path)

    api = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(path), context=context
    )
    with api:
        settings = api.configuration

    assert settings.host == "https://127.0.0.1:6443"
    assert settings.auth_settings()["BearerToken"] == {
        "in": "header",
        "key": "authorization",
        "type": "api_key",
        "value": f"Bearer {token}",
    }
    assert settings.verify_ssl is True
    assert settings.ssl_ca_cert == str(tmp_path / "apiserver.crt")


def test_controller_manager_has_a_kubeconfig_of_its_own(tmp_path: Path) -> None:
    """Its requests must be told apart from the admin's in the audit log."""
    rendered = config.controller_manager_kubeconfig(
        server="https://127.0.0.1:6443", ca_file=tmp_path / "ca.crt", tokens=TOKENS
    )

    (user,) = rendered["users"]
    assert user == {"name": "system:kube-controller-manager", "user": {"token": "kcm-secret"}}


def test_token_file_makes_only_admin_and_controller_manager_privileged() -> None:
    rows = list(csv.reader(io.StringIO(config.token_file(TOKENS))))

    assert rows == [
        ["admin-secret", "syncer-admin", "syncer-admin", "system:masters"],
        ["restricted-secret", "syncer-restricted", "syncer-restricted"],
        [
            "kcm-secret",
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            "system:masters",
        ],
    ]


def test_generated_tokens_fit_the_token_file() -> None:
    tokens = config.Tokens.generate()

    rows = list(csv.reader(io.StringIO(config.token_file(tokens))))
    assert [row[0] for row in rows] == [tokens.admin, tokens.restricted, tokens.controller_manager]
    assert len({tokens.admin, tokens.restricted, tokens.controller_manager}) == 3


def _all_command_lines(
    *, audit_log: bool, no_fsync: bool, version: config.Version = (1, 37, 2)
) -> dict[str, list[str]]:
    return {
        "etcd": config.etcd_args(
            BIN / "etcd", layout=LAYOUT, ports=PORTS, supports_no_fsync=no_fsync
        ),
        "kube-apiserver": config.apiserver_args(
            BIN / "kube-apiserver",
            layout=LAYOUT,
            ports=PORTS,
            audit_log=audit_log,
            version=version,
        ),
        "kube-controller-manager": config.controller_manager_args(
            BIN / "kube-controller-manager", layout=LAYOUT, version=version
        ),
    }


@pytest.mark.parametrize("component", ["etcd", "kube-apiserver", "kube-controller-manager"])
def test_every_command_line_names_the_workdir(component: str) -> None:
    """`dev-cluster down` signals a recorded pid only if its command line names the workdir."""
    argv = _all_command_lines(audit_log=False, no_fsync=False)[component]

    assert argv[0] == str(BIN / component)
    assert any(str(LAYOUT.workdir) in arg for arg in argv[1:])


@pytest.mark.parametrize("version", [(1, 20, 2), (1, 37, 2)])
def test_apiserver_serves_tls_on_loopback_only(version: config.Version) -> None:
    argv = _all_command_lines(audit_log=False, no_fsync=False, version=version)[
        "kube-apiserver"
    ]

    assert "--bind-address=127.0.0.1" in argv
    assert "--secure-port=6443" in argv
    assert "--etcd-servers=http://127.0.0.1:2379" in argv
    assert "--authorization-mode=RBAC" in argv


def test_etcd_listens_on_the_chosen_loopback_ports() -> None:
    argv = _all_command_lines(audit_log=False, no_fsync=False)["etcd"]

    urls = [arg.split("=", 1)[1] for arg in argv if re.match(r"--(listen|advertise)-client", arg)]
    assert urls == ["http://127.0.0.1:2379", "http://127.0.0.1:2379"]
    assert "--initial-cluster=default=http://127.0.0.1:2380" in argv


@pytest.mark.parametrize("audit_log", [True, False])
def test_audit_flags_only_when_asked(audit_log: bool) -> None:
    argv = _all_command_lines(audit_log=audit_log, no_fsync=False)["kube-apiserver"]

    audit = [arg for arg in argv if arg.startswith("--audit-")]
    if audit_log:
        assert f"--audit-log-path={LAYOUT.audit_log}" in audit
        assert f"--audit-policy-file={LAYOUT.audit_policy}" in audit
    else:
        assert audit == []


@pytest.mark.parametrize("supported", [True, False])
def test_etcd_no_fsync_only_when_supported(supported: bool) -> None:
    """etcd 3.4 refuses to start on an unknown flag."""
    argv = _all_command_lines(audit_log=False, no_fsync=supported)["etcd"]

    assert ("--unsafe-no-fsync" in argv) is supported


@pytest.mark.parametrize("version", [(1, 20, 2), (1, 37, 2)])
def test_controller_manager_listens_nowhere(version: config.Version) -> None:
    argv = _all_command_lines(audit_log=False, no_fsync=False, version=version)[
        "kube-controller-manager"
    ]

    assert "--secure-port=0" in argv
    assert "--leader-elect=false" in argv


@pytest.mark.parametrize(
    ("version", "closed"),
    [((1, 20, 2), True), ((1, 23, 17), True), ((1, 24, 0), False), ((1, 37, 2), False)],
)
def test_insecure_ports_closed_only_where_they_exist(
    version: config.Version, closed: bool
) -> None:
    """Before 1.24 both open an unauthenticated port unless told not to; from 1.24 on the
    flags that close them are refused, and the apiserver would not start."""
    argv = _all_command_lines(audit_log=False, no_fsync=False, version=version)

    assert ("--insecure-port=0" in argv["kube-apiserver"]) is closed
    assert ("--port=0" in argv["kube-controller-manager"]) is closed


@pytest.mark.parametrize(("version", "none"), [((1, 20, 2), False), ((1, 37, 2), True)])
def test_endpoints_of_the_kubernetes_service_left_alone_where_loopback_is_refused(
    version: config.Version, none: bool
) -> None:
    """1.37 refuses to start with `--advertise-address=127.0.0.1` and its endpoint
    reconciler on: "may not be in the loopback range"."""
    argv = _all_command_lines(audit_log=False, no_fsync=False, version=version)

    assert "--advertise-address=127.0.0.1" in argv["kube-apiserver"]
    assert ("--endpoint-reconciler-type=none" in argv["kube-apiserver"]) is none


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("Kubernetes v1.37.2\n", (1, 37, 2)),
        ("Kubernetes v1.20.2", (1, 20, 2)),
        ("Kubernetes v1.31.0-eks-1234", (1, 31, 0)),
        ("Kubernetes v0.0.0-master+$Format:%H$", (0, 0, 0)),
        ("flag provided but not defined: -version", None),
    ],
)
def test_binary_version_is_read_from_its_version_output(
    output: str, version: config.Version | None
) -> None:
    assert config.parse_binary_version(output) == version


@pytest.mark.parametrize(
    ("test_name", "prefix"),
    [
        ("test_apply_creates", "t-apply-creates-"),
        ("test_prune[Deployment-apps/v1]", "t-prune-deployment-apps-v1-"),
        ("test_" + "very_long_name_" * 10, "t-very-long-name-very-long-name-very-long-"),
        ("test_", "t-"),
    ],
)
def test_namespace_names_are_dns_labels_naming_the_test(test_name: str, prefix: str) -> None:
    name = namespace_name(test_name)

    assert name.startswith(prefix)
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
    assert len(name) <= 63
    assert namespace_name(test_name) != name  # random suffix: reruns do not collide
