"""Sync history and interrupted syncs, against the real API server: what `syncer history`
shows after CLI syncs, daemon heals and a failure; that an idle resync writes nothing; and a
`syncer sync` killed with SIGKILL mid-sync, reported as Interrupted by the next run (the CLI's
and the daemon's), which then converges."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kubernetes import client

from syncer.apply.intent import INTENT_ANNOTATION
from syncer.apply.lock import lock_name
from syncer.apply.status import HISTORY_ANNOTATION
from syncer.cli import cli
from syncer.config import AppConfig
from syncer.daemon import AppReconciler, Metrics
from syncer.kube import Kube
from tests.conftest import ClusterAccess
from tests.e2e.apps import SLACK, configmap, signal_at_write, write_app
from tests.schema import assert_valid

OBJECTS = 6


def cm(name: str, **data: str) -> str:
    items = "".join(f"\n  {k}: {v!r}" for k, v in data.items()) or " {}"
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:{items}\n"


def files(value: str) -> dict[str, str]:
    return {f"cm{n}.yaml": cm(f"cm{n}", v=value) for n in range(OBJECTS)}


def cli_args(cluster: ClusterAccess, *args: str) -> list[str]:
    return [*args, "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context]


def run_cli(cluster: ClusterAccess, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, cli_args(cluster, *args), prog_name="syncer")
    return result.exit_code, result.stdout, result.stderr


def sync_args(app: Path, namespace: str, name: str = "shop") -> list[str]:
    return ["sync", "--repo", str(app), "--name", name, "--namespace", namespace]


def history(cluster: ClusterAccess, namespace: str, name: str = "shop") -> list[dict[str, Any]]:
    code, out, err = run_cli(cluster, "history", "--name", name, "-n", namespace, "-o", "json")
    assert code == 0, err
    document = json.loads(out)
    assert_valid(document, kind="History")
    items: list[dict[str, Any]] = document["items"]
    return items


def parent(kube_api: client.ApiClient, namespace: str, name: str = "shop") -> Any:
    return client.CoreV1Api(kube_api).read_namespaced_config_map(f"syncer-{name}", namespace)


def test_history_of_cli_syncs_newest_first_with_failures_and_no_entry_for_a_resync(
    tmp_path: Path, cluster: ClusterAccess, namespace: str, kube_api: client.ApiClient,
) -> None:
    app = write_app(tmp_path / "app", files("a"))
    assert run_cli(cluster, *sync_args(app, namespace))[0] == 0
    write_app(app, files("b"))
    assert run_cli(cluster, *sync_args(app, namespace))[0] == 0
    version = parent(kube_api, namespace).metadata.resource_version
    assert run_cli(cluster, *sync_args(app, namespace))[0] == 0
    assert parent(kube_api, namespace).metadata.resource_version == version, "a resync writes nothing"
    write_app(app, {**files("b"), "bad.yaml": "apiVersion: v1\nkind: Nope\nmetadata: {name: x}\n"})
    assert run_cli(cluster, *sync_args(app, namespace))[0] == 2

    entries = history(cluster, namespace)
    assert [(e["result"], e["trigger"]["kind"]) for e in entries] == [
        ("Failed", "cli"), ("Succeeded", "cli"), ("Succeeded", "cli")]
    failed, second, first = entries
    assert "Nope" in failed["error"]
    assert second["summary"] == {"configured": OBJECTS} and first["summary"] == {"created": OBJECTS}
    assert first["trigger"]["user"], "the kubeconfig's user ran it"
    assert second["planDigest"].startswith("sha256:") and second["planDigest"] != first["planDigest"]
    assert second["started"] <= second["finished"] and second["durationSeconds"] >= 0
    assert INTENT_ANNOTATION not in parent(kube_api, namespace).metadata.annotations, "no intent at rest"

    code, out, err = run_cli(cluster, "history", "--name", "shop", "-n", namespace)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["STARTED", "REVISION", "TRIGGER", "RESULT"]
    assert "Failed" in lines[1] and f"{OBJECTS} configured" in lines[2] and f"{OBJECTS} created" in lines[3]

    code, out, err = run_cli(cluster, "history", "--name", "nothing", "-n", namespace)
    assert code == 2 and out == "" and f"ConfigMap/{namespace}/syncer-nothing" in err


def test_daemon_heals_share_an_entry_and_an_idle_tick_writes_nothing(
    tmp_path: Path, kube: Kube, cluster: ClusterAccess, namespace: str, kube_api: client.ApiClient,
) -> None:
    app = write_app(tmp_path / "app", files("a"))
    config = AppConfig(name="shop", repo=str(app), namespace=namespace, timeout=30)
    reconciler = AppReconciler(config, kube=kube, metrics=Metrics([config.id]), lock_timeout=5)
    assert reconciler.tick()
    core = client.CoreV1Api(kube_api)
    for drifted in ("cm1", "cm2"):
        core.patch_namespaced_config_map(drifted, namespace, {"data": {"v": "by hand"}})
        reconciler.note_drift()
        assert reconciler.tick()
        assert configmap(kube_api, namespace, drifted).data == {"v": "a"}
    version = parent(kube_api, namespace).metadata.resource_version
    reconciler.note_drift()  # a heal that finds nothing to change
    assert reconciler.tick()
    assert parent(kube_api, namespace).metadata.resource_version == version

    heal, first = history(cluster, namespace)
    assert first["trigger"] == {"kind": "interval"} and first["summary"] == {"created": OBJECTS}
    assert heal["trigger"]["kind"] == "heal" and heal["count"] == 2
    assert set(heal["trigger"]["objects"]) == {f"ConfigMap/{namespace}/cm1", f"ConfigMap/{namespace}/cm2"}
    assert heal["summary"]["configured"] == 2
    assert reconciler.history is not None and [e.to_dict() for e in reconciler.history] == [heal, first]


KILL_AT_WRITE = signal_at_write("SIGKILL")
LOCK_DURATION, REQUEST_TIMEOUT = 2, 5


def killed_sync(cluster: ClusterAccess, app: Path, namespace: str, *, at_write: int) -> None:
    """`syncer sync` with --concurrency 1, SIGKILLed right before its `at_write`-th write
    under the lock (the first is its intent)."""
    done = subprocess.run(
        [sys.executable, "-c", KILL_AT_WRITE, *cli_args(cluster, *sync_args(app, namespace)), "--concurrency", "1",
         "--lock-duration", f"{LOCK_DURATION}s", "--request-timeout", f"{REQUEST_TIMEOUT}s"],
        capture_output=True, text=True, timeout=SLACK,
        env={**os.environ, "SYNCER_TEST_STOP_AT_WRITE": str(at_write)})
    assert done.returncode == -9, f"the sync was not killed: {done.returncode} {done.stderr}"


@pytest.mark.parametrize(("at_write", "applied"), [
    pytest.param(3, 1, id="after-one-object"),
    pytest.param(2 + OBJECTS, OBJECTS, id="after-every-object-before-its-result"),
])
def test_a_killed_cli_sync_is_reported_interrupted_by_the_next_sync_which_converges(
    tmp_path: Path, cluster: ClusterAccess, namespace: str, kube_api: client.ApiClient, at_write: int, applied: int,
) -> None:
    app = write_app(tmp_path / "app", files("a"))
    assert run_cli(cluster, *sync_args(app, namespace))[0] == 0
    write_app(app, files("b"))
    killed_sync(cluster, app, namespace, at_write=at_write)

    live = [configmap(kube_api, namespace, f"cm{n}").data["v"] for n in range(OBJECTS)]
    assert live.count("b") == applied, f"the fault was injected where chosen: {live}"
    annotations = parent(kube_api, namespace).metadata.annotations
    assert INTENT_ANNOTATION in annotations, "the killed sync left its intent"
    assert client.CoordinationV1Api(kube_api).read_namespaced_lease(lock_name("shop"), namespace)

    code, out, err = run_cli(cluster, *sync_args(app, namespace), "--lock-timeout", f"{SLACK:.0f}s")
    assert code == 0, err
    assert "was interrupted" in err and f"{applied} of the {OBJECTS} planned object(s) are already applied" in err
    assert [configmap(kube_api, namespace, f"cm{n}").data["v"] for n in range(OBJECTS)] == ["b"] * OBJECTS
    assert INTENT_ANNOTATION not in parent(kube_api, namespace).metadata.annotations

    newest, interrupted, first = history(cluster, namespace)
    assert interrupted["result"] == "Interrupted" and interrupted["trigger"]["kind"] == "cli"
    assert (interrupted["alreadyApplied"], interrupted["planned"]) == (applied, OBJECTS)
    assert interrupted["planDigest"].startswith("sha256:")
    assert newest["result"] == "Succeeded"
    assert newest["summary"] == ({"configured": OBJECTS - applied, "unchanged": applied} if applied < OBJECTS
                                 else {"unchanged": OBJECTS})
    events = client.CoreV1Api(kube_api).list_namespaced_event(namespace).items
    assert [e.reason for e in events if e.reason == "SyncInterrupted"] == ["SyncInterrupted"]


def test_a_daemon_finds_a_killed_sync_and_reports_it(
    tmp_path: Path, kube: Kube, cluster: ClusterAccess, namespace: str, kube_api: client.ApiClient,
) -> None:
    app = write_app(tmp_path / "app", files("a"))
    assert run_cli(cluster, *sync_args(app, namespace))[0] == 0
    write_app(app, files("b"))
    killed_sync(cluster, app, namespace, at_write=3)

    config = AppConfig(name="shop", repo=str(app), namespace=namespace, timeout=30)
    reconciler = AppReconciler(config, kube=kube, metrics=Metrics([config.id]), lock_timeout=SLACK)
    assert reconciler.tick()
    assert reconciler.last_attempt is not None and reconciler.last_attempt.changes is not None
    assert reconciler.last_attempt.changes.interrupted is not None
    assert [configmap(kube_api, namespace, f"cm{n}").data["v"] for n in range(OBJECTS)] == ["b"] * OBJECTS
    assert HISTORY_ANNOTATION in parent(kube_api, namespace).metadata.annotations
    newest, interrupted, _ = history(cluster, namespace)
    assert (newest["trigger"]["kind"], interrupted["result"], interrupted["alreadyApplied"]) == (
        "interval", "Interrupted", 1)
