"""Fencing (issue 20, report 10): a sync paused past its lock writes nothing after a newer sync
took the lock over, when it resumes.

The SIGSTOP loop: a real `syncer sync` process, as the user `syncer-restricted`, syncs a
revision that changes, creates and prunes ConfigMaps; at a random point of its writes (once it
holds the lock, after 0 to all-but-one of its writes were seen) the whole process is stopped.
It stays stopped for one to three lease durations and until a newer sync, as the admin, has
taken the lock over and synced a revision that wants every object the paused one prunes and
none it creates. Then it is resumed and runs to its end. Judged afterwards, per pause:

* by objects: the live ConfigMaps are exactly the newer revision's, with its values;
* by the audit log: no successful write by `syncer-restricted` ended after the newer sync's
  Lease write was received (neither sent after the takeover, nor still running on the server).

The status `syncer sync` records (the parent's status annotations and an Event) is written
under the lock, through the guarded client, and judged like every other write: recorded after
the release, as it was first, 9 of 100 pauses let an older status land over the newer sync's.
A sync that lost its lock records nothing: the newer sync's record is the app's.

`SYNCER_FENCING_PAUSES` sets the number of pauses (10 by default; 100 or more on demand),
`SYNCER_FENCING_SEED` their points and lengths. A second test stops the sync at the worst
instant on purpose, right after the lock check of a chosen write, and checks that the server
refused that write (`SYNCER_FENCING_PAUSES_AFTER_CHECK`, 3 by default). The audit log needs a
control plane of its own (the session's has none), started for this module.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from syncer.apply import sync
from syncer.devcluster import ControlPlane, ControlPlaneError
from syncer.devcluster.config import ADMIN_CONTEXT, ADMIN_USER, RESTRICTED_CONTEXT, RESTRICTED_USER
from syncer.devcluster.state import RunningControlPlane
from syncer.errors import ConfigError
from tests.conftest import USE_EXISTING_CLUSTER, namespace_name
from tests.e2e.apps import SLACK, connect, grant_restricted, options, render_app, signal_at_write, write_app

PAUSES = int(os.environ.get("SYNCER_FENCING_PAUSES", "10"))
SEED = int(os.environ.get("SYNCER_FENCING_SEED", "20"))
APP = "fence"
LOCK_DURATION = 2
"""The paused sync's --lock-duration (seconds)."""
REQUEST_TIMEOUT = 3
"""The paused sync's --request-timeout: the server-side timeout of its writes, its write bound."""
KEEP, GEN, FRESH = 8, 8, 4
"""ConfigMaps every revision has (values change), ones the paused sync prunes and the newer
revision wants, and ones only the paused sync's revision has (new names each pause)."""
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


@pytest.fixture(scope="module")
def audited() -> Iterator[RunningControlPlane]:
    """A control plane of this module's own, with an audit log."""
    if USE_EXISTING_CLUSTER:
        pytest.skip("needs the local control plane's audit log")
    control_plane = ControlPlane(audit_log=True)
    try:
        running = control_plane.start()
    except (ConfigError, ControlPlaneError) as error:
        control_plane.stop(keep_logs=True)
        pytest.fail(f"cannot start an audited control plane: {error}", pytrace=False)
    try:
        yield running
    finally:
        control_plane.stop()


@pytest.fixture
def admin_api(audited: RunningControlPlane) -> Iterator[client.ApiClient]:
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(audited.kubeconfig), context=ADMIN_CONTEXT)
    with api:
        yield api


def cm(name: str, value: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  v: {value!r}\n"


def keep() -> list[str]:
    return [f"keep-{n}" for n in range(KEEP)]


def gen() -> list[str]:
    return [f"gen-{n}" for n in range(GEN)]


def fresh(pause: int) -> list[str]:
    return [f"fresh-{pause}-{n}" for n in range(FRESH)]


def newer(pause: int) -> dict[str, str]:
    """The newer revision synced during pause `pause` (and, as pause -1, the first one): every
    kept and pruned name, none of the paused revision's new ones."""
    return {name: f"newer-{pause}" for name in keep() + gen()}


def paused(pause: int) -> dict[str, str]:
    """The revision of the sync paused in pause `pause`: it changes the kept names, creates new
    ones and prunes the `gen-*` ones."""
    return {name: f"paused-{pause}" for name in keep() + fresh(pause)}


def files(revision: dict[str, str]) -> dict[str, str]:
    return {f"{name}.yaml": cm(name, value) for name, value in revision.items()}


def live(api: client.ApiClient, namespace: str) -> dict[str, str]:
    """The app's ConfigMaps (name -> value), without its ApplySet parent and the root CA."""
    found = client.CoreV1Api(api).list_namespaced_config_map(namespace).items
    return {item.metadata.name: (item.data or {}).get("v", "") for item in found
            if item.metadata.name not in (f"syncer-{APP}", "kube-root-ca.crt")}


def progress(objects: dict[str, str], pause: int) -> int:
    """How many of the paused sync's writes to members are visible."""
    value = f"paused-{pause}"
    return (sum(objects.get(name) == value for name in keep()) + sum(name in objects for name in fresh(pause))
            + sum(name not in objects for name in gen()))


def lease_holder(api: client.ApiClient, namespace: str) -> str:
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease(f"syncer-{APP}", namespace)
    except client.ApiException as error:
        if error.status == 404:
            return ""
        raise
    return str(lease.spec.holder_identity or "")


def stopped(pid: int) -> bool:
    """Whether the process is stopped (state T), so it can send nothing."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "T"


def timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


class AuditLog:
    """The audit events about one namespace, read on from where the last read stopped."""

    def __init__(self, path: Path, *, namespace: str) -> None:
        self._path = path
        self._namespace = namespace
        self._offset = 0

    def new_events(self) -> list[dict[str, Any]]:
        with self._path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        complete = data[:data.rfind(b"\n") + 1]
        self._offset += len(complete)
        return [event for event in map(json.loads, complete.splitlines())
                if (event.get("objectRef") or {}).get("namespace") == self._namespace]

    def events_until_now(self, api: client.ApiClient) -> list[dict[str, Any]]:
        """The new events, up to a request made now. The server writes an event once it has
        answered: a client that heard its answer and exited may be ahead of the log, so the
        log is read until the event of a marker request made after that shows up."""
        marker = f"audit-marker-{time.monotonic_ns()}"
        try:
            client.CoreV1Api(api).read_namespaced_config_map(marker, self._namespace)
        except client.ApiException as error:
            assert error.status == 404, error
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + SLACK
        while not any(event["objectRef"].get("name") == marker for event in events):
            assert time.monotonic() < deadline, "the audit log never showed the marker request"
            time.sleep(0.05)
            events += self.new_events()
        return events


def succeeded(event: dict[str, Any]) -> bool:
    return 200 <= int((event.get("responseStatus") or {}).get("code") or 0) < 300


def takeover(events: list[dict[str, Any]], *, after: datetime, user: str) -> datetime | None:
    """When the API server received the newer sync's (`user`'s) first successful write of the
    app's Lease after `after`: from then on the lock is the newer sync's."""
    received = [timestamp(e["requestReceivedTimestamp"]) for e in events
                if e["user"]["username"] == user and e["verb"] in ("create", "update") and succeeded(e)
                and e["objectRef"].get("resource") == "leases" and e["objectRef"].get("name") == f"syncer-{APP}"
                and timestamp(e["requestReceivedTimestamp"]) >= after]
    return min(received, default=None)


def stale_writes(events: list[dict[str, Any]], *, since: datetime, until: datetime) -> list[str]:
    """The paused sync's successful writes (its status record included) that ended on the
    server after `since` (the takeover) and were received before `until` (its exit)."""
    found = []
    for event in events:
        if (event["user"]["username"] != RESTRICTED_USER or event["verb"] not in WRITE_VERBS
                or not succeeded(event) or "dryRun" in event.get("requestURI", "")):
            continue
        received, ended = timestamp(event["requestReceivedTimestamp"]), timestamp(event["stageTimestamp"])
        if ended > since and received <= until:
            ref = event["objectRef"]
            when = "sent after the takeover" if received > since else "still running at the takeover"
            found.append((f"{event['verb']} {ref.get('resource')}/{ref.get('name')} ({when}, "
                          f"received {received.time()}, takeover {since.time()})"))
    return found


@dataclass
class Tally:
    pauses: int = 0
    attempts: int = 0
    stale_by_objects: list[str] = field(default_factory=list)
    stale_by_audit: list[str] = field(default_factory=list)
    exits: dict[int, int] = field(default_factory=dict)

    def summary(self, what: str) -> str:
        return (f"{what}: {self.pauses} pauses ({self.attempts} attempts), stale writes: "
                f"{len(self.stale_by_audit)} by the audit log, {len(self.stale_by_objects)} pauses with wrong "
                f"objects; "
                f"paused sync exit codes {dict(sorted(self.exits.items()))}")

    def failures(self) -> tuple[list[str], list[str]]:
        return self.stale_by_audit, self.stale_by_objects


class Scenario:
    """One app in a fresh namespace that `syncer-restricted` may do anything in; the newer
    syncs run here, as the admin; the paused ones are processes, as `syncer-restricted`."""

    def __init__(self, *, running: RunningControlPlane, admin_api: client.ApiClient, tmp_path: Path) -> None:
        assert running.audit_log is not None
        self.running = running
        self.admin_api = admin_api
        self.namespace = namespace_name("fencing")
        client.CoreV1Api(admin_api).create_namespace({"metadata": {"name": self.namespace}})
        grant_restricted(admin_api, self.namespace, role="syncer",
                         rules=[{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}])
        self.admin = connect(running.kubeconfig, ADMIN_CONTEXT)
        self.newer_repo, self.paused_repo = tmp_path / "newer", tmp_path / "paused"
        self.audit = AuditLog(running.audit_log, namespace=self.namespace)
        self.tally = Tally()

    def close(self) -> None:
        self.admin.close()
        client.CoreV1Api(self.admin_api).delete_namespace(self.namespace)

    def sync_newer(self, pause: int) -> None:
        write_app(self.newer_repo, files(newer(pause)))
        changes = sync(self.admin, render_app(self.newer_repo, namespace=self.namespace),
                       options=options(APP, self.namespace, lock_timeout=SLACK, lock_duration=LOCK_DURATION),
                       revision=f"newer-{pause}")
        assert changes.ok, changes.error

    def start_paused(self, pause: int, *, python: list[str], request_timeout: int,
                     env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        write_app(self.paused_repo, files(paused(pause)))
        return subprocess.Popen(
            [*python, "sync", "--repo", str(self.paused_repo), "--name", APP, "--namespace", self.namespace,
             "--kubeconfig", str(self.running.kubeconfig), "--context", RESTRICTED_CONTEXT,
             "--lock-duration", str(LOCK_DURATION), "--request-timeout", str(request_timeout),
             "--lock-timeout", str(int(SLACK)), "--concurrency", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})

    def hold_then_resume(self, first: subprocess.Popen[str], pause: int, *, hold: float,
                         started: datetime) -> tuple[list[dict[str, Any]], datetime]:
        """With `first` stopped: the newer sync takes its lock over and finishes; `first` stays
        stopped for `hold` seconds at least, then resumes and runs to its end. Judged."""
        stopped_at = time.monotonic()
        while not stopped(first.pid):
            assert time.monotonic() < stopped_at + SLACK, "the paused sync did not stop"
            time.sleep(0.001)
        try:
            self.sync_newer(pause)
            time.sleep(max(0.0, stopped_at + hold - time.monotonic()))
        finally:
            os.kill(first.pid, signal.SIGCONT)
        _, stderr = first.communicate(timeout=SLACK)
        return self.judge(pause, started=started, ended=datetime.now(timezone.utc), exit_code=first.returncode,
                          stderr=stderr)

    def judge(self, pause: int, *, started: datetime, ended: datetime, exit_code: int,
              stderr: str) -> tuple[list[dict[str, Any]], datetime]:
        """Tallies the stale writes of the pause; returns its audit events and the takeover."""
        tally = self.tally
        tally.pauses += 1
        tally.exits[exit_code] = tally.exits.get(exit_code, 0) + 1
        want, got = newer(pause), live(self.admin_api, self.namespace)
        if got != want:
            wrong = {name: (want.get(name), got.get(name)) for name in want.keys() | got.keys()
                     if want.get(name) != got.get(name)}
            tally.stale_by_objects.append(f"pause {pause} (wanted, live): {wrong}; paused sync said: {stderr}")
        events = self.audit.events_until_now(self.admin_api)
        taken = takeover(events, after=started, user=ADMIN_USER)
        assert taken is not None, "the audit log shows no takeover by the newer sync"
        tally.stale_by_audit.extend(f"pause {pause}: {write}" for write in stale_writes(events, since=taken,
                                                                                        until=ended))
        return events, taken


@pytest.fixture
def scenario(tmp_path: Path, audited: RunningControlPlane, admin_api: client.ApiClient) -> Iterator[Scenario]:
    scenario = Scenario(running=audited, admin_api=admin_api, tmp_path=tmp_path)
    try:
        scenario.sync_newer(-1)
        yield scenario
    finally:
        scenario.close()


@pytest.mark.timeout(120 + 30 * PAUSES)  # a pause takes about 7 s; pytest's default is 300 s in all
def test_a_paused_sync_makes_no_write_after_a_newer_sync_took_its_lock_over(
    scenario: Scenario, capsys: pytest.CaptureFixture[str],
) -> None:
    """The SIGSTOP loop (see the module docstring): random points, random pause lengths."""
    rng = random.Random(SEED)
    tally = scenario.tally
    pause = 0
    while tally.pauses < PAUSES:
        tally.attempts += 1
        assert tally.attempts <= 3 * PAUSES + 5, f"could not pause the sync mid-write: {tally.summary('loop')}"
        started = datetime.now(timezone.utc)
        target = rng.randrange(KEEP + GEN + FRESH)
        first = scenario.start_paused(pause, python=[sys.executable, "-m", "syncer"], request_timeout=REQUEST_TIMEOUT)
        mark = f"-{first.pid}-"
        while first.poll() is None:
            if (mark in lease_holder(scenario.admin_api, scenario.namespace)
                    and progress(live(scenario.admin_api, scenario.namespace), pause) >= target):
                os.kill(first.pid, signal.SIGSTOP)
                break
            time.sleep(0.005)
        if first.poll() is not None:  # it finished (or failed) before the chosen point: try again
            first.communicate()
            scenario.sync_newer(pause)
            scenario.audit.events_until_now(scenario.admin_api)
        else:
            scenario.hold_then_resume(first, pause, hold=rng.uniform(1, 3) * LOCK_DURATION, started=started)
        pause += 1  # the next pause starts from the newer revision, with fresh names
    with capsys.disabled():
        print(f"\n{tally.summary('fencing, SIGSTOP at random points')}")
    assert tally.failures() == ([], []), tally.summary("SIGSTOP at random points")


STOP_AFTER_CHECK = signal_at_write("SIGSTOP")  # frozen right after its lock was checked
PAUSES_AFTER_CHECK = int(os.environ.get("SYNCER_FENCING_PAUSES_AFTER_CHECK", "3"))
SLOW_WRITE_BOUND = 6
"""The paused sync's --request-timeout in the worst case below: long enough that a newer sync
which waited only the lease duration would finish while the paused write's server-side
timeout still runs."""


def test_a_sync_paused_right_after_its_lock_check_makes_no_write_after_the_takeover(
    scenario: Scenario, capsys: pytest.CaptureFixture[str],
) -> None:
    """The window that remains: the process freezes between its lock check and the send (here
    on purpose, right after the check of its n-th write). The check ran after all but the last
    byte of the request went out, so the server's timeout for the request started before it;
    the newer sync takes over only after the lease duration plus that timeout, so when the
    last byte finally arrives the server has given up on the request."""
    rng = random.Random(SEED)
    tally = scenario.tally
    refused: list[str] = []
    for pause in range(PAUSES_AFTER_CHECK):
        tally.attempts += 1
        started = datetime.now(timezone.utc)
        first = scenario.start_paused(
            pause, python=[sys.executable, "-c", STOP_AFTER_CHECK], request_timeout=SLOW_WRITE_BOUND,
            env={"SYNCER_TEST_STOP_AT_WRITE": str(rng.randrange(1, KEEP + GEN + FRESH))})
        deadline = time.monotonic() + SLACK
        while first.poll() is None and not stopped(first.pid):
            assert time.monotonic() < deadline, "the sync never reached its chosen write"
            time.sleep(0.005)
        assert first.poll() is None, f"the sync ended before its chosen write: {first.communicate()}"
        events, taken = scenario.hold_then_resume(first, pause, hold=0, started=started)
        refused += [f"{e['verb']} {e['objectRef'].get('name')}: {e['responseStatus'].get('code')}" for e in events
                    if e["user"]["username"] == RESTRICTED_USER and e["verb"] in WRITE_VERBS and not succeeded(e)
                    and timestamp(e["requestReceivedTimestamp"]) < taken]
    summary = f"{tally.summary('fencing, SIGSTOP right after the lock check')}; refused by the server: {refused}"
    with capsys.disabled():
        print(f"\n{summary}")
    assert tally.failures() == ([], []), summary
    # The fault was injected: each paused write reached the server before the takeover, and the
    # server refused it once its last byte came.
    assert len(refused) >= PAUSES_AFTER_CHECK, summary
