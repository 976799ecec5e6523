"""Model-based test of the daemon (issue 20), as tests/e2e/test_model.py is for the engine.

A hypothesis state machine against a real API server (a control plane of its own, with an
audit log) and real `syncer run --shard` processes: two replicas, serving the Apps of two
teams, each App synced with its team's service account (impersonated). Rules: commit a good
revision, commit a broken one, sync a newer revision by hand from the CLI (as the team), roll an
App back to a revision of its history with `syncer rollback` (as the team), edit
a member by hand, delete a member, delete the Widget CRD by hand (and put it back), pause the
replica that owns an App past its Lease while Git moves, kill (SIGKILL) the replica that owns an
App in the middle of its sync, create an App in team B that collides with team A's, restart a
replica, and stay idle.

Checked after every step (tests/e2e/daemonmodel/invariants.py; the README lists them):
- the live members are the render of the recorded revision, or converging to it: they reach
  it within an interval plus SLACK, and no member ever changes to what only an older
  revision renders (every sample, twice a second, over the whole history);
- the recorded revision moves only forward, by a Git change or an explicit command;
- Ready=True only for the current revision (never for one older than an attempted one, and
  at rest only for the branch's head, which the parent records);
- no team's namespace is read or written with another team's rights, nor with the daemon's
  own rights beyond Apps, their status and Events (the audit log's user);
- each distinct failure yields one SyncFailed Event (per object it is about);
- an idle App writes nothing (the audit log, over two intervals);
- the colliding App shows nothing that only reading team A's objects could tell;
- a sync killed with its intent recorded is reported Interrupted (the App's history and
  status.lastInterrupted) once the App has converged.

The default run is one history of 12 steps from a fixed seed (about 4 minutes with its control
plane). On demand:
    SYNCER_DAEMON_MODEL_EXAMPLES=5 SYNCER_DAEMON_MODEL_STEPS=40   more and longer histories
    SYNCER_DAEMON_MODEL_SEED=<int>                                other histories
    SYNCER_DAEMON_MODEL_IGNORE=went-back,idle-writes,...          collect these invariants'
                                                                  violations and go on
    SYNCER_DAEMON_MODEL_SCRIPT=commit_broken:b,stay_idle          this history first (moves
                                                                  `action[:team[:change[:choice]]]`)
    SYNCER_DAEMON_MODEL_VERBOSE=1                                 print every step
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test
from kubernetes import client

from syncer.apply.intent import read_intent
from syncer.apply.status import status_from_annotations
from tests.e2e.apps import SLACK
from tests.e2e.daemonmodel import invariants
from tests.e2e.daemonmodel.lab import (
    DAEMON_USER, WIDGET_CRD_NAME, WIDGET_GROUP, WIDGET_KIND, WIDGET_PLURAL, WIDGET_VERSION, Lab, fresh_suffix, started_lab,
    tenant_user, widget_crd,
)
from tests.e2e.daemonmodel.observe import AppRef, AuditLog, Audited, Sampler, inventory_of
from tests.e2e.daemonmodel.replicas import LEASE_SECONDS, REQUEST_TIMEOUT, Replicas
from tests.e2e.daemonmodel.repos import Content, Repo
from tests.e2e.daemonmodel.tenants import INTERVAL, ModelApp, evidence, hand_edited, with_change
from tests.e2e.test_daemon import SYNCER

pytestmark = pytest.mark.oldest

EXAMPLES = int(os.environ.get("SYNCER_DAEMON_MODEL_EXAMPLES", "1"))
STEPS_SET = os.environ.get("SYNCER_DAEMON_MODEL_STEPS")
SEED = os.environ.get("SYNCER_DAEMON_MODEL_SEED")
IGNORED = frozenset(filter(None, os.environ.get("SYNCER_DAEMON_MODEL_IGNORE", "").split(",")))
VERBOSE = os.environ.get("SYNCER_DAEMON_MODEL_VERBOSE") == "1"
ON_DEMAND = any(f"SYNCER_DAEMON_MODEL_{name}" in os.environ for name in ("EXAMPLES", "STEPS", "SEED", "SCRIPT"))
DEFAULT_SEED = 20
"""Fixes the random moves of on-demand runs; the default suite's one history is SCRIPT."""

CONVERGE = INTERVAL + SLACK
TAKEOVER = LEASE_SECONDS + float(REQUEST_TIMEOUT.rstrip("s")) + SLACK
"""A paused owner's Apps are synced by the other replica after its Lease, plus the bound of a
write the paused one may have had in flight, plus SLACK."""
APP_LOCK_SECONDS = 30 + float(REQUEST_TIMEOUT.rstrip("s"))
"""A killed owner's App lock (the daemon's 30 s, and the bound of its last write) expires
before another replica can sync the App."""
FIRST_CONTENT = Content(configmaps=(("one", "1"), ("two", "2")), widget="small")
CHANGES = ("value", "add", "remove", "widget")
PAUSE_AFTER = (0.0, 0.7, 1.4)
"""Seconds between the commit and the SIGSTOP of its App's owner."""


@dataclass(frozen=True)
class Move:
    """One step of a history: a rule (a method of DaemonModel) and what it acts on."""

    action: str
    team: str = "a"
    change: str = "value"
    choice: int = 0
    """Which member, replica or pause delay, modulo how many there are."""


ACTIONS = ("commit_good", "commit_broken", "sync_by_hand", "roll_back", "edit_by_hand", "delete_member",
           "delete_crd", "pause_owner_past_its_lease", "kill_owner_mid_sync", "create_colliding_app", "restart_replica", "stay_idle")
MOVES = st.builds(Move, action=st.sampled_from(ACTIONS), team=st.sampled_from(["a", "b"]),
                  change=st.sampled_from(CHANGES), choice=st.integers(0, 7))
DEFAULT_SCRIPT = (
    Move("commit_good", change="add"),
    Move("edit_by_hand", team="b", choice=2),
    Move("commit_broken"),
    Move("stay_idle"),
    Move("commit_good", change="widget"),
    Move("sync_by_hand", change="value"),
    Move("roll_back"),
    Move("delete_member", choice=1),
    Move("pause_owner_past_its_lease", choice=1),
    Move("kill_owner_mid_sync", team="b", change="add"),
    Move("delete_crd"),
    Move("create_colliding_app"),
    Move("restart_replica"),
    Move("stay_idle"),
)
"""Every history's first moves, in this order in the default suite, in another on demand."""


def parse_script(text: str) -> tuple[Move, ...]:
    """`action[:team[:change[:choice]]],...`: a history to replay, e.g. a counterexample."""
    moves = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        action, *rest = item.split(":")
        if action not in ACTIONS:
            raise ValueError(f"SYNCER_DAEMON_MODEL_SCRIPT: {action!r} is not one of {', '.join(ACTIONS)}")
        team, change, choice = (rest + ["a", "value", "0"][len(rest):])[:3]
        moves.append(Move(action, team=team, change=change, choice=int(choice)))
    return tuple(moves)


SCRIPT = parse_script(os.environ["SYNCER_DAEMON_MODEL_SCRIPT"]) if "SYNCER_DAEMON_MODEL_SCRIPT" in os.environ \
    else DEFAULT_SCRIPT


@dataclass
class Verdicts:
    """Invariant violations: raised at once, or collected for the invariants in IGNORED."""

    ignored: frozenset[str]
    collected: list[str] = field(default_factory=list)
    seen: set[tuple[str, str]] = field(default_factory=set)

    def check(self, invariant: str, problems: Sequence[str], context: str) -> None:
        fresh = [p for p in dict.fromkeys(problems) if (invariant, p) not in self.seen]
        self.seen.update((invariant, p) for p in fresh)
        if not fresh:
            return
        message = f"[{invariant}] {context}:\n  " + "\n  ".join(fresh)
        if invariant not in self.ignored:
            raise AssertionError(message)
        self.collected.append(message)


@dataclass
class World:
    lab: Lab
    workdir: Path
    verdicts: Verdicts


class DaemonModel(RuleBasedStateMachine):
    world: World  # set by the test before hypothesis creates machines

    def __init__(self) -> None:
        super().__init__()
        lab, suffix = self.world.lab, fresh_suffix()
        self.steps: list[str] = []
        self.edits = 0
        self.workdir = self.world.workdir / suffix
        self.workdir.mkdir()
        self.team_a, self.team_b = f"team-a-{suffix}", f"team-b-{suffix}"
        self.tenants = [self.team_a, self.team_b]
        self.kubeconfigs = {namespace: lab.add_tenant(namespace) for namespace in self.tenants}
        self.audit = AuditLog(lab.audit_log)
        self.audit.skip()
        self.audit_seen_impersonation = False
        self.shop = ModelApp(ref=AppRef(self.team_a, "shop", self.team_a), repo=Repo(self.workdir / "repo-a"),
                             path="shop", content=FIRST_CONTENT)
        self.web = ModelApp(ref=AppRef(self.team_b, "web", self.team_b), repo=Repo(self.workdir / "repo-b"),
                            path="web", content=FIRST_CONTENT)
        self.apps = {"a": self.shop, "b": self.web}
        self.collider: ModelApp | None = None
        self.sampler = Sampler(lab.api)
        self.replicas = Replicas(lab, namespaces=self.tenants, workdir=self.workdir)
        try:
            for app in self.apps.values():
                app.commit(app.content, "first")
                self.sampler.track(app.ref)
            self.sampler.start()
            for _ in range(2):
                self.replicas.start()
            self.replicas.wait_members()
            for app in self.apps.values():
                app.create(lab)
            self.step("two teams' Apps created; two replicas")
        except BaseException:
            self.teardown()  # hypothesis tears down only the machines it could create
            raise

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def context(self) -> str:
        return "after " + " -> ".join(self.steps) + f" (replica logs: {self.replicas.logs()})"

    def check(self, invariant: str, problems: Sequence[str]) -> None:
        self.world.verdicts.check(invariant, problems, self.context)

    def step(self, what: str, *, wait: bool = True) -> None:
        """Record a step, wait for the daemon to catch up, and check every invariant."""
        self.steps.append(what)
        if VERBOSE:
            print(f"{time.strftime('%H:%M:%S')} {what}", flush=True)
        if wait:
            self.converge()
        self.check_history()

    def converge(self, *, deadline: float = CONVERGE) -> None:
        """Poll until every App is as the model expects, or fail the `converges` invariant."""
        end = time.monotonic() + deadline
        while True:
            self.sampler.sample_now()
            problems = self.state_problems()
            if not problems or time.monotonic() >= end:
                break
            time.sleep(0.5)
        self.check("converges", [f"after {deadline:.0f}s: {p}" for p in problems])

    def state_problems(self) -> list[str]:
        problems = []
        for app in self.apps.values():
            problems += app.expected_state(self.sampler.latest(app.ref))
            if app.broken_head and not self.failure_events(app)[0].get(app.head):
                problems.append(f"{app.ref}: no SyncFailed Event about the App for the broken head {app.head[:12]}")
        if self.collider is not None:
            latest = self.sampler.latest(self.collider.ref)
            status = (latest.status if latest else None) or {}
            if not status.get("conditions"):
                problems.append(f"{self.collider.ref}: no status yet")
        return problems

    def check_history(self) -> None:
        for app in self.apps.values():
            history = self.sampler.history(app.ref)
            self.check("went-back", invariants.went_back(history, app.ledger, app=str(app.ref),
                                                         deleted_by_hand=app.deleted_by_hand))
            self.check("record-went-back", invariants.record_went_back(history, app.ledger, app=str(app.ref)))
            self.check("ready-lies", invariants.ready_lies(history, app.ledger, app=str(app.ref)))
        if self.collider is not None:
            history = self.sampler.history(self.collider.ref)
            self.check("collision-reads", [f"{self.collider.ref} (targetNamespace {self.team_a}): {e}"
                                           for sample in history for e in evidence(sample.status)])
            self.check("collision-reads", [
                f"{self.collider.ref}'s inventory ({inventory_of(self.collider.ref).parent}) has members: "
                f"{sorted(sample.members)}, it shares {self.shop.ref}'s" for sample in history[-1:] if sample.members])
        self.check("tenant-rights", invariants.trespasses(self.read_audit(), tenants=self.tenants))
        self.check("one-event-per-failure", self.event_problems())

    def read_audit(self) -> list[Audited]:
        requests = self.audit.read_new()
        if not self.audit_seen_impersonation:
            # The tenant checks judge the audit log: it must show the daemon acting as a team.
            self.audit_seen_impersonation = any(
                r.via == DAEMON_USER and r.user == tenant_user(self.team_a) and r.namespace == self.team_a
                for r in requests)
            self.check("audit-log-read", [] if self.audit_seen_impersonation or len(self.steps) > 1 else [
                f"{len(requests)} request(s) in the audit log, none of the daemon as team A's deployer"])
        return requests

    def events(self) -> list[dict[str, Any]]:
        found = []
        for namespace in self.tenants:
            found += client.CoreV1Api(self.world.lab.api).list_namespaced_event(namespace).to_dict()["items"]
        return found

    def failure_events(self, app: ModelApp) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """The messages of SyncFailed Events per revision, about the App and about its parent."""
        parent = inventory_of(app.ref).parent
        about_app: dict[str, list[str]] = {}
        about_parent: dict[str, list[str]] = {}
        for event in self.events():
            involved = event["involved_object"]
            if event["reason"] != "SyncFailed":
                continue
            revision = app.ledger.short(event["message"] or "")
            sha = revision.sha if revision else "?"
            what = (involved["kind"], involved["namespace"], involved["name"])
            found = about_app if what == ("App", app.ref.namespace, app.ref.name) else \
                about_parent if what == (parent.kind, parent.namespace, parent.name) else None
            if found is not None:
                found.setdefault(sha, []).extend([event["message"]] * (event["count"] or 1))
        return about_app, about_parent

    def event_problems(self) -> list[str]:
        problems = []
        apps = [*self.apps.values(), *([self.collider] if self.collider else [])]
        for app in apps:
            for about, counted in zip(("the App", "its ApplySet parent"), self.failure_events(app)):
                for sha, messages in sorted(counted.items()):
                    if len(messages) > app.failures[sha]:
                        problems.append(
                            f"{app.ref}: {len(messages)} SyncFailed Event(s) about {about} for revision {sha[:12]}; "
                            f"the model caused {app.failures[sha]} distinct failure(s) of it: "
                            + " | ".join(m[:300] for m in messages))
        return problems

    def live_member(self, app: ModelApp, choice: int) -> tuple[str, str, dict[str, Any]] | None:
        latest = self.sampler.latest(app.ref)
        if latest is None or not latest.members:
            return None
        kind, name = sorted(latest.members)[choice % len(latest.members)]
        return kind, name, latest.members[(kind, name)]

    def ready(self, app: ModelApp) -> str | None:
        latest = self.sampler.latest(app.ref)
        return latest.ready() if latest else None

    def wait_for(self, condition: Callable[[], bool], *, timeout: float, interval: float = 0.3) -> bool:
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() >= end:
                return False
            time.sleep(interval)
        return True

    # -- rules ---------------------------------------------------------------------------------

    @initialize(plan=st.permutations(SCRIPT))
    def plan_history(self, plan: list[Move]) -> None:
        """The moves every history starts with: the default suite's one history (hypothesis
        tries the simplest example first, here the script in its order) takes every rule."""
        self.plan = list(plan)

    @rule(random_move=MOVES)
    def move(self, random_move: Move) -> None:
        """The script's next move, or a random one once the script is played."""
        move = self.plan.pop(0) if self.plan else random_move
        getattr(self, move.action)(move)

    def commit_good(self, move: Move) -> None:
        app, change = self.apps[move.team], move.change
        self.edits += 1
        sha = app.commit(with_change(app.content, change=change, n=self.edits), f"{change} {self.edits}")
        self.also_for_collider(app)
        self.step(f"{app.ref}: commit {sha[:8]} ({change})")

    def commit_broken(self, move: Move) -> None:
        app = self.apps[move.team]
        sha = app.commit_broken("a YAML error")
        self.also_for_collider(app)
        self.step(f"{app.ref}: commit {sha[:8]} (broken)")

    def also_for_collider(self, app: ModelApp) -> None:
        """The colliding App reads team B's repository too: each commit is a revision of it."""
        if self.collider is not None and app is self.web:
            self.collider.committed(app.head, content=self.collider.content)
            self.collider.failures[app.head] += 1

    def sync_by_hand(self, move: Move) -> None:
        """A newer revision, on another branch, synced by the team with `syncer sync`; two
        intervals later (the daemon must keep it: no Git change), the branch is merged."""
        app = self.apps[move.team]
        if app.held:
            return self.commit_good(move)
        self.edits += 1
        content = with_change(app.content, change=move.change, n=self.edits)
        sha = app.repo.commit_aside(app.path, content.files(), f"hand {self.edits}", branch="hotfix")
        result = subprocess.run(
            [str(SYNCER), "sync", "--repo", str(app.repo.root), "--revision", sha, "--path", app.path,
             "--name", app.ref.name, "-n", app.ref.target, "-o", "json", "--lock-timeout", "90s",
             "--kubeconfig", str(self.kubeconfigs[app.ref.namespace])],
            capture_output=True, text=True, timeout=180, env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"})
        if result.returncode != 0:
            self.steps.append(f"{app.ref}: syncer sync {sha[:8]} by hand")
            raise AssertionError(f"{self.context}: syncer sync exited {result.returncode}: {result.stderr[-3000:]}")
        synced = json.loads(result.stdout)  # the result alone is on stdout
        assert synced["revision"] == sha, synced
        app.synced_by_hand(sha, content)
        self.step(f"{app.ref}: syncer sync {sha[:8]} by hand")
        time.sleep(2 * INTERVAL)
        self.step("two intervals later")
        app.repo.fast_forward(sha)
        app.committed(sha, content=content)
        self.also_for_collider(app)
        self.step(f"{app.ref}: {sha[:8]} merged")

    def roll_back(self, move: Move) -> None:
        """`syncer rollback --to` (as the team) a revision the App's history applied: the App goes
        back and stays there, through heals, idle intervals and restarts, until a commit that
        changes it. A held App is not synced by hand here: `syncer sync --app` refuses it
        (tests/e2e/test_rollback.py)."""
        app = self.apps[move.team]
        if app.by_hand:
            return self.commit_good(move)
        latest = self.sampler.latest(app.ref)
        status = (latest.status if latest else None) or {}
        applied = list(dict.fromkeys(str(e.get("revision")) for e in status.get("history") or []
                                     if e.get("result") == "Succeeded" and e.get("revision") != app.expected))
        if not applied:
            return self.commit_good(move)
        sha = applied[move.choice % len(applied)]
        started = time.monotonic()
        result = subprocess.run(
            [str(SYNCER), "rollback", app.ref.name, "-n", app.ref.namespace, "--to", sha, "--wait", "--timeout", "90s",
             "--kubeconfig", str(self.kubeconfigs[app.ref.namespace])],
            capture_output=True, text=True, timeout=180, env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"})
        self.steps.append(f"{app.ref}: syncer rollback --to {sha[:8]}")
        if result.returncode != 0:
            raise AssertionError(f"{self.context}: syncer rollback exited {result.returncode}: "
                                 f"{result.stdout[-2000:]}{result.stderr[-3000:]}")
        app.rolled_back(sha, at=started)
        self.step("rolled back")

    def edit_by_hand(self, move: Move) -> None:
        app = self.apps[move.team]
        picked = self.live_member(app, move.choice)
        if picked is None:
            return
        kind, name, content = picked
        self.edits += 1
        patch = {"data": hand_edited(content, self.edits)} if kind == "ConfigMap" else {
            "spec": hand_edited(content, self.edits)}
        if kind == "ConfigMap":
            client.CoreV1Api(self.world.lab.api).patch_namespaced_config_map(name, app.ref.target, patch,
                                                                              field_manager="model-hand")
        else:
            client.CustomObjectsApi(self.world.lab.api).patch_namespaced_custom_object(
                WIDGET_GROUP, WIDGET_VERSION, app.ref.target, WIDGET_PLURAL, name, patch)
        self.step(f"{app.ref}: {kind}/{name} edited by hand")

    def delete_member(self, move: Move) -> None:
        app = self.apps[move.team]
        picked = self.live_member(app, move.choice)
        if picked is None:
            return
        kind, name, _ = picked
        app.deleted_by_hand.append(((kind, name), time.monotonic()))
        if kind == "ConfigMap":
            client.CoreV1Api(self.world.lab.api).delete_namespaced_config_map(name, app.ref.target)
        else:
            client.CustomObjectsApi(self.world.lab.api).delete_namespaced_custom_object(
                WIDGET_GROUP, WIDGET_VERSION, app.ref.target, WIDGET_PLURAL, name)
        self.step(f"{app.ref}: {kind}/{name} deleted by hand")

    def delete_crd(self, move: Move) -> None:
        """The admin deletes the Widget CRD (and so every Widget); the Apps must stop saying
        Ready; the CRD comes back, and the daemon must create the Widgets again."""
        extensions = client.ApiextensionsV1Api(self.world.lab.api)
        extensions.delete_custom_resource_definition(WIDGET_CRD_NAME)

        def gone() -> bool:
            try:
                extensions.read_custom_resource_definition(WIDGET_CRD_NAME)
            except client.ApiException as error:
                return bool(error.status == 404)
            return False

        assert self.wait_for(gone, timeout=SLACK), "the Widget CRD is not deleted"
        for app in [*self.apps.values(), *([self.collider] if self.collider else [])]:
            if not app.broken_head:
                app.failures[app.head] += 1  # the Widget's kind is not served: a failure of its own
        self.steps.append("the Widget CRD deleted by hand")

        def ready() -> list[str]:
            self.sampler.sample_now()
            return [str(app.ref) for app in self.apps.values() if self.ready(app) == "True"]

        self.wait_for(lambda: not ready(), timeout=CONVERGE)
        self.check("ready-lies", [f"{app}: Ready=True {CONVERGE:.0f}s after its Widget's kind stopped being served, "
                                  "its Widget gone" for app in ready()])
        self.world.lab.kubectl("apply", "-f", "-", stdin=json.dumps(widget_crd()))
        self.world.lab.kubectl("wait", "--for=condition=Established", f"crd/{WIDGET_CRD_NAME}", "--timeout=60s")
        self.step("the Widget CRD created again")

    def pause_owner_past_its_lease(self, move: Move) -> None:
        """SIGSTOP the replica that owns team A's App; Git moves; once the other replica has
        applied the commit, SIGCONT: the paused one must not write its older render."""
        app = self.shop
        owner, before = self.replicas.owner_of(str(app.ref)), PAUSE_AFTER[move.choice % len(PAUSE_AFTER)]
        self.edits += 1
        sha = app.commit(with_change(app.content, change="value", n=self.edits), f"while paused {self.edits}")
        time.sleep(before)
        self.replicas.pause(owner)
        app.failures[sha] += 1  # the paused owner may hold the App's lock: the other's sync may fail on it
        self.steps.append(f"{app.ref}: commit {sha[:8]}, replica {owner.index} (its owner) paused {before}s later")
        others = [r for r in self.replicas.running if r is not owner]
        if others:
            self.converge(deadline=TAKEOVER)
        self.replicas.resume(owner)
        self.steps.append(f"replica {owner.index} resumed")
        time.sleep(2 * INTERVAL + 1)
        self.step(f"two intervals after replica {owner.index} resumed")

    def kill_owner_mid_sync(self, move: Move) -> None:
        """A commit, and the replica that owns the App killed with SIGKILL as soon as its sync
        has recorded its intent (or, when the sync was quicker than the model's reads, once it
        has finished); a replica is started in its place. A sync killed with its intent on
        the parent must be reported interrupted once the App has converged."""
        app = self.apps[move.team]
        if app.held:
            return self.commit_good(move)
        owner = self.replicas.owner_of(str(app.ref))
        self.edits += 1
        sha = app.commit(with_change(app.content, change=move.change, n=self.edits), f"killed {self.edits}")
        self.also_for_collider(app)
        parent = inventory_of(app.ref).parent
        core = client.CoreV1Api(self.world.lab.api)

        def annotations() -> dict[str, str]:
            metadata = core.read_namespaced_config_map(parent.name, app.ref.namespace).metadata
            return dict((metadata.annotations if metadata else None) or {})

        def writing_or_done() -> bool:
            now = annotations()
            found, recorded = read_intent(now), status_from_annotations(now)
            return (found is not None and found.revision == sha) or (
                recorded is not None and recorded.applied_revision == sha)

        self.wait_for(writing_or_done, timeout=CONVERGE, interval=0.02)
        self.replicas.kill(owner)
        left = read_intent(annotations())
        # The dead owner's App lock fails the sync of each replica that owns the App before it expires.
        app.failures[sha] += 2
        self.steps.append(f"{app.ref}: commit {sha[:8]} ({move.change}), its owner replica {owner.index} killed "
                          + (f"with the intent of {left.revision[:8]} recorded" if left else "after its sync"))
        started = self.replicas.start()
        self.replicas.wait_members()
        self.converge(deadline=TAKEOVER + APP_LOCK_SECONDS)
        if left is not None:
            latest = self.sampler.latest(app.ref)
            self.check("interrupted-reported", invariants.interrupted_unreported(
                (latest.status if latest else None) or {}, left, app=str(app.ref)))
        self.step(f"replica {started.index} started")

    def create_colliding_app(self, move: Move) -> None:
        """Team B creates an App named as team A's, targeting team A's namespace, whose path
        renders exactly what team A's objects hold (a right guess). It must fail without
        reading them; team A's App is healed as before (its hand edit reverted). Once only:
        later, the move edits team A's App by hand."""
        if self.collider is not None:
            return self.edit_by_hand(Move("edit_by_hand", team="a", choice=move.choice))
        self.collider = ModelApp(ref=AppRef(self.team_b, self.shop.ref.name, self.team_a), repo=self.web.repo,
                                 path="collide", content=self.shop.content)
        sha = self.web.repo.commit(self.collider.path, self.shop.content.files(), "collide")
        self.web.committed_elsewhere(sha)
        self.collider.committed(sha, content=self.collider.content)
        self.collider.failures[sha] += 1  # refused: its identity may not touch team A's namespace
        self.sampler.track(self.collider.ref)
        self.collider.create(self.world.lab)
        self.step(f"{self.collider.ref} created, targetNamespace {self.team_a}")
        name = self.shop.content.configmaps[0][0]
        self.edits += 1
        client.CoreV1Api(self.world.lab.api).patch_namespaced_config_map(
            name, self.team_a, {"data": {"value": f"hand-{self.edits}"}}, field_manager="model-hand")
        self.step(f"{self.shop.ref}: ConfigMap/{name} edited by hand")

    def restart_replica(self, move: Move) -> None:
        replica = self.replicas.running[move.choice % len(self.replicas.running)]
        code = self.replicas.stop(replica)
        self.check("clean-stop", [f"replica {replica.index} exited {code} on SIGTERM"] if code else [])
        started = self.replicas.start()
        self.replicas.wait_members()
        self.step(f"replica {replica.index} restarted as replica {started.index}")

    def stay_idle(self, move: Move) -> None:
        """Nothing happens: over two intervals the daemon writes nothing for any App."""
        self.converge()
        time.sleep(INTERVAL)
        self.check_history()
        time.sleep(2 * INTERVAL + 0.5)
        requests = self.read_audit()
        self.steps.append("idle for two intervals")
        self.check("tenant-rights", invariants.trespasses(requests, tenants=self.tenants))
        self.check("idle-writes", invariants.idle_writes(requests, tenants=self.tenants))
        self.step("idle", wait=False)

    def teardown(self) -> None:
        try:
            self.replicas.stop_all()
        finally:
            self.sampler.stop()  # safe when it never started
        core = client.CoreV1Api(self.world.lab.api)
        for namespace in self.tenants:
            core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with started_lab(tmp_path_factory.mktemp("daemon-model")) as started:
        yield started


@pytest.mark.timeout(0 if ON_DEMAND else 900)
def test_daemon_histories_keep_the_invariants(lab: Lab, tmp_path: Path) -> None:
    world = World(lab=lab, workdir=tmp_path, verdicts=Verdicts(ignored=IGNORED))
    DaemonModel.world = world
    run_state_machine_as_test(seed(int(SEED) if SEED is not None else DEFAULT_SEED)(DaemonModel), settings=settings(
        max_examples=EXAMPLES,
        stateful_step_count=int(STEPS_SET) if STEPS_SET else len(SCRIPT) + 1,  # + the script's initialize
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    ))
    assert not world.verdicts.collected, "\n".join(world.verdicts.collected)
