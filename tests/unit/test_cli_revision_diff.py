"""`syncer diff --from A --to B`: two revisions of a repository compared with no cluster at all
(KUBECONFIG names a missing file, nothing listens anywhere). Each test makes a Git repository
with commits, runs the command as a user would, and checks stdout, stderr and the exit code."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from syncer.cli import cli
from syncer.model import Manifest, Origin
from syncer.sources import sops
from syncer.sources.revisions import align_scopes
from tests.schema import assert_valid

SYNCER = Path(sys.executable).parent / "syncer"
CHARTS = Path(__file__).resolve().parents[1] / "charts"
KEY_FILE = Path(__file__).parent / "data" / "sops-test-age.key"
TOOLS = Path(__file__).resolve().parents[2] / "tools" / "build.sh"

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions: [{name: v1, served: true, storage: true,
              schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]
"""
NAMESPACED_CRD = CRD.replace("widgets", "gizmos").replace("Widget", "Gizmo").replace("widget", "gizmo").replace(
    "scope: Cluster", "scope: Namespaced")
FIRST = {
    "settings.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: blue}\n",
    "same.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: same}\ndata: {a: '1'}\n",
    "old.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: old, namespace: legacy}\ndata: {a: '1'}\n",
    "secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: hunter2}\n",
    "role.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: reader}\nrules: []\n",
    "crd.yaml": CRD,
    "gizmo-crd.yaml": NAMESPACED_CRD,
    "gizmo.yaml": "apiVersion: example.com/v1\nkind: Gizmo\nmetadata: {name: small}\nspec: {size: 1}\n",
    "widget.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: big}\nspec: {size: 1}\n",
    "gadget.yaml": "apiVersion: gadgets.example.org/v1\nkind: Gadget\nmetadata: {name: g}\nspec: {on: true}\n",
}
SECOND = {
    **FIRST,
    "settings.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: green}\n",
    "new.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: new}\ndata: {a: '1'}\n",
    "secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: swordfish}\n",
    "old.yaml": None,
    "crd.yaml": None,  # the CRDs go; their Widget stays cluster-scoped and their Gizmo namespaced
    "gizmo-crd.yaml": None,
}
PLAINTEXTS = ("hunter2", "swordfish", base64.b64encode(b"hunter2").decode(), base64.b64encode(b"swordfish").decode())


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def commit(root: Path, files: dict[str, str | None], message: str) -> str:
    """Write (or with None, delete) `files` under `root`, commit them, return the commit's SHA."""
    for name, text in files.items():
        path = root / name
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    return root


@pytest.fixture(autouse=True)
def no_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("SYNCER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("SOPS_AGE_KEY_FILE", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["diff", *args], prog_name="syncer")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_a_change_diffs_object_by_object_as_the_installed_command(repo: Path, tmp_path: Path) -> None:
    """The installed `syncer` in a process of its own, with no kubeconfig and no cluster."""
    first = commit(repo, FIRST, "first")
    git(repo, "tag", "v1")
    second = commit(repo, SECOND, "second")
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "no-kubeconfig"), "HOME": str(tmp_path / "home")}
    done = subprocess.run([str(SYNCER), "diff", "--repo", str(repo), "--from", "v1", "--to", "main", "-n", "shop"],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""
    out = done.stdout
    assert "+ v1 ConfigMap shop/new  (new.yaml:1)" in out
    assert "~ v1 ConfigMap shop/settings  (settings.yaml:1)" in out
    assert "-  color: blue\n+  color: green" in out
    assert "- v1 ConfigMap legacy/old  (old.yaml:1)" in out
    assert "~ v1 Secret shop/db  (secret.yaml:1)" in out
    assert "--- ConfigMap/shop/settings (v1)\n+++ ConfigMap/shop/settings (main)" in out
    assert "- apiextensions.k8s.io/v1 CustomResourceDefinition widgets.example.com  (crd.yaml:1)" in out
    assert "ConfigMap shop/same" not in out and "ClusterRole" not in out and "Widget big" not in out
    assert "<secret sha256:" in out and not any(text in out for text in PLAINTEXTS)
    assert out.splitlines()[-1] == (f"diff: {repo} path ., v1 ({first[:12]}) to main ({second[:12]}), "
                                    "namespace shop: 1 created, 2 configured, 5 unchanged, 3 deleted")


def test_the_same_revision_twice_exits_0(repo: Path) -> None:
    commit(repo, FIRST, "first")
    code, out, err = invoke("--repo", str(repo), "--from", "main", "--to", "main")
    assert (code, err) == (0, "")
    assert out.endswith("namespace default: 0 created, 0 configured, 10 unchanged, 0 deleted\n")


def test_the_namespace_is_n_or_default_never_the_kubeconfig_context(repo: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                          "users: [{name: u, user: {token: x}}]\n"
                          "contexts: [{name: dev, context: {cluster: c, user: u, namespace: team}}]\n"
                          "current-context: dev\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    first = commit(repo, FIRST, "first")
    commit(repo, SECOND, "second")
    code, out, err = invoke("--repo", str(repo), "--from", first, "--to", "main")
    assert (code, err) == (1, "")
    assert "~ v1 ConfigMap default/settings" in out and "team" not in out


def test_json_is_a_revision_diff_document_for_a_repository_url(repo: Path) -> None:
    first = commit(repo, FIRST, "first")
    second = commit(repo, SECOND, "second")
    code, out, _ = invoke("--repo", repo.as_uri(), "--from", first[:10], "--to", second, "-o", "json")
    assert code == 1
    document = json.loads(out)
    assert_valid(document, kind="RevisionDiff")
    assert document["repo"] == repo.as_uri()
    assert document["from"] == {"revision": first[:10], "sha": first}
    assert document["to"] == {"revision": second, "sha": second}
    assert document["summary"] == {"created": 1, "configured": 2, "unchanged": 5, "deleted": 3}
    changes = {(c["action"], c["kind"], c["namespace"], c["name"]): c for c in document["changes"]}
    assert set(changes) == {("created", "ConfigMap", "default", "new"),
                            ("configured", "ConfigMap", "default", "settings"),
                            ("configured", "Secret", "default", "db"), ("deleted", "ConfigMap", "legacy", "old"),
                            ("deleted", "CustomResourceDefinition", None, "widgets.example.com"),
                            ("deleted", "CustomResourceDefinition", None, "gizmos.example.com")}
    assert changes["configured", "ConfigMap", "default", "settings"]["fields"] == [{"path": ".data.color", "cause": "git"}]
    assert changes["configured", "ConfigMap", "default", "settings"]["diff"].startswith(
        f"--- ConfigMap/default/settings ({first[:10]})\n+++ ConfigMap/default/settings ({second})\n")
    assert changes["configured", "Secret", "default", "db"]["fields"] == [{"path": ".data.password", "cause": "git"}]
    assert not any(text in out for text in PLAINTEXTS)


def test_scopes_come_from_built_in_kinds_and_crds_of_either_revision(repo: Path) -> None:
    first = commit(repo, FIRST, "first")
    commit(repo, {**SECOND, "widget.yaml": FIRST["widget.yaml"].replace("size: 1", "size: 2"),
                  "gizmo.yaml": FIRST["gizmo.yaml"].replace("size: 1", "size: 2")}, "second")
    code, out, _ = invoke("--repo", str(repo), "--from", first, "--to", "main", "-n", "shop", "-o", "yaml")
    assert code == 1
    document = yaml.safe_load(out)
    changes = {(c["action"], c["kind"]): c["namespace"] for c in document["changes"]}
    # The CRD is gone at --to, yet its Widget is the same cluster-scoped object at both.
    assert changes["configured", "Widget"] is None
    assert changes["configured", "Gizmo"] == "shop"
    assert changes["deleted", "CustomResourceDefinition"] is None
    assert not {("created", "Widget"), ("deleted", "Widget"), ("created", "Gizmo"), ("deleted", "Gizmo")} & set(changes)
    assert [note for note in document["notes"] if "Gadget.gadgets.example.org" in note]
    code, out, _ = invoke("--repo", str(repo), "--from", first, "--to", "main", "-n", "shop")
    assert "note: Gadget.gadgets.example.org: not a built-in kind and no CRD in either revision" in out


def test_align_scopes_keeps_a_written_namespace_of_an_unknown_kind() -> None:
    written = Manifest(obj={"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "a", "namespace": "n"}},
                       origin=Origin("a.yaml"))
    defaulted = Manifest(obj={"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "b", "namespace": "d"}},
                         origin=Origin("b.yaml"), namespace_defaulted=True)
    aligned = align_scopes([written, defaulted], [])
    assert [str(m.ref) for m in aligned.before] == ["Thing/n/a", "Thing/b"]
    assert aligned.unknown_scope == ("Thing.x.io",)


@pytest.mark.parametrize(("flags", "message"), [
    (["--from", "main"], "--to is missing"),
    (["--to", "main"], "--from is missing"),
    (["--from", "main", "--to", "main", "--revision", "main"], "drop --revision"),
    (["--from", "main", "--to", "main", "--working-tree"], "drop --working-tree"),
    (["--from", "main", "--to", "main", "--app", "shop"], "drop --app"),
])
def test_from_and_to_go_together_and_alone(repo: Path, flags: list[str], message: str) -> None:
    commit(repo, FIRST, "first")
    code, out, err = invoke("--repo", str(repo), *flags)
    assert code == 2 and out == ""
    assert message in err


def test_a_plain_directory_has_no_revisions(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    code, _, err = invoke("--repo", str(tmp_path / "plain"), "--from", "a", "--to", "b")
    assert code == 2 and "need a Git repository" in err


def test_an_unknown_revision_is_named(repo: Path) -> None:
    commit(repo, FIRST, "first")
    code, out, err = invoke("--repo", str(repo), "--from", "main", "--to", "nope")
    assert (code, out) == (2, "")
    assert err.startswith("error: --to nope: repository ") and "revision 'nope' not found" in err


def test_a_render_error_names_the_revision_and_the_file(repo: Path) -> None:
    first = commit(repo, FIRST, "first")
    bad = commit(repo, {"broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n"}, "broken")
    code, out, err = invoke("--repo", str(repo), "--from", first, "--to", bad[:12], "-o", "json")
    assert code == 2
    assert f"error: --to {bad[:12]}: invalid manifests (1 problem):" in err
    assert "broken.yaml:1: metadata.name is missing" in err
    document = json.loads(out)
    assert_valid(document, kind="Error")
    assert document["error"]["problems"] == [{"where": "broken.yaml:1", "message": "metadata.name is missing"}]


def test_a_path_in_one_revision_only_is_all_new(repo: Path) -> None:
    first = commit(repo, {"README": "apps\n"}, "empty")
    commit(repo, {"apps/shop/settings.yaml": FIRST["settings.yaml"]}, "add shop")
    code, out, _ = invoke("--repo", str(repo), "--path", "apps/shop", "--from", first, "--to", "main")
    assert code == 1
    assert "+ v1 ConfigMap default/settings" in out
    assert f"note: path apps/shop is not in --from {first}: every object is new" in out
    code, _, err = invoke("--repo", str(repo), "--path", "apps/shopp", "--from", first, "--to", "main")
    assert code == 2 and "is in neither revision" in err


def test_no_prune_leaves_removed_objects_out(repo: Path) -> None:
    first = commit(repo, FIRST, "first")
    commit(repo, {"old.yaml": None}, "remove old")
    assert invoke("--repo", str(repo), "--from", first, "--to", "main")[0] == 1
    code, out, _ = invoke("--repo", str(repo), "--from", first, "--to", "main", "--no-prune")
    assert code == 0 and "legacy/old" not in out


def test_a_kustomize_overlay(repo: Path) -> None:
    base = {
        "base/kustomization.yaml": "resources: [deployment.yaml]\n",
        "base/deployment.yaml": textwrap.dedent("""\
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec:
              replicas: 1
              selector: {matchLabels: {app: web}}
              template:
                metadata: {labels: {app: web}}
                spec: {containers: [{name: web, image: nginx}]}
            """),
        "overlays/prod/kustomization.yaml": "resources: [../../base]\nnamespace: prod\nnamePrefix: prod-\n",
    }
    first = commit(repo, base, "base")
    commit(repo, {"overlays/prod/kustomization.yaml": base["overlays/prod/kustomization.yaml"]
                  + "replicas: [{name: web, count: 3}]\n"}, "scale prod")
    code, out, _ = invoke("--repo", str(repo), "--path", "overlays/prod", "--from", first, "--to", "main")
    assert code == 1
    assert "~ apps/v1 Deployment prod/prod-web  (overlays/prod:1)" in out
    assert "-  replicas: 1\n+  replicas: 3" in out


def test_a_helm_chart(repo: Path) -> None:
    shutil.copytree(CHARTS / "podinfo", repo / "chart")
    first = commit(repo, {}, "chart")
    values = (repo / "chart" / "values.yaml").read_text()
    assert "replicaCount: 1\n" in values
    commit(repo, {"chart/values.yaml": values.replace("replicaCount: 1\n", "replicaCount: 4\n")}, "scale")
    code, out, err = invoke("--repo", str(repo), "--path", "chart", "--name", "web", "-n", "shop",
                            "--kube-version", "1.37.2", "--from", first, "--to", "main", "-o", "json")
    assert code == 1, err
    document = json.loads(out)
    assert_valid(document, kind="RevisionDiff")
    assert [(c["action"], c["kind"], c["namespace"], c["name"], c["fields"]) for c in document["changes"]] == [
        ("configured", "Deployment", "shop", "web-podinfo", [{"path": ".spec.replicas", "cause": "git"}])]
    assert document["changes"][0]["origin"] == "chart/templates/deployment.yaml:1"
    # The chart's test hooks are left out at both revisions, each said with its revision.
    assert [warning.split(": ")[0] for warning in document["warnings"]] == [f"--from {first}", "--to main"]
    assert all("Helm hook(s) left out" in warning for warning in document["warnings"])


@pytest.fixture
def sops_binary(monkeypatch: pytest.MonkeyPatch) -> str:
    built = subprocess.run([str(TOOLS), "sops"], check=True, capture_output=True, text=True).stdout.strip()
    monkeypatch.setenv(sops.SOPS_ENV, built)
    return built


def encrypted_secret(sops_binary: str, password: str, tmp_path: Path) -> str:
    public = next(line.removeprefix("# public key: ") for line in KEY_FILE.read_text().splitlines()
                  if line.startswith("# public key: "))
    plain = tmp_path / "plain.yaml"
    plain.write_text(FIRST["secret.yaml"].replace("hunter2", password))
    return subprocess.run([sops_binary, "--encrypt", "--age", public, "--encrypted-regex", "^(data|stringData)$",
                           str(plain)], capture_output=True, check=True, text=True,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}).stdout


def test_sops_secrets_are_compared_encrypted_without_a_key_and_decrypted_with_one(
    repo: Path, tmp_path: Path, sops_binary: str,
) -> None:
    first = commit(repo, {"secret.yaml": encrypted_secret(sops_binary, "hunter2", tmp_path)}, "first")
    commit(repo, {"secret.yaml": encrypted_secret(sops_binary, "swordfish", tmp_path)}, "second")
    code, out, err = invoke("--repo", str(repo), "--from", first, "--to", "main")
    assert code == 1, err
    assert "~ v1 Secret default/db" in out
    assert "note: Secret/default/db: encrypted with SOPS and no age key given" in out
    assert not any(text in out + err for text in PLAINTEXTS)
    code, out, err = invoke("--repo", str(repo), "--from", first, "--to", "main", "--sops-age-key-file", str(KEY_FILE))
    assert code == 1, err
    assert "encrypted with SOPS" not in out and "sops:" not in out
    assert "-  password: <secret sha256:" in out and "+  password: <secret sha256:" in out
    assert not any(text in out + err for text in PLAINTEXTS)
