"""The command line as kubectl users expect it, without a cluster: -v after the command,
`version`, `completion`, durations, JSON errors on stdout, a dirty checkout, the context's
namespace, NO_COLOR and progress without a terminal. What each test asserts is what a user
sees: a stream, an exit code, a document valid against docs/schema/v1.json."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console
from rich.text import Text

from syncer import __version__
from syncer.apply.changeset import Change, ChangeSet
from syncer.apply.status import AppStatus, AppStatusRow
from syncer.cli import cli
from syncer.cli.output import StepProgress, console, print_changeset
from syncer.cli.status import detail_lines
from syncer.diff import Cause, FieldChange
from syncer.kube import RequestStats
from syncer.model import Action, ObjectRef
from tests.schema import assert_valid

SYNCER = Path(sys.executable).parent / "syncer"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: shop, context: {cluster: c, user: u, namespace: shop}}]
current-context: shop
"""
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: %s}\n"


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="syncer", env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A Git checkout with one committed ConfigMap (color: blue)."""
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "cm.yaml").write_text(CONFIGMAP % "blue")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "blue")
    return root


@pytest.fixture(autouse=True)
def no_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("SYNCER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)


@pytest.mark.parametrize("args", [["render", "-vv"], ["-vv", "render"], ["-v", "render", "-v"]])
def test_verbose_works_before_and_after_the_command(checkout: Path, args: list[str]) -> None:
    code, _, stderr = invoke(*args, "--repo", str(checkout))
    assert code == 0
    assert "DEBUG git.cmd: Popen(" in stderr
    assert "DEBUG" not in invoke("render", "-v", "--repo", str(checkout))[2]
    assert "DEBUG" not in invoke("render", "--repo", str(checkout))[2]


def test_every_command_takes_verbose() -> None:
    """`sync` has a parameter named `verbose` (--show-unchanged) of its own."""
    for name in ("sync", "diff", "status", "run", "version", "render"):
        code, stdout, _ = invoke(name, "--help")
        assert code == 0 and "-v, --verbose" in stdout, name
    code, _, stderr = invoke("sync", "-vv", "--name", "a", "--repo", "/nonexistent", "-n", "shop")
    assert code == 2 and "no such directory" in stderr


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_version_document(output: str) -> None:
    code, stdout, stderr = invoke("version", "--client", "-o", output)
    assert (code, stderr) == (0, "")
    document = json.loads(stdout) if output == "json" else yaml.safe_load(stdout)
    assert_valid(document, kind="Version")
    assert document["clientVersion"] == __version__ and document["serverVersion"] is None


def test_version_text_is_the_result_on_stdout() -> None:
    assert invoke("version", "--client") == (0, f"Client Version: {__version__}\n", "")


def test_version_names_the_unreachable_server_as_json_too(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(KUBECONFIG)
    code, stdout, stderr = invoke("version", "-o", "json", "--kubeconfig", str(kubeconfig))
    assert code == 2 and "cannot reach the API server at https://127.0.0.1:1" in stderr
    assert_valid(json.loads(stdout), kind="Error")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_come_from_click(shell: str) -> None:
    code, stdout, stderr = invoke("completion", shell)
    assert code == 0 and stderr == ""
    assert f"_SYNCER_COMPLETE={shell}_complete" in stdout


def test_completion_completes_commands_and_options() -> None:
    """What the shell asks the script to run, and what it gets back."""
    env = {**os.environ, "_SYNCER_COMPLETE": "bash_complete", "COMP_WORDS": "syncer sta", "COMP_CWORD": "1"}
    answer = subprocess.run([str(SYNCER)], env=env, capture_output=True, text=True, check=True).stdout
    assert answer.splitlines() == ["plain,status"]
    env.update(COMP_WORDS="syncer sync --ti", COMP_CWORD="2")
    answer = subprocess.run([str(SYNCER)], env=env, capture_output=True, text=True, check=True).stdout
    assert answer.splitlines() == ["plain,--timeout"]


@pytest.mark.parametrize(("flag", "value", "seconds"), [
    ("--timeout", "5m", 300), ("--timeout", "90s", 90), ("--timeout", "1h30m", 5400), ("--timeout", "120", 120),
    ("--lock-timeout", "0", 0), ("--lock-timeout", "2m", 120),
])
def test_sync_durations_in_the_config_file_format(flag: str, value: str, seconds: float) -> None:
    command = cli.get_command(cli.make_context("syncer", ["sync"]), "sync")
    assert command is not None
    context = command.make_context("sync", ["--name", "shop", flag, value])
    assert context.params[flag.lstrip("-").replace("-", "_")] == seconds


@pytest.mark.parametrize(("args", "message"), [
    (["sync", "--name", "a", "--timeout", "5 minutes"], '"5 minutes" is not a duration, use e.g. 30s, 5m'),
    (["sync", "--name", "a", "--timeout", "0s"], '"0s" is shorter than the minimum of 1s'),
    (["run", "--config", "x", "--lease-duration", "1s"], '"1s" is shorter than the minimum of 3s'),
])
def test_bad_durations_are_usage_errors(args: list[str], message: str) -> None:
    code, stdout, stderr = invoke(*args)
    assert code == 2 and stdout == "" and message in stderr


def test_an_error_in_json_mode_is_json_on_stdout(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    code, stdout, stderr = invoke("diff", "--repo", str(missing), "--name", "shop", "-n", "shop", "-o", "json")
    assert code == 2
    assert stderr.startswith(f"error: repository {missing}: no such directory")
    document = json.loads(stdout)
    assert_valid(document, kind="Error")
    assert document["error"]["type"] == "SourceError" and document["error"]["exitCode"] == 2
    assert invoke("diff", "--repo", str(missing), "--name", "shop", "-n", "shop")[1] == ""


def test_invalid_manifests_in_json_mode_list_every_problem(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n---\n[1, 2\n")
    code, stdout, _ = invoke("sync", "--repo", str(tmp_path), "--name", "shop", "-n", "shop", "-o", "yaml")
    assert code == 2
    document = yaml.safe_load(stdout)
    assert_valid(document, kind="Error")
    assert sorted(p["where"] for p in document["error"]["problems"]) == ["bad.yaml:1", "bad.yaml:6"]


def test_a_dirty_checkout_warns_and_working_tree_reads_the_disk(checkout: Path) -> None:
    (checkout / "cm.yaml").write_text(CONFIGMAP % "green")
    (checkout / "new.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: new}\n")

    code, stdout, stderr = invoke("render", "--repo", str(checkout), "-n", "shop")
    assert code == 0 and "color: blue" in stdout
    assert f"warning: {checkout} has uncommitted changes (M cm.yaml, ?? new.yaml); syncer reads its last " \
           "commit. Pass --working-tree to use the files on disk." in stderr

    code, stdout, stderr = invoke("render", "--repo", str(checkout), "-n", "shop", "--working-tree")
    assert code == 0 and "color: green" in stdout and "name: new" in stdout
    assert "warning" not in stderr and "at working-tree" in stderr

    git(checkout, "add", ".")
    git(checkout, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "green")
    assert "warning" not in invoke("render", "--repo", str(checkout), "-n", "shop")[2]


def test_working_tree_and_revision_exclude_each_other(checkout: Path) -> None:
    code, _, stderr = invoke("render", "--repo", str(checkout), "--working-tree", "--revision", "main")
    assert code == 2 and "give --working-tree or --revision, not both" in stderr


def test_namespace_defaults_to_the_contexts(checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    code, stdout, _ = invoke("render", "--repo", str(checkout))
    assert code == 0 and yaml.safe_load(stdout)["metadata"]["namespace"] == "shop"
    code, stdout, _ = invoke("render", "--repo", str(checkout), "-n", "other")
    assert yaml.safe_load(stdout)["metadata"]["namespace"] == "other"


def test_no_color_means_no_escape_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # as if stderr were a terminal

    def printed() -> str:
        stream = io.StringIO()
        console(stream).print(Text("dry run: app shop", style="bold"), Text("failed", style="bold red"))
        return stream.getvalue()

    assert "\x1b[" in printed()
    monkeypatch.setenv("NO_COLOR", "1")
    assert printed() == "dry run: app shop failed\n"


def change(name: str) -> Change:
    return Change(ref=ObjectRef(group="", kind="ConfigMap", namespace="shop", name=name), api_version="v1",
                  action="created")


def test_without_a_terminal_progress_is_a_plain_line_every_few_seconds() -> None:
    stream = io.StringIO()
    stats = RequestStats()
    progress = StepProgress(Console(file=stream, force_terminal=False), total=300, plain_interval=0.1)
    with progress.running(stats):
        for _ in range(40):
            stats.count("dry-run")
        time.sleep(0.25)
        progress.on_step(0, 2, 200)
        for index in range(120):
            progress.on_change(change(f"c{index}"))
        time.sleep(0.25)
    lines = stream.getvalue().splitlines()
    assert lines and "\x1b" not in stream.getvalue()
    assert lines[0].startswith("checking with the server: 40/300 objects (")
    assert lines[-1].startswith("syncing step 1/2 (200 objects): 120/300 objects (")


def test_on_a_terminal_the_bar_moves_while_the_server_checks() -> None:
    stream = io.StringIO()
    stats = RequestStats()
    progress = StepProgress(Console(file=stream, force_terminal=True, width=100), total=300)
    with progress.running(stats):
        for _ in range(40):
            stats.count("dry-run")
        time.sleep(0.6)
        assert "checking with the server" in stream.getvalue() and "40/300" in stream.getvalue()


def test_status_of_one_app_shows_the_whole_error_and_both_revisions() -> None:
    error = "validation failed for 1 object(s); nothing was changed:\n  ConfigMap/shop/x: metadata.labels: Invalid"
    row = AppStatusRow(app="shop", namespace="shop", status=AppStatus(
        revision="b" * 40, result="Failed", error=error, summary={"failed": 1}, time="2024-05-01T10:00:00Z",
        applied_revision="a" * 40))
    lines = detail_lines(row)
    assert f"Last attempted:   {'b' * 40}" in lines and f"Last applied:     {'a' * 40}" in lines
    assert lines[-3:] == ["Error:", "  validation failed for 1 object(s); nothing was changed:",
                          "    ConfigMap/shop/x: metadata.labels: Invalid"]
    assert_valid({"schemaVersion": "v1", "kind": "AppStatus", **row.to_dict()}, kind="AppStatus")


# -- the output rule: a result on stdout; progress, warnings, logs and errors on stderr ------

def test_a_syncs_lines_and_summary_are_the_result_its_warnings_and_error_are_not() -> None:
    """`syncer sync` prints through print_changeset: a pipe reading stdout gets every object's
    line and the summary, and nothing else; the warning and the error stop at stderr."""
    out, err = io.StringIO(), io.StringIO()
    changes = ChangeSet(app="shop", revision="abc", changes=[
        change("web"), Change(ref=ObjectRef(group="", kind="ConfigMap", namespace="shop", name="db"),
                              api_version="v1", action=Action.FAILED, message="exceeded quota")],
        error="a write failed; nothing was pruned", warnings=["the status was not recorded"])
    print_changeset(changes, out=console(out), err=console(err), namespace="shop")
    assert out.getvalue().splitlines() == [
        "created    ConfigMap/shop/web",
        "failed     ConfigMap/shop/db  exceeded quota",
        "app shop at abc (inventory ConfigMap/shop/syncer-shop): 1 created, 0 configured, 0 unchanged, "
        "0 deleted, 1 failed",
    ]
    assert err.getvalue().splitlines() == ["warning: the status was not recorded",
                                           "error: a write failed; nothing was pruned"]


def test_dev_cluster_down_says_its_result_on_stdout_and_status_its_absence_on_stderr(tmp_path: Path) -> None:
    workdir = tmp_path / "none"
    assert invoke("dev-cluster", "down", "--dir", str(workdir)) == (0, f"no dev cluster in {workdir}; nothing to stop\n", "")
    code, stdout, stderr = invoke("dev-cluster", "status", "--dir", str(workdir))
    assert (code, stdout, stderr) == (1, "", f"no dev cluster in {workdir}\n")


def test_a_usage_error_of_run_goes_to_stderr_alone() -> None:
    code, stdout, stderr = invoke("run", "--shard", "--leader-elect", "--kubeconfig", "/nonexistent")
    assert code == 2 and stdout == "" and "--leader-elect and --shard exclude each other" in stderr


def test_render_puts_the_manifests_alone_on_stdout(checkout: Path) -> None:
    code, stdout, stderr = invoke("render", "--repo", str(checkout), "-n", "shop")
    assert code == 0 and list(yaml.safe_load_all(stdout))[0]["kind"] == "ConfigMap"
    assert stderr.startswith("rendered 1 object from ") and "rendered" not in stdout


def test_a_sync_names_each_changed_fields_cause_under_its_object() -> None:
    web = Change(ref=ObjectRef(group="apps", kind="Deployment", namespace="shop", name="web"), api_version="apps/v1",
                 action=Action.CONFIGURED, message="changed .spec.replicas (drift: kubectl)", fields=(
                     FieldChange(".spec.replicas", Cause.DRIFT, manager="kubectl", takes_over=True),
                     FieldChange(".spec.template.spec.containers[0].image", Cause.GIT),
                     FieldChange(".spec.strategy", Cause.DEFAULT)))
    changes = ChangeSet(app="shop", revision="abc", changes=[web])

    def printed(*, not_changes: bool) -> list[str]:
        out = io.StringIO()
        print_changeset(changes, out=console(out), err=console(io.StringIO()), namespace="shop",
                        not_changes=not_changes)
        return out.getvalue().splitlines()[1:-1]

    assert printed(not_changes=False) == [
        "  .spec.replicas                           drift: kubectl, takes over .spec.replicas from kubectl",
        "  .spec.template.spec.containers[0].image  git",
    ]
    assert printed(not_changes=True)[-1] == "  .spec.strategy                           default (not a change)"
