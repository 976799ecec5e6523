"""The offline revision diff agrees with the cluster: once revision A is synced, `syncer diff
--from A --to B` (no cluster, KUBECONFIG naming a missing file) names the same objects with
the same actions as `syncer diff --revision B` against the real API server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from syncer.cli import cli
from tests.conftest import ClusterAccess
from tests.schema import assert_valid

FIRST = {
    "settings.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: blue}\n",
    "same.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: same}\ndata: {a: '1'}\n",
    "old.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: old}\ndata: {a: '1'}\n",
    "secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: hunter2}\n",
    "web.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.25"}]}
""",
}
SECOND = {
    **FIRST,
    "settings.yaml": FIRST["settings.yaml"].replace("blue", "green"),
    "secret.yaml": FIRST["secret.yaml"].replace("hunter2", "swordfish"),
    "web.yaml": FIRST["web.yaml"].replace("nginx:1.25", "nginx:1.27"),
    "new.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: new}\ndata: {a: '1'}\n",
    "old.yaml": None,
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def commit(root: Path, files: dict[str, str | None]) -> str:
    for name, text in files.items():
        if text is None:
            (root / name).unlink()
        else:
            (root / name).write_text(text)
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "change")
    return git(root, "rev-parse", "HEAD")


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def actions(document: dict[str, Any]) -> set[tuple[str, str, str | None, str]]:
    return {(c["action"], c["kind"], c["namespace"], c["name"]) for c in document["changes"]
            if c["action"] != "unchanged"}


def test_the_offline_diff_names_what_the_cluster_diff_names(
    cluster: ClusterAccess, tmp_path: Path, namespace: str,
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    first, second = commit(repo, FIRST), commit(repo, SECOND)
    source = ["--repo", str(repo), "--name", "d", "-n", namespace, "--cache-dir", str(tmp_path / "cache")]
    cluster_flags = ["--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context]
    code, synced = run("sync", *source, *cluster_flags, "--revision", first, "-o", "json")
    assert code == 0 and synced["ok"], synced

    _, live = run("diff", *source, *cluster_flags, "--revision", second, "-o", "json")
    code, offline = run("diff", *source, "--from", first, "--to", second, "-o", "json",
                        env={"KUBECONFIG": str(tmp_path / "no-kubeconfig")})
    assert_valid(offline, kind="RevisionDiff")
    assert code == 1
    assert actions(offline) == actions(live) == {
        ("configured", "ConfigMap", namespace, "settings"), ("configured", "Secret", namespace, "db"),
        ("configured", "Deployment", namespace, "web"), ("created", "ConfigMap", namespace, "new"),
        ("deleted", "ConfigMap", namespace, "old"),
    }
