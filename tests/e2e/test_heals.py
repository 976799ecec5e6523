"""Heals restore the recorded revision, never an older one (issue 20, report 4), against a real
API server with `syncer run` as a separate process and the `syncer` CLI as users run it.

A heal applies a render of exactly the revision the app's ApplySet parent records as applied,
whoever applied it: the daemon, a hand `syncer sync`, another replica. Only a Git change the
daemon sees moves the app on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from kubernetes import client

from syncer.apply.options import SyncOptions
from syncer.daemon.membership import MEMBER_LABEL
from syncer.daemon.rendezvous import owner as rendezvous_owner
from tests.conftest import ClusterAccess
from tests.e2e.apps import SLACK, configmap
from tests.e2e.test_apps import (  # noqa: F401 - fixtures
    Kubectl,
    app_yaml,
    condition,
    grant_service_account,
    installed,
    run_daemon,
    syncer,
)
from tests.e2e.test_daemon import SYNCER, commit, configmap_yaml, eventually, free_port, git
from tests.e2e.test_daemon import repo  # noqa: F401 - the fixture: a Git repository with shop/config.yaml

NAMES = [f"web-{index}" for index in range(6)]
WATCH_SECONDS = 6.0
"""How long the objects are watched for a revert: a heal starts half a second after a change
(`HEAL_DELAY`), so this is a dozen chances to go back in time, on a loaded machine too."""


def colors(api: client.ApiClient, namespace: str) -> set[str]:
    """The colors the app's ConfigMaps have now ("missing" for one that is not there)."""
    found = [configmap(api, namespace, name) for name in NAMES]
    return {(c.data or {}).get("color", "none") if c is not None else "missing" for c in found}


def files(color: str) -> dict[str, str]:
    return {f"shop/{name}.yaml": configmap_yaml(name, color) for name in NAMES}


def stays(api: client.ApiClient, namespace: str, color: str, *, seconds: float = WATCH_SECONDS) -> None:
    """Every ConfigMap has `color` now and at every look for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert colors(api, namespace) == {color}, f"went back in time: {colors(api, namespace)}"
        time.sleep(0.1)


def test_a_newer_commit_synced_by_hand_is_kept_and_healed_to(
    installed: Kubectl, cluster: ClusterAccess, repo: Path, namespace: str, kube_api: client.ApiClient,  # noqa: F811
    run_daemon: Callable[..., subprocess.Popen[str]],  # noqa: F811
) -> None:
    """Report 4b: a newer commit applied by hand with `syncer sync` was reverted to the App's
    older render within a second, and stayed reverted until the next interval. Now the hand
    sync stays, a hand edit afterwards is healed to the hand-synced revision, and the App says
    that revision is applied. A rollback by hand stays too (and the App says it is not its
    revision), until an explicit request (or the next commit) moves the App on."""
    kubectl = installed
    grant_service_account(kube_api, namespace, "deployer")
    git(repo, "rm", "-q", "shop/config.yaml")
    first = commit(repo, files("blue"))
    run_daemon("--watch-namespace", namespace, "--require-service-account")
    # An interval of an hour: nothing but a heal can write during the test.
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "shop", repo=repo, path="shop", interval="1h",
                                               serviceAccountName="deployer"))
    kubectl("wait", "--for=condition=Ready", "app/shop", "-n", namespace, f"--timeout={SLACK:.0f}s")
    assert colors(kube_api, namespace) == {"blue"}
    assert kubectl.status(namespace, "shop")["lastAppliedRevision"] == first

    second = commit(repo, files("green"))
    hand = syncer(cluster, "sync", "--repo", str(repo), "--revision", "main", "--path", "shop", "--name", "shop",
                  "-n", namespace)
    assert hand.returncode == 0, hand.stderr
    stays(kube_api, namespace, "green")

    # A heal now restores what the cluster records: the hand-synced revision.
    kubectl("patch", "configmap", NAMES[0], "-n", namespace, "--type=merge", "-p", '{"data": {"color": "red"}}')
    eventually(lambda: colors(kube_api, namespace) == {"green"}, timeout=SLACK, what="the hand edit to be healed")
    stays(kube_api, namespace, "green", seconds=2)

    def tells(revision: str, ready: str) -> bool:
        status = kubectl.status(namespace, "shop")
        return (status.get("lastAppliedRevision"), condition(status, "Ready").get("status")) == (revision, ready)

    eventually(lambda: tells(second, "True"), timeout=SLACK, what="the App to say the hand-synced commit is applied")

    # A rollback by hand (an older commit, not the branch's head) is kept too; the App says
    # the cluster runs another revision than its own.
    back = syncer(cluster, "sync", "--repo", str(repo), "--revision", first, "--path", "shop", "--name", "shop",
                  "-n", namespace)
    assert back.returncode == 0, back.stderr
    stays(kube_api, namespace, "blue")
    eventually(lambda: condition(kubectl.status(namespace, "shop"), "Ready").get("status") == "False"
               and first[:12] in condition(kubectl.status(namespace, "shop"), "Ready").get("message", ""),
               timeout=SLACK, what="the App to say the cluster runs the rolled-back revision")

    # An explicit request (`syncer reconcile`) moves the App back to its branch's head.
    asked = syncer(cluster, "reconcile", "shop", "-n", namespace, "--wait", "--timeout", "60")
    assert asked.returncode == 0, asked.stderr
    assert colors(kube_api, namespace) == {"green"}
    eventually(lambda: tells(second, "True"), timeout=SLACK, what="the App to apply its head again")


# -- report 4a: a replica paused past its Lease ---------------------------------------------

MANY = [f"obj-{index:02d}" for index in range(20)]
LEASE_SECONDS = 4.0
WRITE_BOUND = 5.0
"""The replicas' `--request-timeout`: the bound a taker of their app locks waits beyond the
lock's duration."""


def many(color: str) -> dict[str, str]:
    return {f"shop/{name}.yaml": configmap_yaml(name, color) for name in MANY}


def many_colors(api: client.ApiClient, namespace: str) -> set[str]:
    found = [configmap(api, namespace, name) for name in MANY]
    return {(c.data or {}).get("color", "none") if c is not None else "missing" for c in found}


def synced(log: Path, *, since: float = 0.0) -> list[str]:
    """The revisions of the syncs of `shop` a replica logged (JSON lines) since a wall-clock time."""
    found = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if (record.get("app") == "shop" and "duration" in record
                    and datetime.fromisoformat(record["time"]).timestamp() >= since):
                found.append(str(record.get("revision")))
    return found


def identity(log: Path) -> str | None:
    """The replica's identity, from its first log lines."""
    for line in log.read_text().splitlines():
        if line.startswith("{") and "syncing 1 app(s)" in line:
            return str(json.loads(line)["message"]).rsplit(" as ", 1)[1].split(" ")[0]
    return None


def test_a_replica_paused_past_its_lease_does_not_go_back_in_time(
    cluster: ClusterAccess, repo: Path, namespace: str, kube_api: client.ApiClient, tmp_path: Path,  # noqa: F811
) -> None:
    """Report 4a: with `--shard`, a replica paused (SIGSTOP) past its Lease while Git moved to
    v2 and another replica applied v2 re-applied v1 to 20 objects when it resumed, until its
    next Git poll. Now it drops what it held when it lost the app, and heals only to the
    revision the cluster records: no object goes back to v1, and when it owns the app again
    its syncs are of v2."""
    git(repo, "rm", "-q", "shop/config.yaml")
    first = commit(repo, many("blue"))
    config = tmp_path / "apps.yaml"
    # An interval of an hour: only a takeover, a heal or a regained app syncs.
    config.write_text(f"apps:\n- {{name: shop, repo: {repo}, revision: main, path: shop, namespace: {namespace}, "
                      "interval: 1h}\n")
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    logs = [tmp_path / f"replica-{index}.log" for index in range(2)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for index, log in enumerate(logs):
            with log.open("wb") as stderr:
                processes.append(subprocess.Popen(
                    [str(SYNCER), "run", "--config", str(config), "--shard", "--leader-election-namespace", namespace,
                     "--lease-duration", f"{LEASE_SECONDS:.0f}s", "--request-timeout", f"{WRITE_BOUND:.0f}s",
                     "--listen", f"127.0.0.1:{free_port()}",
                     "--log-format", "json", "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context,
                     "--cache-dir", str(tmp_path / f"cache-{index}")],
                    stdout=subprocess.DEVNULL, stderr=stderr, env=env))
        eventually(lambda: many_colors(kube_api, namespace) == {"blue"}, timeout=SLACK, what="the first sync")
        # The owner once both are members (a replica alone at first syncs everything).
        identities = eventually(lambda: [identity(log) for log in logs] if all(map(identity, logs)) else None,
                                timeout=SLACK, what="both replicas' identities")
        eventually(lambda: len(client.CoordinationV1Api(kube_api).list_namespaced_lease(
            namespace, label_selector=f"{MEMBER_LABEL}=true").items) == 2, timeout=SLACK, what="two members")
        owner = identities.index(rendezvous_owner(f"{namespace}/shop", identities))
        eventually(lambda: first in synced(logs[owner]), timeout=SLACK, what="the owner's sync")
        paused, other = processes[owner], processes[1 - owner]
        time.sleep(1.0)  # its watches see its own sync's record settle
        paused.send_signal(signal.SIGSTOP)
        try:
            second = commit(repo, many("green"))
            # Paused mid-sync, the owner holds the app's lock: taken over after its duration
            # plus the holder's write bound (fencing).
            eventually(lambda: many_colors(kube_api, namespace) == {"green"},
                       timeout=LEASE_SECONDS + SyncOptions.lock_duration + WRITE_BOUND + SLACK,
                       what="the other replica to take the app over and apply v2")
            assert second in synced(logs[1 - owner])
        finally:
            paused.send_signal(signal.SIGCONT)
        resumed = time.time()
        # It rejoins, gets the app back (the same members give the same owner), and its
        # watches deliver every change the other replica made while it was stopped.
        eventually(lambda: synced(logs[owner], since=resumed), timeout=LEASE_SECONDS + SLACK,
                   what="the resumed replica to sync the app again", interval=0.05)
        deadline = time.monotonic() + WATCH_SECONDS
        while time.monotonic() < deadline:
            assert many_colors(kube_api, namespace) == {"green"}, "a resumed replica went back in time"
            time.sleep(0.1)
        assert set(synced(logs[owner], since=resumed)) == {second}
        assert other.poll() is None and paused.poll() is None
    finally:
        for process in processes:
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
