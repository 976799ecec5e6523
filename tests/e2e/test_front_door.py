"""The command line against a real API server as a kubectl user meets it: a KUBECONFIG of
several files, the context's namespace, `insecure-skip-tls-verify` said once, the output
streams (a result on stdout, messages on stderr), colour decided by the stream's own terminal,
NO_COLOR on a terminal and `syncer version`."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ClusterAccess
from tests.e2e.apps import write_app
from tests.schema import assert_valid

SYNCER = Path(sys.executable).parent / "syncer"
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: blue}\n"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "NO_COLOR", "FORCE_COLOR")}
    return subprocess.run([str(SYNCER), *args], env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=120)


def split_kubeconfig(cluster: ClusterAccess, directory: Path, *, namespace: str) -> str:
    """The cluster's kubeconfig as two files, as people keep them: clusters and users in one,
    a context (with a namespace) in the other, which is also the only one naming a current
    context. Returns the KUBECONFIG value."""
    config: dict[str, Any] = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in config["contexts"] if c["name"] == cluster.context)
    for cluster_entry in config["clusters"]:
        ca = cluster_entry["cluster"].get("certificate-authority")
        if ca and not Path(ca).is_absolute():
            cluster_entry["cluster"]["certificate-authority"] = str(cluster.kubeconfig.parent / ca)
    credentials = {**config, "contexts": [], "current-context": ""}
    credentials.pop("current-context")
    contexts = {"apiVersion": "v1", "kind": "Config", "current-context": "work",
                "contexts": [{"name": "work", "context": {**context["context"], "namespace": namespace}}]}
    (directory / "credentials").write_text(yaml.safe_dump(credentials))
    (directory / "contexts").write_text(yaml.safe_dump(contexts))
    return f"{directory / 'contexts'}{os.pathsep}{directory / 'missing'}{os.pathsep}{directory / 'credentials'}"


def test_a_context_split_across_kubeconfig_files_with_its_namespace(
    cluster: ClusterAccess, namespace: str, tmp_path: Path
) -> None:
    app = write_app(tmp_path / "app", {"cm.yaml": CONFIGMAP})
    kubeconfig = split_kubeconfig(cluster, tmp_path, namespace=namespace)

    result = run("diff", "--repo", str(app), "--name", "shop", "-o", "json", env={"KUBECONFIG": kubeconfig})
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert_valid(report, kind="Diff")
    assert report["inventory"] == f"ConfigMap/{namespace}/syncer-shop"
    assert [(c["action"], c["namespace"], c["name"]) for c in report["changes"]] == [
        ("created", namespace, "settings")]

    text = run("diff", "--repo", str(app), "--name", "shop", env={"KUBECONFIG": kubeconfig})
    assert text.returncode == 1 and "diff:" not in text.stderr
    assert text.stdout.splitlines()[-1] == (
        f"diff: app shop at working-tree (inventory ConfigMap/{namespace}/syncer-shop, namespace from "
        "context work): 1 created, 0 configured, 0 unchanged, 0 deleted")

    wrong = run("diff", "--repo", str(app), "--name", "shop", "--context", "wrok", env={"KUBECONFIG": kubeconfig})
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert wrong.stderr.strip().endswith("context wrok: no such context; the contexts are: work")


def test_sync_streams_and_schema(cluster: ClusterAccess, namespace: str, tmp_path: Path) -> None:
    """The result on stdout, in text or as the document alone; messages on stderr."""
    app = write_app(tmp_path / "app", {"cm.yaml": CONFIGMAP})
    args = ["--repo", str(app), "--name", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig),
            "--context", cluster.context]
    for output in ("json", "yaml"):
        result = run("sync", *args, "--dry-run", "-o", output)
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout) if output == "json" else yaml.safe_load(result.stdout)
        assert_valid(document, kind="Sync")
        assert document["dryRun"] is True and document["summary"]["created"] == 1
    text = run("sync", *args)
    assert text.returncode == 0 and text.stderr == ""
    assert f"created    ConfigMap/{namespace}/settings" in text.stdout.splitlines()
    status = run("status", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig),
                 "--context", cluster.context, "-o", "yaml")
    assert status.returncode == 0
    assert_valid(yaml.safe_load(status.stdout), kind="AppStatus")


def test_insecure_skip_tls_verify_is_said_once(cluster: ClusterAccess, namespace: str, tmp_path: Path) -> None:
    config: dict[str, Any] = yaml.safe_load(cluster.kubeconfig.read_text())
    for entry in config["clusters"]:
        entry["cluster"].pop("certificate-authority", None)
        entry["cluster"].pop("certificate-authority-data", None)
        entry["cluster"]["insecure-skip-tls-verify"] = True
    kubeconfig = tmp_path / "insecure"
    kubeconfig.write_text(yaml.safe_dump(config))
    app = write_app(tmp_path / "app", {"cm.yaml": CONFIGMAP})
    result = run("diff", "--repo", str(app), "--name", "shop", "-n", namespace, "--kubeconfig", str(kubeconfig),
                 "--context", cluster.context)
    assert result.returncode == 1, result.stderr
    assert "InsecureRequestWarning" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "not verified" in line] == [
        f"WARNING syncer.kube.config: TLS certificates of {config['clusters'][0]['cluster']['server']} are not verified "
        "(insecure-skip-tls-verify in the kubeconfig)"]


def on_a_terminal(*args: str, env: dict[str, str], stream: str) -> tuple[int, str, str]:
    """Run with one stream ("stdout" or "stderr") on a pseudo-terminal and the other on a pipe;
    returns the exit code, what the terminal got and what the pipe got."""
    controller, terminal = pty.openpty()
    base = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "NO_COLOR", "FORCE_COLOR")}
    streams: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, stream: terminal}
    process = subprocess.Popen([str(SYNCER), *args], env={**base, "TERM": "xterm", **env}, **streams)
    os.close(terminal)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    piped_stdout, piped_stderr = process.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(controller)
    piped = piped_stderr if stream == "stdout" else piped_stdout
    return process.returncode, b"".join(chunks).decode(errors="replace"), piped.decode(errors="replace")


def test_no_color_on_a_terminal_means_no_escape_codes(cluster: ClusterAccess, namespace: str, tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", {"cm.yaml": CONFIGMAP})
    args = ["diff", "--repo", str(app), "--name", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig),
            "--context", cluster.context]
    code, coloured, _ = on_a_terminal(*args, env={}, stream="stdout")
    assert code == 1 and "\x1b[" in coloured and "+ v1 ConfigMap" in coloured
    code, plain, _ = on_a_terminal(*args, env={"NO_COLOR": "1"}, stream="stdout")
    assert code == 1 and "+ v1 ConfigMap" in plain
    assert "\x1b" not in plain


def test_colour_follows_the_stream_the_text_goes_to(cluster: ClusterAccess, namespace: str, tmp_path: Path) -> None:
    """`syncer diff | less` (stderr still on the terminal) gets plain text; a terminal stdout
    gets colour while stderr goes to a file."""
    app = write_app(tmp_path / "app", {"cm.yaml": CONFIGMAP})
    args = ["diff", "--repo", str(app), "--name", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig),
            "--context", cluster.context]
    code, _, piped_stdout = on_a_terminal(*args, env={}, stream="stderr")
    assert code == 1 and "+ v1 ConfigMap" in piped_stdout
    assert "\x1b" not in piped_stdout
    code, terminal_stdout, piped_stderr = on_a_terminal(*args, "-vv", env={}, stream="stdout")
    assert code == 1 and "\x1b[" in terminal_stdout
    assert "DEBUG" in piped_stderr and "\x1b" not in piped_stderr


def test_version_shows_client_and_server(cluster: ClusterAccess) -> None:
    args = ["version", "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context]
    document = json.loads(run(*args, "-o", "json").stdout)
    assert_valid(document, kind="Version")
    assert document["serverVersion"]["gitVersion"].startswith("v1.")
    text = run(*args)
    assert text.returncode == 0 and text.stderr == ""
    assert text.stdout.splitlines()[1] == f"Server Version: {document['serverVersion']['gitVersion']}"
