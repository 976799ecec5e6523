"""`syncer status` and the status the daemon records: annotations on the ApplySet parent under
their own field manager, Events, and no write when nothing is new."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from kubernetes import client

from syncer.apply.status import ERROR_ANNOTATION, RESULT_ANNOTATION, STATUS_MANAGER
from syncer.cli import cli
from syncer.config import AppConfig
from syncer.daemon import AppReconciler, Metrics
from syncer.kube import Kube
from tests.conftest import ClusterAccess
from tests.schema import assert_valid


def reconciler(kube: Kube, directory: Path, *, name: str, namespace: str, files: dict[str, str]) -> AppReconciler:
    directory.mkdir(parents=True)
    for file, text in files.items():
        (directory / file).write_text(textwrap.dedent(text))
    app = AppConfig(name=name, repo=str(directory), namespace=namespace, timeout=30)
    return AppReconciler(app, kube=kube, metrics=Metrics([app.id]), lock_timeout=5)


GOOD = {"config.yaml": """\
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: web-config}
    data: {color: blue}
    """}
BAD = {"config.yaml": """\
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: bad-config, labels: {tier: "-not a label value-"}}
    """}


def status_cli(cluster: ClusterAccess, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli, ["status", "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context, *args],
        prog_name="syncer",
    )
    return result.exit_code, result.stdout, result.stderr


def test_status_is_recorded_and_listed(
    kube: Kube, cluster: ClusterAccess, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    good = reconciler(kube, tmp_path / "good", name="shop", namespace=namespace, files=GOOD)
    bad = reconciler(kube, tmp_path / "bad", name="broken", namespace=namespace, files=BAD)
    assert good.tick() is True
    assert bad.tick() is False

    core: Any = client.CoreV1Api(kube_api)  # Any: the client's models make every field optional
    broken_parent = core.read_namespaced_config_map("syncer-broken", namespace)
    assert broken_parent.metadata.annotations[RESULT_ANNOTATION] == "Failed"
    assert "ConfigMap/" in broken_parent.metadata.annotations[ERROR_ANNOTATION]
    assert [m.manager for m in broken_parent.metadata.managed_fields] == [STATUS_MANAGER]
    shop_parent = core.read_namespaced_config_map("syncer-shop", namespace)
    assert {m.manager for m in shop_parent.metadata.managed_fields} == {"syncer", STATUS_MANAGER}
    events = core.list_namespaced_event(namespace).items
    assert {(e.involved_object.name, e.reason, e.type) for e in events} == {
        ("syncer-shop", "SyncSucceeded", "Normal"), ("syncer-broken", "SyncFailed", "Warning")}

    # The same outcome again is not news: neither parent is written, no new Event.
    versions = {name: core.read_namespaced_config_map(name, namespace).metadata.resource_version
                for name in ("syncer-shop", "syncer-broken")}
    assert good.tick() is True
    assert bad.tick() is False
    assert {name: core.read_namespaced_config_map(name, namespace).metadata.resource_version
            for name in versions} == versions
    assert len(core.list_namespaced_event(namespace).items) == 2

    code, out, _ = status_cli(cluster, "-n", namespace, "-o", "json")
    assert code == 0
    document = json.loads(out)
    assert_valid(document, kind="AppStatusList")
    rows = {row["app"]: row for row in document["items"]}
    assert set(rows) == {"shop", "broken"}
    assert (rows["shop"]["result"], rows["shop"]["revision"], rows["shop"]["summary"]) == (
        "Succeeded", "working-tree", {"created": 1})
    assert rows["shop"]["error"] is None
    assert rows["broken"]["result"] == "Failed" and "bad-config" in rows["broken"]["error"]
    assert rows["broken"]["inventory"] == f"ConfigMap/{namespace}/syncer-broken"

    code, out, err = status_cli(cluster, "-n", namespace)
    assert code == 0 and err == ""
    header, *lines = out.splitlines()
    assert header.split() == ["APP", "NAMESPACE", "RESULT", "REVISION", "SYNCED", "CHANGES", "ERROR"]
    assert lines[0].split()[:4] == ["broken", namespace, "Failed", "working-tree"]
    assert lines[1].split()[:4] == ["shop", namespace, "Succeeded", "working-tree"]
    assert "1 created" in lines[1] and "ago" in lines[1]


def test_status_of_configured_apps_includes_those_never_synced(
    cluster: ClusterAccess, namespace: str, tmp_path: Path
) -> None:
    config = tmp_path / "apps.yaml"
    config.write_text(f"apps:\n- {{name: later, repo: ./deploy, namespace: {namespace}}}\n")
    code, out, _ = status_cli(cluster, "--config", str(config), "-o", "json")
    assert code == 0
    document = json.loads(out)
    assert_valid(document, kind="AppStatusList")
    assert document["items"] == [{
        "app": "later", "namespace": namespace, "inventory": f"ConfigMap/{namespace}/syncer-later",
        "revision": None, "appliedRevision": None, "time": None, "result": None, "error": None, "summary": {},
    }]
    code, out, _ = status_cli(cluster, "--config", str(config))
    assert out.splitlines()[1].split() == ["later", namespace, "-", "-", "never", "-"]


def test_status_options_exclude_each_other(cluster: ClusterAccess) -> None:
    code, _, err = status_cli(cluster, "-n", "a", "-A")
    assert code == 2
    assert "give at most one of APP, --app, --config, --namespace and --all-namespaces" in err


def test_status_of_one_app_keeps_the_last_applied_revision(
    kube: Kube, cluster: ClusterAccess, namespace: str, tmp_path: Path
) -> None:
    """A failed sync records what it attempted and its whole error, and leaves the revision
    the cluster last applied."""
    repo = tmp_path / "repo"
    repo.mkdir()

    def commit(files: dict[str, str]) -> str:
        for file, text in files.items():
            (repo / file).write_text(textwrap.dedent(text))
        git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-qm", "change"], check=True)
        return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()

    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    applied = commit(GOOD)
    app = AppConfig(name="shop", repo=str(repo), namespace=namespace, timeout=30)
    reconciler = AppReconciler(app, kube=kube, metrics=Metrics([app.id]), lock_timeout=5,
                               cache_dir=tmp_path / "cache")
    assert reconciler.tick() is True
    attempted = commit(BAD)
    assert reconciler.tick() is False

    code, out, _ = status_cli(cluster, "shop", "-n", namespace, "-o", "json")
    assert code == 0
    document = json.loads(out)
    assert_valid(document, kind="AppStatus")
    assert (document["result"], document["revision"], document["appliedRevision"]) == ("Failed", attempted, applied)
    first_line, *rest = document["error"].splitlines()
    assert first_line == "validation failed for 1 object(s); nothing was changed:"
    assert rest and f"ConfigMap/{namespace}/bad-config" in rest[0]

    code, out, err = status_cli(cluster, "shop", "-n", namespace)
    assert code == 0 and err == ""
    assert f"Last attempted:   {attempted}" in out and f"Last applied:     {applied}" in out
    assert f"  {rest[0]}" in out.splitlines(), "the whole error, not its first line"

    code, out, err = status_cli(cluster, "nope", "-n", namespace, "-o", "json")
    assert code == 2 and f"app nope has no inventory in namespace {namespace}" in err
    assert_valid(json.loads(out), kind="Error")
