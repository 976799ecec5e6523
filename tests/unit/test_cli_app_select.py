"""`--app NAME` without a cluster: the flags it replaces are refused before anything is read,
`--name` or `--app` is required, and an App's sync options are the daemon's (the same
function builds them, with the same field manager)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from syncer.apply import SyncOptions
from syncer.apply.options import DEFAULT_FIELD_MANAGER
from syncer.cli import cli
from syncer.cli.diff import diff_command
from syncer.cli.sync import sync_command
from syncer.daemon import DaemonOptions
from syncer.daemon.appspec import app_spec
from syncer.diff import IgnoreRule

UNREACHABLE = "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n" \
              "users: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n" \
              "current-context: c\n"


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(UNREACHABLE)
    return str(path)


@pytest.mark.parametrize("command", ["diff", "sync"])
@pytest.mark.parametrize("flags", [("--repo", "."), ("--path", "deploy"), ("--name", "shop"),
                                   ("--create-namespace",), ("--ignore-differences", __file__)])
def test_the_flags_an_app_replaces_are_refused_before_the_cluster_is_asked(
    command: str, flags: tuple[str, ...], kubeconfig: str,
) -> None:
    result = CliRunner().invoke(cli, [command, "--app", "shop", "-n", "team-a", *flags, "--kubeconfig", kubeconfig,
                                      "--request-timeout", "2s"])
    assert result.exit_code == 2, result.output
    assert f"--app shop takes {flags[0]} from the App object" in result.output
    assert "127.0.0.1" not in result.output  # refused before any request


@pytest.mark.parametrize("command", ["diff", "sync"])
def test_an_app_is_named_by_name_or_by_app(command: str, kubeconfig: str) -> None:
    result = CliRunner().invoke(cli, [command, "-n", "team-a", "--kubeconfig", kubeconfig])
    assert result.exit_code == 2
    assert "Missing option '--name'" in result.output and "'--app'" in result.output


def test_a_hand_sync_and_the_daemon_use_one_field_manager() -> None:
    defaults = {command.name: next(p.default for p in command.params if p.name == "field_manager")
                for command in (diff_command, sync_command)}
    assert defaults == {"diff": DaemonOptions().field_manager, "sync": DaemonOptions().field_manager}
    assert DEFAULT_FIELD_MANAGER == DaemonOptions().field_manager


def test_an_apps_sync_options_put_the_inventory_in_its_namespace_and_objects_in_its_target() -> None:
    spec = app_spec({"metadata": {"name": "shop", "namespace": "team-a"}, "spec": {
        "repo": "https://git.example.com/shop.git", "targetNamespace": "shop", "prune": False, "wait": True,
        "timeout": "90s", "ignoreDifferences": [{"kind": "ConfigMap", "jsonPointers": ["/data/size"]}]}})
    options = SyncOptions.for_app(spec.config, field_manager="syncer", lock_timeout=30.0)
    assert (options.app, options.namespace, options.inventory_namespace) == ("shop", "shop", "team-a")
    assert (options.prune, options.wait, options.timeout, options.lock_timeout) == (False, True, 90.0, 30.0)
    assert options.ignore == (IgnoreRule(group="", kind="ConfigMap", json_pointers=("/data/size",)),)
