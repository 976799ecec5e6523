"""syncer's own kubeconfig loader keeps what kubectl users rely on: the merge rules of several
files, each kind of credential, exec plugins with their caching and expiry, and the pod's
service account. Every wrong field is an error naming the file and the entry."""

from __future__ import annotations

import base64
import datetime
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import syncer.kube.config
import syncer.kube.credentials
from syncer.errors import ConfigError
from syncer.kube import ClientOptions, current_context, default_namespace, load_connection

PLUGIN = """
import datetime, json, os, sys
with open(sys.argv[1], "a") as log:
    log.write(json.dumps({"info": json.loads(os.environ["KUBERNETES_EXEC_INFO"]),
                          "greeting": os.environ.get("GREETING")}) + "\\n")
behaviour = json.loads(open(sys.argv[2]).read())
if behaviour.get("fail"):
    sys.stderr.write("token expired, run login\\n")
    sys.exit(3)
status = {k: v for k, v in behaviour.items() if k not in ("expiresIn", "apiVersion")}
if "expiresIn" in behaviour:
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=behaviour["expiresIn"])
    status["expirationTimestamp"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps({"apiVersion": behaviour.get("apiVersion", "client.authentication.k8s.io/v1beta1"),
                  "kind": "ExecCredential", "status": status}))
"""


def kubeconfig(path: Path, *, user: dict[str, Any], cluster: dict[str, Any] | None = None) -> str:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "shop"}}],
    }))
    return str(path)


class Plugin:
    """A tiny exec plugin: answers what `behaviour` says, logs each run and what it was given."""

    def __init__(self, tmp_path: Path, api_version: str = "client.authentication.k8s.io/v1beta1") -> None:
        self.script, self.log, self.behaviour_file = tmp_path / "plugin.py", tmp_path / "runs", tmp_path / "behaviour"
        self.script.write_text(PLUGIN)
        self.api_version = api_version
        self.behave(token="t-1")

    def behave(self, **behaviour: Any) -> None:
        self.behaviour_file.write_text(json.dumps(behaviour))

    @property
    def runs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def user(self, **extra: Any) -> dict[str, Any]:
        return {"exec": {"apiVersion": self.api_version, "command": sys.executable,
                         "args": [str(self.script), str(self.log), str(self.behaviour_file)],
                         "env": [{"name": "GREETING", "value": "hello"}], **extra}}


def test_relative_paths_are_relative_to_the_file_that_names_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kubectl resolves a CA or token file against the kubeconfig it is written in, not the
    working directory and not the first file of the list."""
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "ca.crt").write_text("not used until a connection")
    (tmp_path / "team" / "token").write_text("from-the-team-dir\n")
    first = tmp_path / "first"
    first.write_text(yaml.safe_dump({"current-context": "team", "contexts": [
        {"name": "team", "context": {"cluster": "team", "user": "team"}}]}))
    second = tmp_path / "team" / "config"
    second.write_text(yaml.safe_dump({
        "clusters": [{"name": "team", "cluster": {"server": "https://team:6443", "certificate-authority": "ca.crt"}}],
        "users": [{"name": "team", "user": {"tokenFile": "token"}}]}))
    monkeypatch.chdir(tmp_path)
    connection = load_connection(ClientOptions(kubeconfig=f"{first}{os.pathsep}{second}"))
    assert connection.ca_file == str(tmp_path / "team" / "ca.crt")
    assert connection.credentials.headers() == {"Authorization": "Bearer from-the-team-dir"}


def test_data_fields_win_over_file_fields_and_client_certificates_become_private_files(tmp_path: Path) -> None:
    certificate, key = b"-----BEGIN CERTIFICATE-----\nA\n", b"-----BEGIN PRIVATE KEY-----\nB\n"
    path = kubeconfig(tmp_path / "config", user={
        "client-certificate-data": base64.b64encode(certificate).decode(), "client-certificate": "/nonexistent",
        "client-key-data": base64.b64encode(key).decode()}, cluster={
        "server": "https://127.0.0.1:6443", "certificate-authority-data": base64.b64encode(b"PEM CA").decode(),
        "certificate-authority": "/nonexistent", "tls-server-name": "kubernetes", "proxy-url": "http://proxy:3128"})
    connection = load_connection(ClientOptions(kubeconfig=path))
    assert (connection.ca_data, connection.ca_file) == ("PEM CA", None)
    assert (connection.tls_server_name, connection.proxy_url) == ("kubernetes", "http://proxy:3128")
    assert connection.client_certificate is not None
    cert_file, key_file = connection.client_certificate
    assert (Path(cert_file).read_bytes(), Path(key_file).read_bytes()) == (certificate, key)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


@pytest.mark.parametrize(("user", "cluster", "message"), [
    ({"client-certificate-data": "QQ=="}, None, "kubeconfig {file}, user u: a client certificate needs its key"),
    ({"token": "x"}, {"server": "https://a", "certificate-authority": "missing.crt"},
     "kubeconfig {file}, cluster c: certificate-authority {dir}/missing.crt: no such file"),
    ({"client-key-data": "not base64!"}, None, "kubeconfig {file}, user u: client-key-data is not base64"),
    ({"tokenFile": "empty"}, None, "kubeconfig {file}, user u: the token file {dir}/empty is empty"),
    ({"token": "x"}, {"insecure-skip-tls-verify": True}, "kubeconfig {file}, cluster c: no server"),
    ({"auth-provider": {"name": "gcp"}}, None, "kubeconfig {file}, user u: auth-provider 'gcp' is not supported"),
    ({"exec": {"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}}, None,
     "kubeconfig {file}, user u: exec.apiVersion 'client.authentication.k8s.io/v1alpha1' is not supported"),
    ({"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "x"}}, None,
     "kubeconfig {file}, user u: exec.interactiveMode must be"),
])
def test_a_wrong_field_names_the_file_the_entry_and_the_field(
    tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any] | None, message: str
) -> None:
    (tmp_path / "empty").write_text("")
    path = kubeconfig(tmp_path / "config", user=user, cluster=cluster)
    with pytest.raises(ConfigError) as raised:
        load_connection(ClientOptions(kubeconfig=path))
    assert str(raised.value).startswith(message.format(file=path, dir=tmp_path))


def test_a_context_naming_an_undefined_user_or_cluster_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({"current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "x"}}]}))
    with pytest.raises(ConfigError, match=f"kubeconfig {path}, context c: cluster 'x' is not defined"):
        load_connection(ClientOptions(kubeconfig=str(path)))
    path.write_text(yaml.safe_dump({"current-context": "c", "contexts": [{"name": "c", "context": {
        "cluster": "c", "user": "nobody"}}], "clusters": [{"name": "c", "cluster": {"server": "https://a"}}]}))
    with pytest.raises(ConfigError, match=f"kubeconfig {path}, context c: user 'nobody' is not defined"):
        load_connection(ClientOptions(kubeconfig=str(path)))
    path.write_text("clusters: [a: b")
    with pytest.raises(ConfigError, match=f"kubeconfig {path}: not valid YAML"):
        load_connection(ClientOptions(kubeconfig=str(path)))


def test_basic_auth_impersonation_and_a_given_token(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", user={"username": "admin", "password": "s3cret",
                                                 "client-certificate-data": "QQ==", "client-key-data": "Qg=="})
    connection = load_connection(ClientOptions(kubeconfig=path, impersonate="system:serviceaccount:a:b"))
    assert connection.credentials.headers() == {"Authorization": "Basic " + base64.b64encode(b"admin:s3cret").decode()}
    assert connection.headers["Impersonate-User"] == "system:serviceaccount:a:b"
    assert connection.headers["User-Agent"].startswith("syncer/")
    as_user = load_connection(ClientOptions(kubeconfig=path, bearer_token="users-own"))
    assert as_user.credentials.headers() == {"Authorization": "Bearer users-own"}
    assert as_user.client_certificate is None, "a user's token acts alone, never with the daemon's certificate"


def test_a_token_file_is_read_again_as_it_rotates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = tmp_path / "token"
    token.write_text("first")
    connection = load_connection(ClientOptions(kubeconfig=kubeconfig(tmp_path / "config", user={"tokenFile": str(token)})))
    token.write_text("second")
    assert connection.credentials.headers() == {"Authorization": "Bearer first"}, "read at most once a period"
    monkeypatch.setattr(syncer.kube.credentials, "TOKEN_FILE_PERIOD", 0.0)
    connection.credentials.expire()
    assert connection.credentials.headers() == {"Authorization": "Bearer second"}
    token.unlink()
    assert connection.credentials.headers() == {"Authorization": "Bearer second"}, "kept through a moment of rotation"


def test_an_exec_plugins_token_is_cached_until_shortly_before_it_expires(tmp_path: Path) -> None:
    plugin = Plugin(tmp_path)
    plugin.behave(token="t-1", expiresIn=3600)
    path = kubeconfig(tmp_path / "config", user=plugin.user())
    connection = load_connection(ClientOptions(kubeconfig=path))
    for _ in range(3):
        assert connection.credentials.headers() == {"Authorization": "Bearer t-1"}
    assert len(plugin.runs) == 1, "a token valid for an hour is not asked for again"
    run = plugin.runs[0]
    assert run["greeting"] == "hello", "the kubeconfig's env reaches the plugin"
    assert run["info"] == {"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                           "spec": {"interactive": False}}

    plugin.behave(token="t-2", expiresIn=30)  # within the margin: renewed at every use
    connection.credentials.expire()  # as after a 401
    assert connection.credentials.headers() == {"Authorization": "Bearer t-2"}
    plugin.behave(token="t-3")  # no expirationTimestamp: used until the server refuses it
    assert connection.credentials.headers() == {"Authorization": "Bearer t-3"}
    assert connection.credentials.headers() == {"Authorization": "Bearer t-3"}
    assert len(plugin.runs) == 3


def test_an_exec_plugin_that_fails_is_named_with_what_it_said(tmp_path: Path) -> None:
    plugin = Plugin(tmp_path)
    plugin.behave(fail=True)
    path = kubeconfig(tmp_path / "config", user=plugin.user())
    with pytest.raises(ConfigError, match=(f"kubeconfig {path}, user u: exec plugin {sys.executable}: exited with 3: "
                                           "token expired, run login$")):
        load_connection(ClientOptions(kubeconfig=path))
    plugin.behave(token="x", apiVersion="client.authentication.k8s.io/v1")
    with pytest.raises(ConfigError, match="answered apiVersion 'client.authentication.k8s.io/v1', the kubeconfig "
                                          "asked for client.authentication.k8s.io/v1beta1"):
        load_connection(ClientOptions(kubeconfig=path))
    missing = kubeconfig(tmp_path / "other", user={"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": "aws-iam-authenticator-not-installed",
        "interactiveMode": "Never", "installHint": "Install it from https://example.invalid/aws"}})
    with pytest.raises(ConfigError, match="exec plugin aws-iam-authenticator-not-installed: cannot run it: .*"
                                          "; Install it from https://example.invalid/aws"):
        load_connection(ClientOptions(kubeconfig=missing))


def test_an_exec_plugin_may_answer_with_a_client_certificate_and_learn_the_cluster(tmp_path: Path) -> None:
    plugin = Plugin(tmp_path, api_version="client.authentication.k8s.io/v1")
    plugin.behave(clientCertificateData="CERT 1", clientKeyData="KEY 1", apiVersion="client.authentication.k8s.io/v1",
                  expiresIn=0)
    path = kubeconfig(tmp_path / "config", user=plugin.user(interactiveMode="Never", provideClusterInfo=True), cluster={
        "server": "https://127.0.0.1:6443", "extensions": [{"name": "client.authentication.k8s.io/exec",
                                                             "extension": {"audience": "team"}}]})
    connection = load_connection(ClientOptions(kubeconfig=path))
    assert connection.client_certificate is not None
    cert_file, key_file = connection.client_certificate
    assert (Path(cert_file).read_text(), Path(key_file).read_text()) == ("CERT 1", "KEY 1")
    assert plugin.runs[0]["info"]["spec"]["cluster"] == {"server": "https://127.0.0.1:6443",
                                                         "config": {"audience": "team"}}
    plugin.behave(clientCertificateData="CERT 2", clientKeyData="KEY 2", apiVersion="client.authentication.k8s.io/v1")
    assert connection.credentials.headers() == {}, "expired: run again; a certificate is no header"
    assert Path(cert_file).read_text() == "CERT 2", "renewed in the files each new connection reads"


def test_in_cluster_reads_the_service_account_and_rereads_its_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "ca.crt").write_text("PEM")
    (account / "token").write_text("projected-1")
    (account / "namespace").write_text("syncer-system")
    monkeypatch.setattr(syncer.kube.config, "SERVICE_ACCOUNT_DIR", account)
    monkeypatch.setattr(syncer.kube.config, "SERVICE_ACCOUNT_NAMESPACE", account / "namespace")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    connection = load_connection(ClientOptions())
    assert (connection.server, connection.ca_file) == ("https://[fd00::1]:443", str(account / "ca.crt"))
    assert connection.where == "in-cluster service account"
    assert current_context(ClientOptions()) is None
    assert default_namespace(ClientOptions()) == ("syncer-system", "the pod's namespace")
    (account / "token").write_text("projected-2")
    monkeypatch.setattr(syncer.kube.credentials, "TOKEN_FILE_PERIOD", 0.0)
    connection.credentials.expire()
    assert connection.credentials.headers() == {"Authorization": "Bearer projected-2"}
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT")
    with pytest.raises(ConfigError, match="in-cluster service account: KUBERNETES_SERVICE_HOST and "
                                          "KUBERNETES_SERVICE_PORT must both be set"):
        load_connection(ClientOptions())


def test_the_expiry_is_read_as_rfc3339() -> None:
    parsed = syncer.kube.credentials._parse_time("2026-12-03T01:02:03.5Z", where="x")
    assert parsed == datetime.datetime(2026, 12, 3, 1, 2, 3, 500000, tzinfo=datetime.timezone.utc)
    with pytest.raises(ConfigError, match="x: status.expirationTimestamp 'soon' is not an RFC 3339 time"):
        syncer.kube.credentials._parse_time("soon", where="x")
