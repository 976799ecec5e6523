"""`syncer run --shard`: three daemon processes share twelve apps through membership Leases.

Every app is synced and its status written; each app is synced by the one replica that
rendezvous hashing gives it, never by two at once (from the replicas' JSON logs); a webhook
that reaches one replica is passed on to the owners; a SIGKILLed replica's apps are synced by
the survivors within about the lease duration, and its Lease is cleaned up."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import textwrap
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from syncer.apply.status import RESULT_ANNOTATION
from syncer.daemon.leader import ElectionOptions
from syncer.daemon.membership import MEMBER_LABEL, URL_ANNOTATION
from syncer.daemon.rendezvous import owner
from syncer.daemon.shard import ShardMember
from tests.conftest import ClusterAccess
from tests.e2e.apps import SLACK, configmap, connect, eventually, grant_restricted
from tests.e2e.test_apps import DEPLOY, Kubectl, app_yaml
from tests.e2e.test_daemon import SYNCER, commit, configmap_yaml, free_port, get, git

APPS = [f"app-{n:02d}" for n in range(12)]
LEASE_SECONDS = 4.0
SECRET = "shard-webhook-secret"


@dataclass
class Replica:
    port: int
    log: Path
    process: subprocess.Popen[bytes]
    apps: list[str] = field(default_factory=lambda: APPS)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def syncs(self) -> list[tuple[str, float, float]]:
        """(app, start, end) of every sync this replica logged, in wall-clock seconds."""
        found = []
        for line in self.log.read_text().splitlines():
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if record.get("app") in self.apps and "duration" in record:
                end = datetime.fromisoformat(record["time"]).timestamp()
                found.append((record["app"], end - float(record["duration"]), end))
        return found


def write_repo(root: Path, *, color: str) -> None:
    for app in APPS:
        (root / app).mkdir(parents=True, exist_ok=True)
        (root / app / "config.yaml").write_text(textwrap.dedent(f"""\
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: {app}-config
            data:
              color: {color}
            """))


@pytest.fixture
def replicas(cluster: ClusterAccess, namespace: str, tmp_path: Path) -> Iterator[list[Replica]]:
    repo = tmp_path / "repo"
    write_repo(repo, color="blue")
    config = tmp_path / "apps.yaml"
    config.write_text("apps:\n" + "".join(
        f"- {{name: {app}, repo: {repo}, path: {app}, namespace: {namespace}, interval: 2s}}\n" for app in APPS))
    env = {**{k: v for k, v in os.environ.items() if k != "KUBECONFIG"}, "SYNCER_WEBHOOK_SECRET": SECRET}
    started: list[Replica] = []
    for index in range(3):
        port = free_port()
        log = tmp_path / f"replica-{index}.log"
        with log.open("wb") as stderr:
            process = subprocess.Popen(
                [str(SYNCER), "run", "--config", str(config), "--shard", "--leader-election-namespace", namespace,
                 "--lease-duration", f"{LEASE_SECONDS:.0f}s", "--listen", f"127.0.0.1:{port}", "--log-format", "json",
                 "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context,
                 "--cache-dir", str(tmp_path / f"cache-{index}")],
                stdout=subprocess.DEVNULL, stderr=stderr, env=env,
            )
        started.append(Replica(port=port, log=log, process=process))
    yield started
    for replica in started:
        if replica.process.poll() is None:
            replica.process.send_signal(signal.SIGTERM)
    for replica in started:
        try:
            replica.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait()


def members(kube_api: client.ApiClient, namespace: str) -> dict[str, str]:
    """The URL of each member (from its Lease) -> its identity."""
    leases: Any = client.CoordinationV1Api(kube_api).list_namespaced_lease(
        namespace, label_selector=f"{MEMBER_LABEL}=true").items
    return {str((lease.metadata.annotations or {}).get(URL_ANNOTATION)): lease.spec.holder_identity
            for lease in leases}


def overlaps(replicas: list[Replica]) -> list[str]:
    """Every pair of syncs of one app by two replicas whose times overlap."""
    found = []
    logged = [(index, sync) for index, replica in enumerate(replicas) for sync in replica.syncs()]
    for i, (first, (app, start, end)) in enumerate(logged):
        for second, (other_app, other_start, other_end) in logged[i + 1:]:
            if app == other_app and first != second and start < other_end and other_start < end:
                found.append(f"{app}: replica {first} {start:.3f}-{end:.3f}, replica {second} "
                             f"{other_start:.3f}-{other_end:.3f}")
    return found


def signed_push(repo: Path) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"ref": "refs/heads/main", "repository": {"clone_url": f"file://{repo}"}}).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-GitHub-Event": "push",
                  "X-Hub-Signature-256": f"sha256={signature}"}


def test_three_replicas_share_the_apps_and_take_over_from_a_killed_one(
    replicas: list[Replica], namespace: str, kube_api: client.ApiClient, tmp_path: Path
) -> None:
    core = client.CoreV1Api(kube_api)

    def all_synced() -> bool:
        for app in APPS:
            parent = configmap(kube_api, namespace, f"syncer-{app}")
            if (configmap(kube_api, namespace, f"{app}-config") is None or parent is None
                    or (parent.metadata.annotations or {}).get(RESULT_ANNOTATION) != "Succeeded"):
                return False
        return True

    eventually(all_synced, timeout=60, what="every app's objects and status", interval=0.5)

    # The three agree on the membership and split the apps as rendezvous hashing says.
    def settled() -> dict[str, str] | None:
        seen = members(kube_api, namespace)
        answers = [get(replica.url + "/readyz")[1] for replica in replicas]
        if len(seen) == 3 and all("3 member(s) seen" in a and "waiting" not in a for a in answers):
            return seen
        return None

    identities = eventually(settled, timeout=30, what="three members that agree", interval=0.5)
    identity = [identities[replica.url] for replica in replicas]
    expected = {app: owner(f"{namespace}/{app}", identity) for app in APPS}
    owned = [[app for app in APPS if expected[app] == identity[i]] for i in range(3)]
    assert all(owned), f"rendezvous gave a replica nothing: {owned}"
    for index, replica in enumerate(replicas):
        _, metrics = get(replica.url + "/metrics")
        assert "syncer_shard_members 3.0" in metrics
        assert f"syncer_shard_apps_owned {float(len(owned[index]))}" in metrics
        assert f"owns {len(owned[index])} of 12 app(s)" in get(replica.url + "/readyz")[1]

    # Steady state: over a few intervals each app is synced by its owner, and only by it.
    steady = time.time()
    time.sleep(5)
    for index, replica in enumerate(replicas):
        synced = {app for app, start, _ in replica.syncs() if start >= steady}
        assert synced == set(owned[index]), f"replica {index} synced {sorted(synced)}, owns {owned[index]}"

    # A push that reaches one replica triggers every app: its own here, the others' there.
    body, headers = signed_push(tmp_path / "repo")
    request = urllib.request.Request(replicas[0].url + "/webhook", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.status == 202
        assert json.loads(response.read())["triggered"] == [f"{namespace}/{app}" for app in APPS]

    # SIGKILL: no clean release. Its apps' objects, deleted now, come back from the others.
    victim, survivors = replicas[2], replicas[:2]
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait()
    killed = time.time()
    for app in owned[2]:
        core.delete_namespaced_config_map(f"{app}-config", namespace)

    def taken_over() -> bool:
        synced = {app for survivor in survivors for app, start, _ in survivor.syncs() if start >= killed}
        return set(owned[2]) <= synced and all(configmap(kube_api, namespace, f"{app}-config") for app in owned[2])

    eventually(taken_over, timeout=LEASE_SECONDS + SLACK, what="the survivors to take the killed replica's apps",
               interval=0.2)
    took = time.time() - killed
    # Not before the Lease could have expired: its last renewal was at most a renew period
    # (a third of the lease) before the kill.
    assert took >= LEASE_SECONDS * 0.6, f"taken over after {took:.1f}s, before the Lease could expire"
    eventually(lambda: identity[2] not in members(kube_api, namespace).values(), timeout=LEASE_SECONDS + SLACK,
               what="the dead member's Lease to be deleted")
    survivor_identities = [identity[0], identity[1]]
    for index, survivor in enumerate(survivors):
        mine = [app for app in APPS if owner(f"{namespace}/{app}", survivor_identities) == identity[index]]
        assert set(owned[index]) <= set(mine)  # nothing moved between the survivors
        eventually(lambda: f"owns {len(mine)} of 12 app(s); 2 member(s) seen" in get(survivor.url + "/readyz")[1],
                   timeout=SLACK, what="the survivor's readyz to count its share")

    # Over the whole run, no app was synced by two replicas at once.
    assert overlaps(replicas) == []
    assert all(replica.syncs() for replica in replicas)

    # A clean stop deletes the member's Lease: the last survivor takes everything at once.
    survivors[1].process.send_signal(signal.SIGTERM)
    assert survivors[1].process.wait(timeout=30) == 0
    stopped = time.time()
    eventually(lambda: "owns 12 of 12 app(s); 1 member(s) seen" in get(survivors[0].url + "/readyz")[1],
               timeout=LEASE_SECONDS * 0.75, what="the last replica to own every app")
    eventually(lambda: {app for app, start, _ in survivors[0].syncs() if start >= stopped} == set(APPS),
               timeout=SLACK, what="the last replica to sync every app")
    assert overlaps(replicas) == []


# -- App mode ------------------------------------------------------------------------------

TEAM_APPS = [f"web-{n}" for n in range(6)]


@pytest.fixture
def kubectl(cluster: ClusterAccess) -> Kubectl:
    """kubectl, with the App CRD installed (only the CRD: the daemons run here, as processes)."""
    kubectl = Kubectl(cluster)
    kubectl("apply", "-f", str(DEPLOY / "crd.yaml"))
    kubectl("wait", "--for=condition=Established", "crd/apps.syncer.dev", "--timeout=60s")
    return kubectl


def test_app_objects_are_sharded_too(
    kubectl: Kubectl, cluster: ClusterAccess, namespace: str, kube_api: client.ApiClient, tmp_path: Path,
) -> None:
    """Two `syncer run --shard` processes serving App objects: each App is synced (and its
    status written) by its owner; a SIGKILLed replica's Apps are synced by the other."""
    repo = tmp_path / "deploy"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for key, value in (("user.email", "test@example.com"), ("user.name", "test"), ("commit.gpgsign", "false")):
        git(repo, "config", key, value)
    commit(repo, {f"{app}/config.yaml": configmap_yaml(f"{app}-config", "blue") for app in TEAM_APPS}, "first")
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "SYNCER_WEBHOOK_SECRET")}
    replicas = []
    for index in range(2):
        port = free_port()
        log = tmp_path / f"apps-replica-{index}.log"
        with log.open("wb") as stderr:
            process = subprocess.Popen(
                [str(SYNCER), "run", "--shard", "--watch-namespace", namespace, "--leader-election-namespace",
                 namespace, "--lease-duration", f"{LEASE_SECONDS:.0f}s", "--listen", f"127.0.0.1:{port}",
                 "--log-format", "json", "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context,
                 "--cache-dir", str(tmp_path / f"apps-cache-{index}"), "--allow-local-repos"],  # a local repo
                stdout=subprocess.DEVNULL, stderr=stderr, env=env,
            )
        replicas.append(Replica(port=port, log=log, process=process, apps=TEAM_APPS))
    try:
        for app in TEAM_APPS:
            kubectl("apply", "-f", "-", stdin=app_yaml(namespace, app, repo=repo, path=app))
        for app in TEAM_APPS:
            kubectl("wait", "--for=condition=Ready", f"app/{app}", "-n", namespace, "--timeout=60s")
        identities = eventually(lambda: (lambda seen: seen if len(seen) == 2 else None)(members(kube_api, namespace)),
                                timeout=SLACK, what="two members")
        identity = [identities[replica.url] for replica in replicas]
        owners = {app: identity.index(str(owner(f"{namespace}/{app}", identity))) for app in TEAM_APPS}
        assert set(owners.values()) == {0, 1}, owners
        steady = time.time()
        for app in TEAM_APPS:  # a reconcile request: each App's owner syncs it, and only its owner
            kubectl("annotate", "--overwrite", f"app/{app}", "-n", namespace,
                    f"syncer.dev/reconcile-requested-at={steady}")
        time.sleep(5)
        for index, replica in enumerate(replicas):
            synced = {app for app, start, _ in replica.syncs() if start >= steady}
            assert synced == {app for app in TEAM_APPS if owners[app] == index}

        replicas[1].process.send_signal(signal.SIGKILL)
        replicas[1].process.wait()
        moved = [app for app in TEAM_APPS if owners[app] == 1]
        sha = commit(repo, {f"{app}/config.yaml": configmap_yaml(f"{app}-config", "green") for app in TEAM_APPS})
        eventually(lambda: all(kubectl.status(namespace, app).get("lastAppliedRevision") == sha for app in moved),
                   timeout=LEASE_SECONDS + SLACK, what="the survivor to sync the killed replica's Apps",
                   interval=0.5)
        # The survivor's own Apps see the commit at their next tick: apps of one repository
        # share an ls-remote answer for up to their interval.
        eventually(lambda: [(configmap(kube_api, namespace, f"{app}-config") or client.V1ConfigMap()).data
                            for app in TEAM_APPS] == [{"color": "green"}] * len(TEAM_APPS),
                   timeout=SLACK, what="every App to apply the commit", interval=0.5)
        assert overlaps(replicas) == []
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
                replica.process.wait(timeout=30)


# -- the membership protocol alone ---------------------------------------------------------

def test_members_at_rest_only_renew_and_hand_over_on_leaving(cluster: ClusterAccess, namespace: str) -> None:
    """Three `ShardMember`s against the API server: at rest each sends one Lease update per
    renew period and nothing else (the watch stays open); every app has exactly one owner;
    a clean stop hands over at once, a silent one after the lease duration."""
    options = ElectionOptions.for_lease(3.0, namespace=namespace)
    clients = [connect(cluster.kubeconfig, cluster.context) for _ in range(3)]
    names = [f"member-{index}" for index in range(3)]
    shard = [ShardMember(kube, identity=name, options=options, url=None, running=list)
             for kube, name in zip(clients, names)]
    apps = [f"team/app-{n}" for n in range(60)]
    try:
        for member in shard:
            member.start()
        eventually(lambda: all(m.assignment.settled == tuple(names) and m.live for m in shard), timeout=SLACK,
                   what="three members that agree")
        assert all(sum(m.owns(app) for m in shard) == 1 for app in apps)
        assert [len(m.owned(apps)) for m in shard] == [sum(owner(a, names) == n for a in apps) for n in names]

        before = [Counter(kube.stats.by_verb) for kube in clients]
        time.sleep(6.0)
        for kube, counted in zip(clients, before):
            sent = Counter(kube.stats.by_verb)
            sent.subtract(counted)
            assert +sent == Counter(update=sent["update"]), sent  # no LIST, GET or new WATCH at rest
            assert 4 <= sent["update"] <= 7  # every renew period (1 s), 6 s long

        shard[2].stop(release=True)  # clean: its Lease is deleted, the others take over at once
        left = time.monotonic()
        eventually(lambda: all(m.assignment.settled == tuple(names[:2]) for m in shard[:2]), timeout=SLACK,
                   what="the others to agree without the member that left")
        assert time.monotonic() - left < options.lease_duration - options.renew_period  # not by expiry
        assert all(sum(m.owns(app) for m in shard[:2]) == 1 for app in apps)

        shard[1].stop(release=False)  # as a crash: its Lease stays until it expires
        silent = time.monotonic()
        eventually(lambda: shard[0].assignment.settled == (names[0],), timeout=options.lease_duration + SLACK,
                   what="the last member to count the silent one gone")
        assert time.monotonic() - silent >= options.lease_duration - options.renew_period
        assert all(shard[0].owns(app) for app in apps)
        eventually(lambda: not [lease for lease in clients[0].list(clients[0].resource_for(
            "coordination.k8s.io/v1", "Lease"), namespace=namespace) if lease["spec"]["holderIdentity"] == names[1]],
            timeout=SLACK, what="the silent member's Lease to be deleted")
    finally:
        for member in shard:
            member.stop(release=True)
        for kube in clients:
            kube.close()


def test_a_member_that_cannot_renew_stops_before_the_others_take_over(
    cluster: ClusterAccess, restricted_context: str, namespace: str, kube_api: client.ApiClient,
) -> None:
    """One member loses the right to renew its Lease (its RoleBinding is deleted): it owns
    nothing after its renew deadline, and the other takes its apps only after the lease
    duration; sampled every few milliseconds, no app ever has two owners."""
    grant_restricted(kube_api, namespace, role="shard-member", rules=[
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "list", "watch", "create", "update", "delete"]}])
    options = ElectionOptions.for_lease(3.0, namespace=namespace)
    admin, restricted = connect(cluster.kubeconfig, cluster.context), connect(cluster.kubeconfig, restricted_context)
    steady = ShardMember(admin, identity="steady", options=options, url=None, running=list)
    cut = ShardMember(restricted, identity="cut", options=options, url=None, running=list)
    apps = [f"team/app-{n}" for n in range(40)]
    samples: list[tuple[float, int, int, int]] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            owned = [(steady.owns(app), cut.owns(app)) for app in apps]
            samples.append((time.monotonic(), sum(s for s, _ in owned), sum(c for _, c in owned),
                            sum(s and c for s, c in owned)))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        steady.start()
        cut.start()
        eventually(lambda: steady.assignment.settled == cut.assignment.settled == ("cut", "steady"), timeout=SLACK,
                   what="two members that agree")
        assert 0 < len(cut.owned(apps)) < len(apps)
        sampler.start()
        time.sleep(0.5)
        client.RbacAuthorizationV1Api(kube_api).delete_namespaced_role_binding("shard-member", namespace)
        revoked = time.monotonic()
        eventually(lambda: len(steady.owned(apps)) == len(apps), timeout=options.lease_duration + SLACK,
                   what="steady to take every app")
        assert "not a member" in cut.describe(apps) and "1 member(s) seen" in steady.describe(apps)
        time.sleep(0.5)
    finally:
        sampling.set()
        steady.stop(release=True)
        cut.stop(release=False)
        admin.close()
        restricted.close()
    assert samples and all(both == 0 for _, _, _, both in samples), "an app had two owners"
    cut_stopped = next(t for t, _, mine, _ in samples if t > revoked and mine == 0)
    steady_took = next(t for t, theirs, _, _ in samples if theirs == len(apps))
    assert cut_stopped < steady_took
    assert cut_stopped - revoked <= options.renew_deadline + 0.5  # its last renewal was before the revocation
    assert steady_took - cut_stopped >= options.lease_duration - options.renew_deadline - 0.2
