"""SOPS decryption after rendering, with the pinned `sops` (tools/build.sh sops)."""

from __future__ import annotations

import copy
import json
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncer.errors import RenderError
from syncer.model import Manifest, Object, Origin
from syncer.sources import sops

KEY_FILE = Path(__file__).parent / "data" / "sops-test-age.key"
"""A throwaway age identity made for these tests (its public key is in the file)."""
OTHER_KEY = "AGE-SECRET-KEY-1A7YG650YULEPY9Y5NMJ27EYUHE3LCZQHW9633KY9L5JVKATL5FJS5RGHPE"
"""Another throwaway identity, recipient of nothing here."""


def public_key(key_file: Path) -> str:
    line = next(line for line in key_file.read_text().splitlines() if line.startswith("# public key: "))
    return line.removeprefix("# public key: ")


@pytest.fixture(scope="module")
def sops_binary() -> str:
    return subprocess.run([str(Path(__file__).parents[2] / "tools" / "build.sh"), "sops"], check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture(autouse=True)
def pinned_sops(sops_binary: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sops.SOPS_ENV, sops_binary)


def encrypt(sops_binary: str, obj: Object, tmp_path: Path, *, extra_metadata: dict[str, Any] | None = None) -> Object:
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(obj))
    done = subprocess.run([sops_binary, "--encrypt", "--age", public_key(KEY_FILE),
                           "--encrypted-regex", "^(data|stringData)$", str(plain)],
                          capture_output=True, check=True, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    encrypted: Object = yaml.safe_load(done.stdout)
    encrypted["sops"].update(extra_metadata or {})
    return encrypted


SECRET: Object = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
                  "type": "Opaque", "stringData": {"password": "hunter2"}}
CONFIGMAP: Object = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "shop"},
                     "data": {"a": "1"}}


def manifest(obj: Object, file: str, line: int = 1) -> Manifest:
    return Manifest(obj=obj, origin=Origin(file, 0, line))


def identities(*texts: str) -> sops.AgeIdentities:
    return sops.AgeIdentities.from_texts(texts, source="the test key")


def test_an_encrypted_document_is_decrypted_and_the_others_are_left_in_place(sops_binary: str, tmp_path: Path) -> None:
    encrypted = encrypt(sops_binary, SECRET, tmp_path)
    assert encrypted["stringData"]["password"].startswith("ENC[")
    rendered = [manifest(CONFIGMAP, "web.yaml"), manifest(encrypted, "db.yaml", 3)]
    result = sops.decrypt(rendered, identities=identities(KEY_FILE.read_text()))
    assert [m.obj for m in result] == [CONFIGMAP, SECRET]
    assert result[1].origin == Origin("db.yaml", 0, 3)
    assert [m.decrypted for m in result] == [False, True]  # shown as a Secret is (the dashboard's compare)


def test_the_namespace_the_render_filled_in_does_not_break_the_mac(sops_binary: str, tmp_path: Path) -> None:
    written = {**SECRET, "metadata": {"name": "db"}}
    encrypted = encrypt(sops_binary, written, tmp_path)
    defaulted = Manifest(obj={**encrypted, "metadata": {"name": "db", "namespace": "shop"}},
                         origin=Origin("db.yaml", 0, 1), namespace_defaulted=True)
    result = sops.decrypt([defaulted], identities=identities(KEY_FILE.read_text()))
    assert result[0].obj == SECRET
    assert result[0].namespace_defaulted


def test_nothing_encrypted_needs_no_key_and_no_sops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sops.SOPS_ENV, "/nonexistent/sops")
    rendered = [manifest(CONFIGMAP, "web.yaml")]
    assert sops.decrypt(rendered, identities=None) == rendered


def test_an_encrypted_document_without_a_key_is_refused_naming_its_file(sops_binary: str, tmp_path: Path) -> None:
    rendered = [manifest(encrypt(sops_binary, SECRET, tmp_path), "db.yaml", 7)]
    with pytest.raises(RenderError) as refused:
        sops.decrypt(rendered, identities=None)
    assert [str(p) for p in refused.value.problems] == [
        "db.yaml:7: Secret/shop/db is encrypted with SOPS and no age key was given "
        "(--sops-age-key-file, or the App's spec.decryption.secretRef)"]


def test_a_key_that_is_not_a_recipient_is_refused_naming_the_recipients(sops_binary: str, tmp_path: Path) -> None:
    rendered = [manifest(encrypt(sops_binary, SECRET, tmp_path), "db.yaml")]
    with pytest.raises(RenderError) as refused:
        sops.decrypt(rendered, identities=identities(OTHER_KEY))
    message = str(refused.value.problems[0])
    assert message.startswith("db.yaml:1: Secret/shop/db: none of the age keys from the test key can decrypt it")
    assert public_key(KEY_FILE) in message


def test_a_tampered_value_fails_the_mac_and_is_not_applied(sops_binary: str, tmp_path: Path) -> None:
    encrypted = encrypt(sops_binary, {**SECRET, "stringData": {"password": "hunter2", "user": "app"}}, tmp_path)
    tampered = copy.deepcopy(encrypted)
    tampered["stringData"]["user"] = encrypted["stringData"]["password"]  # a valid ciphertext, moved
    with pytest.raises(RenderError) as refused:
        sops.decrypt([manifest(tampered, "db.yaml")], identities=identities(KEY_FILE.read_text()))
    assert "Secret/shop/db: sops could not decrypt it" in str(refused.value)
    assert "hunter2" not in str(refused.value)


@pytest.fixture
def vault() -> Iterator[list[str]]:
    """An HTTP server standing in for a Vault the repository names; records each request."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the handler's protocol
            requests.append(self.path)
            self.send_response(500)
            self.end_headers()

        do_PUT = do_POST = do_GET  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    requests.append(f"http://127.0.0.1:{server.server_address[1]}")
    yield requests
    server.shutdown()


def test_a_vault_address_in_the_document_is_never_contacted(sops_binary: str, tmp_path: Path, vault: list[str]) -> None:
    # sops tries a file's other master keys when no age identity opens it; a repository's
    # document could otherwise make syncer send requests to an address the repository chose.
    address = vault.pop(0)
    planted = {"hc_vault": [{"vault_address": address, "engine_path": "sops", "key_name": "k",
                             "created_at": "2026-01-01T00:00:00Z", "enc": "vault:v1:AAAA"}]}
    rendered = [manifest(encrypt(sops_binary, SECRET, tmp_path, extra_metadata=planted), "db.yaml")]
    with pytest.raises(RenderError, match="none of the age keys"):
        sops.decrypt(rendered, identities=identities(OTHER_KEY))
    assert vault == []
    assert sops.decrypt(rendered, identities=identities(KEY_FILE.read_text()))[0].obj == SECRET


def test_keys_are_read_from_age_keygen_files_ignoring_comments() -> None:
    keys = identities(KEY_FILE.read_text(), "\n# a comment\n" + OTHER_KEY + "\n")
    assert keys.text.splitlines() == [KEY_FILE.read_text().splitlines()[-1], OTHER_KEY]
    assert not identities("# nothing here")


def test_the_cli_decrypts_with_a_key_file_and_keeps_no_plaintext_on_disk(sops_binary: str, tmp_path: Path) -> None:
    import syncer.cli.render  # noqa: F401  (registers the command)
    from click.testing import CliRunner

    from syncer.cli import cli

    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "cm.yaml").write_text(yaml.safe_dump(CONFIGMAP))
    (repo / "app" / "db.yaml").write_text(yaml.safe_dump(encrypt(sops_binary, SECRET, tmp_path), sort_keys=False))
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *command], cwd=repo, check=True)
    cache = tmp_path / "cache"
    common = ["render", "--repo", str(repo), "--path", "app", "--cache-dir", str(cache), "-o", "json"]

    refused = CliRunner().invoke(cli, common)
    assert refused.exit_code == 2
    assert "app/db.yaml:1: Secret/shop/db is encrypted with SOPS and no age key was given" in refused.stderr

    shown = CliRunner().invoke(cli, [*common, "--show-secrets", "--sops-age-key-file", str(KEY_FILE)])
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["items"][1] == SECRET
    masked = CliRunner().invoke(cli, common, env={"SOPS_AGE_KEY_FILE": str(KEY_FILE)})
    assert masked.exit_code == 0, masked.stderr
    assert "hunter2" not in masked.stdout
    assert "<secret sha256:" in json.dumps(json.loads(masked.stdout)["items"][1])
    on_disk = [f for f in cache.rglob("*") if f.is_file() and b"hunter2" in f.read_bytes()]
    assert on_disk == []


def test_a_data_secret_is_checked_once_decrypted_not_before(sops_binary: str, tmp_path: Path) -> None:
    """Flux's usual layout encrypts `data`: its ciphertext is no base64, so validation waits
    for the decrypted values, and then names a bad key without quoting it."""
    import base64

    from syncer.sources import RenderLimits, Snapshot, render

    good = {**SECRET, "stringData": None, "data": {"password": base64.b64encode(b"hunter2").decode()}}
    del good["stringData"]
    bad = {**good, "metadata": {"name": "bad", "namespace": "shop"}, "data": {"password": "hunter2!"}}
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "good.yaml").write_text(yaml.safe_dump(encrypt(sops_binary, good, tmp_path)))
    rendered = render(Snapshot(revision="working-tree", root=repo, repo=str(repo)), ".", namespace="shop",
                      limits=RenderLimits())
    [decrypted] = sops.decrypt(rendered, identities=identities(KEY_FILE.read_text()))
    assert decrypted.obj == good

    (repo / "bad.yaml").write_text(yaml.safe_dump(encrypt(sops_binary, bad, tmp_path)))
    rendered = render(Snapshot(revision="working-tree", root=repo, repo=str(repo)), ".", namespace="shop",
                      limits=RenderLimits())
    with pytest.raises(RenderError) as refused:
        sops.decrypt(rendered, identities=identities(KEY_FILE.read_text()))
    assert "Secret/shop/bad: data.password is not valid base64" in str(refused.value)
    assert "hunter2" not in str(refused.value)
