"""The output rule, command by command, against a real API server: a command's result goes to
stdout (the diff, per-object lines and the summary, the status table, the version text, the
App's outcome, or the `-o json|yaml` document alone); progress, warnings, logs and errors go to
stderr. Each test reads the two streams apart (click's CliRunner keeps them separate) as a
user's `| grep`, `| less -R` or `> file` would.

Report 16 of issue 20: `syncer status` printed its table to stderr, so `syncer status | grep`
found nothing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from syncer import __version__
from syncer.cli import cli
from tests.conftest import ClusterAccess
from tests.e2e.apps import write_app
from tests.schema import assert_valid

CRD = Path(__file__).resolve().parents[2] / "examples" / "deploy" / "crd.yaml"
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: %s}\n"


def invoke(cluster: ClusterAccess, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context],
                                prog_name="syncer")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def grep(text: str, word: str) -> list[str]:
    """What `| grep word` prints."""
    return [line for line in text.splitlines() if word in line]


@pytest.fixture
def app(tmp_path: Path) -> Path:
    return write_app(tmp_path / "app", {"cm.yaml": CONFIGMAP % "blue"})


def test_diff_prints_the_diff_and_its_summary_on_stdout(cluster: ClusterAccess, namespace: str, app: Path) -> None:
    args = ("diff", "--repo", str(app), "--name", "shop", "-n", namespace)
    code, stdout, stderr = invoke(cluster, *args)
    assert code == 1, stderr
    assert stdout.splitlines()[0] == f"+ v1 ConfigMap {namespace}/settings"
    assert grep(stdout, "+ v1") == [f"+ v1 ConfigMap {namespace}/settings"]
    assert "+  color: blue" in stdout.splitlines()
    assert stdout.splitlines()[-1] == (f"diff: app shop at working-tree (inventory ConfigMap/{namespace}/syncer-shop): "
                                       "1 created, 0 configured, 0 unchanged, 0 deleted")
    assert "\x1b" not in stdout, "stdout is not a terminal: no colour"
    assert "ConfigMap" not in stderr and "diff:" not in stderr

    code, stdout, stderr = invoke(cluster, *args, "-o", "json")
    assert code == 1
    assert_valid(json.loads(stdout), kind="Diff")  # the document alone: any other line would break the parse
    assert "ConfigMap" not in stderr


def test_sync_prints_each_object_and_the_summary_on_stdout(cluster: ClusterAccess, namespace: str, app: Path) -> None:
    args = ("sync", "--repo", str(app), "--name", "shop", "-n", namespace)
    code, stdout, stderr = invoke(cluster, *args)
    assert code == 0, stderr
    assert stdout.splitlines() == [
        f"created    ConfigMap/{namespace}/settings",
        f"app shop at working-tree (inventory ConfigMap/{namespace}/syncer-shop): 1 created, 0 configured, "
        "0 unchanged, 0 deleted",
    ]
    assert stderr == ""

    write_app(app, {"cm.yaml": CONFIGMAP % "green"})
    code, stdout, stderr = invoke(cluster, *args, "-o", "yaml")
    assert code == 0, stderr
    document = yaml.safe_load(stdout)
    assert_valid(document, kind="Sync")
    assert document["summary"]["configured"] == 1 and "configured" not in stderr

    write_app(app, {"cm.yaml": CONFIGMAP % "green", "bad.yaml": "apiVersion: v1\nkind: Nope\nmetadata: {name: x}\n"})
    code, stdout, stderr = invoke(cluster, *args)
    assert code == 2 and stdout == "", "a sync that fails before it has a result prints none"
    assert stderr.startswith("error: ") and f"Nope/{namespace}/x" in stderr


def test_status_table_can_be_grepped(cluster: ClusterAccess, namespace: str, app: Path) -> None:
    """Report 16: `syncer status | grep shop` found nothing, the table being on stderr."""
    code, stdout, stderr = invoke(cluster, "status", "-n", namespace)
    assert (code, stdout) == (0, ""), "no app: an empty result, as kubectl's `No resources found`"
    assert stderr == f"no syncer apps found in namespace {namespace}\n"

    assert invoke(cluster, "sync", "--repo", str(app), "--name", "shop", "-n", namespace)[0] == 0
    code, stdout, stderr = invoke(cluster, "status", "-n", namespace)
    assert code == 0 and stderr == ""
    header, *rows = stdout.splitlines()
    assert header.split() == ["APP", "NAMESPACE", "RESULT", "REVISION", "SYNCED", "CHANGES", "ERROR"]
    assert [row.split()[:4] for row in grep(stdout, "shop")] == [["shop", namespace, "Succeeded", "working-tree"]]

    code, stdout, stderr = invoke(cluster, "status", "shop", "-n", namespace)
    assert code == 0 and stderr == ""
    assert grep(stdout, "Result:") == ["Result:           Succeeded"]


def test_version_text_is_the_result(cluster: ClusterAccess) -> None:
    code, stdout, stderr = invoke(cluster, "version")
    assert (code, stderr) == (0, "")
    client, server = stdout.splitlines()
    assert client == f"Client Version: {__version__}" and server.startswith("Server Version: v1.")


@pytest.fixture
def app_object(cluster: ClusterAccess, namespace: str) -> Iterator[str]:
    """An App named shop (the CRD of examples/deploy, installed once and left for the session's
    other tests); no daemon serves it: the commands below only change the App."""
    kubectl = ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context]
    subprocess.run([*kubectl, "apply", "-f", str(CRD)], check=True, capture_output=True, timeout=120)
    subprocess.run([*kubectl, "wait", "--for=condition=Established", "crd/apps.syncer.dev", "--timeout=60s"],
                   check=True, capture_output=True, timeout=120)
    body = {"apiVersion": "syncer.dev/v1alpha1", "kind": "App", "metadata": {"name": "shop", "namespace": namespace},
            "spec": {"repo": "https://git.example.com/shop.git", "revision": "main", "path": ".", "interval": "1h"}}
    subprocess.run([*kubectl, "apply", "-f", "-"], input=json.dumps(body), text=True, check=True, capture_output=True,
                   timeout=120)
    yield "shop"


def test_app_commands_print_their_outcome_on_stdout(cluster: ClusterAccess, namespace: str, app_object: str) -> None:
    code, stdout, stderr = invoke(cluster, "reconcile", app_object, "-n", namespace)
    assert code == 0 and stderr == ""
    assert stdout.startswith(f"App/{namespace}/shop: sync requested (") and len(stdout.splitlines()) == 1

    assert invoke(cluster, "suspend", app_object, "-n", namespace) == (0, f"App/{namespace}/shop: suspended\n", "")
    code, stdout, stderr = invoke(cluster, "reconcile", app_object, "-n", namespace)
    assert code == 2 and stdout == "" and "suspended; `syncer resume shop" in stderr
    assert invoke(cluster, "resume", app_object, "-n", namespace) == (0, f"App/{namespace}/shop: resumed\n", "")
