"""`syncer render` through click's test runner."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import syncer.cli.render  # noqa: F401  (registers the command)
from syncer.cli import cli

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "apps").mkdir(parents=True)
    (root / "apps/deploy.yaml").write_text(DEPLOYMENT)
    (root / "apps/cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n")
    return root


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["render", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_yaml_output(repo: Path) -> None:
    code, stdout, stderr = invoke("--repo", str(repo), "--path", "apps", "-n", "shop")

    assert code == 0
    documents = list(yaml.safe_load_all(stdout))
    assert [d["metadata"] for d in documents] == [
        {"name": "settings", "namespace": "shop"},
        {"name": "web", "namespace": "shop"},
    ]
    assert stdout.startswith("---\napiVersion: v1\nkind: ConfigMap\n")
    assert stderr == f"rendered 2 objects from {repo} (apps) at working-tree\n"


def test_json_output(repo: Path) -> None:
    code, stdout, _ = invoke("--repo", str(repo), "--path", "apps/deploy.yaml", "-o", "json")

    assert code == 0
    assert json.loads(stdout) == {
        "revision": "working-tree",
        "items": [
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 2}},
        ],
    }  # fmt: skip


def test_repo_defaults_to_the_current_directory(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo / "apps")

    code, stdout, _ = invoke("-o", "json")

    assert code == 0
    assert len(json.loads(stdout)["items"]) == 2


def test_invalid_manifests_exit_2_listing_every_problem(repo: Path) -> None:
    (repo / "apps/bad.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n---\nkind: Secret\nmetadata: {name: x}\n")

    code, stdout, stderr = invoke("--repo", str(repo))

    assert code == 2
    assert stdout == ""
    assert "error: invalid manifests (2 problems):" in stderr
    assert "apps/bad.yaml:1: metadata.name is missing" in stderr
    assert "apps/bad.yaml:4: apiVersion is missing" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repo", "/nonexistent/dir"], "no such directory, and not a URL"),
        (["--path", "missing"], "path 'missing' not found"),
        (["--namespace", "Not_Valid"], "not a valid namespace name"),
        (["--revision", "main"], "--revision needs a Git repository"),
    ],
)
def test_usage_errors_exit_2(repo: Path, args: list[str], message: str) -> None:
    code, _, stderr = invoke("--repo", str(repo), *args) if args[0] != "--repo" else invoke(*args)

    assert code == 2
    assert message in stderr


def test_git_repository_at_a_revision(tmp_path: Path, repo: Path) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}  # fmt: skip

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "one")
    first = git("rev-parse", "HEAD")
    git("tag", "v1")
    (repo / "apps/cm.yaml").unlink()
    git("commit", "-q", "-am", "two")

    code, stdout, stderr = invoke("--repo", f"file://{repo}", "--revision", "v1", "--cache-dir", str(tmp_path / "c"), "-o", "json")

    assert code == 0, stderr
    assert json.loads(stdout)["revision"] == first
    assert len(json.loads(stdout)["items"]) == 2
    assert stderr == f"rendered 2 objects from file://{repo} (.) at {first}\n"


def test_source_options_contract_for_other_commands(repo: Path) -> None:
    """diff and sync take the options as `**source` and call render_from_options(source)."""
    import click

    from syncer.cli.options import SourceOptions, render_from_options, source_options

    seen: dict[str, object] = {}

    @click.command()
    @source_options
    @click.option("--other", default="x")
    def command(*, other: str, **source: object) -> None:
        snapshot, manifests = render_from_options(source)
        seen.update(other=other, namespace=source["namespace"], revision=snapshot.revision,
                    names=[m.ref.name for m in manifests], options=SourceOptions.from_values(source))  # fmt: skip

    result = CliRunner().invoke(command, ["--repo", str(repo), "--path", "apps", "-n", "shop", "--token-env", "T"])

    assert result.exit_code != 0  # a token makes no sense for a plain directory
    assert "credentials do not apply to a plain directory" in str(result.exception)

    result = CliRunner().invoke(command, ["--repo", str(repo), "--path", "apps", "-n", "shop"])

    assert result.exit_code == 0, result.output
    assert seen["names"] == ["settings", "web"]
    assert seen["namespace"] == "shop"
    assert seen["revision"] == "working-tree"
    assert seen["options"] == SourceOptions(repo=str(repo), path="apps", namespace="shop")


SECRET = """\
apiVersion: v1
kind: Secret
metadata: {name: db}
data: {password: aHVudGVyMi1jb3JyZWN0LWhvcnNl}
stringData: {pin: "8675309"}
"""


@pytest.mark.parametrize("output", ["yaml", "json"])
def test_secret_values_are_masked_unless_asked_for(repo: Path, output: str) -> None:
    (repo / "apps/secret.yaml").write_text(SECRET)

    code, masked, _ = invoke("--repo", str(repo), "--path", "apps", "-o", output)
    shown_code, shown, _ = invoke("--repo", str(repo), "--path", "apps", "-o", output, "--show-secrets")

    assert code == shown_code == 0
    for value in ("aHVudGVyMi1jb3JyZWN0LWhvcnNl", "hunter2-correct-horse", "8675309", "ODY3NTMwOQ=="):
        assert value not in masked
    assert "<secret sha256:" in masked and "bytes>" in masked
    assert "aHVudGVyMi1jb3JyZWN0LWhvcnNl" in shown and "8675309" in shown
