"""The model of the teams' Apps: for each, its repository, path, revisions (`Ledger`) and what
the cluster should show once the daemon caught up (`expected_state`)."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from kubernetes import client

from tests.e2e.daemonmodel.lab import DEPLOYER, Lab
from tests.e2e.daemonmodel.observe import AppRef, Sample, condition
from tests.e2e.daemonmodel.repos import Content, Key, Ledger, Repo, Revision, broken_files

INTERVAL = 2.0
"""Every App's spec.interval, in seconds."""


@dataclass
class ModelApp:
    ref: AppRef
    repo: Repo
    path: str
    content: Content
    """What the app's newest good revision renders."""
    ledger: Ledger = field(default_factory=Ledger)
    head: str = ""
    """The tracked branch's head."""
    expected: str = ""
    """The revision the parent must record once the daemon caught up."""
    broken_head: bool = False
    by_hand: bool = False
    """The recorded revision was synced by hand and is not yet the branch's head."""
    held: bool = False
    """`syncer rollback` holds the App at `expected`, an earlier revision than the head's."""
    same_render: set[str] = field(default_factory=set)
    """Later commits to other paths that render exactly what `expected` does: a daemon that
    has not synced the App since it started syncs such a head (writing nothing) and records
    it, which is as good."""
    deleted_by_hand: list[tuple[Key, float]] = field(default_factory=list)
    """Members the test deleted, and when (time.monotonic())."""
    failures: Counter[str] = field(default_factory=Counter)
    """Distinct failures the model caused, per revision: the SyncFailed Events allowed."""

    def body(self, **spec: Any) -> dict[str, Any]:
        return {"apiVersion": "syncer.dev/v1alpha1", "kind": "App",
                "metadata": {"name": self.ref.name, "namespace": self.ref.namespace},
                "spec": {"repo": str(self.repo.root), "revision": "main", "path": self.path,
                         "interval": f"{INTERVAL:.0f}s", "serviceAccountName": DEPLOYER,
                         **({"targetNamespace": self.ref.target} if self.ref.target != self.ref.namespace else {}),
                         **spec}}

    def create(self, lab: Lab) -> None:
        client.CustomObjectsApi(lab.api).create_namespaced_custom_object(
            "syncer.dev", "v1alpha1", self.ref.namespace, "apps", self.body())

    def committed(self, sha: str, *, content: Content | None) -> None:
        """A commit to the tracked branch that changes the app: its new head (ending a hold)."""
        if self.ledger.get(sha) is None:
            self.ledger.add(Revision(sha=sha, content=content, how="commit"))
        elif self.held:  # a merge of a branch synced before the rollback: newer than it from now on
            self.ledger.add(Revision(sha=sha, content=content, how="commit", at=time.monotonic()))
        self.head, self.broken_head, self.by_hand, self.held = sha, content is None, False, False
        self.same_render = set()
        if content is not None:
            self.content, self.expected = content, sha
        else:
            self.failures[sha] += 1

    def committed_elsewhere(self, sha: str) -> None:
        """A commit to another path of the app's repository: its head moves, its render does
        not, so the App is not synced and keeps reporting the revision it applied. A broken
        head is tried again (the App's last sync failed), and fails again."""
        head = self.ledger.get(self.head)
        if self.broken_head or head is None or head.content is None:
            return self.committed(sha, content=None)
        self.ledger.add(Revision(sha=sha, content=head.content, how="elsewhere"))
        if not self.held and not self.by_hand and head.content == self.content:
            self.same_render.add(sha)
        self.head = sha

    def rolled_back(self, sha: str, *, at: float) -> None:
        """`syncer rollback --to sha`, run at `at`: the App goes back to an earlier revision and
        stays."""
        revision = self.ledger.get(sha)
        assert revision is not None and revision.content is not None, sha
        self.ledger.add(Revision(sha=sha, content=revision.content, how="rollback", at=at))
        self.content, self.expected, self.held = revision.content, sha, True
        self.same_render = set()

    def commit(self, content: Content, message: str) -> str:
        sha = self.repo.commit(self.path, content.files(), message)
        self.committed(sha, content=content)
        return sha

    def commit_broken(self, message: str) -> str:
        sha = self.repo.commit(self.path, broken_files(self.content), message)
        self.committed(sha, content=None)
        return sha

    def synced_by_hand(self, sha: str, content: Content) -> None:
        """The cluster now runs a revision that is not the branch's head: the App says so,
        Ready=False, once (one Event, about the head it does not run) until Git moves."""
        self.ledger.add(Revision(sha=sha, content=content, how="hand"))
        self.content, self.expected, self.by_hand = content, sha, True
        self.same_render = set()
        self.failures[self.head] += 1

    def expected_state(self, sample: Sample | None) -> list[str]:
        """How the latest sample differs from what the model expects once the daemon caught up."""
        if sample is None:
            return ["not sampled yet"]
        problems = []
        accepted = {self.expected, *self.same_render}
        if sample.recorded not in accepted:
            problems.append(f"the parent records {str(sample.recorded)[:12]}, expected {self.expected[:12]}")
        revision = self.ledger.get(self.expected)
        want = revision.content.desired() if revision and revision.content else {}
        if sample.members != want:
            problems.append(f"live members {sample.members}, the render of {self.expected[:12]} is {want}")
        status = sample.status or {}
        ready = condition(status, "Ready")
        shown = f"Ready={ready.get('status')} ({ready.get('reason')}: {str(ready.get('message'))[:300]}), " \
                f"applied {str(status.get('lastAppliedRevision'))[:12]}, attempted " \
                f"{str(status.get('lastAttemptedRevision'))[:12]}"
        if self.held:
            if ready.get("status") != "True" or status.get("lastAppliedRevision") != self.expected:
                problems.append(f"{shown}; expected Ready=True for the revision rolled back to {self.expected[:12]}")
            if condition(status, "RolledBack").get("status") != "True":
                problems.append(f"{shown}; expected RolledBack=True, held at {self.expected[:12]}")
        elif self.by_hand:
            if ready.get("status") == "True":
                problems.append(f"{shown}: Ready while the cluster runs {self.expected[:12]}, synced by hand, and "
                                f"the branch's head is {self.head[:12]}")
        elif self.broken_head:
            if ready.get("status") != "False" or status.get("lastAttemptedRevision") != self.head:
                problems.append(f"{shown}; expected Ready=False for the broken head {self.head[:12]}")
        elif ready.get("status") != "True" or status.get("lastAppliedRevision") not in accepted:
            what = "the head" if self.expected == self.head else "the last commit that changed it"
            problems.append(f"{shown}; expected Ready=True for {what} {self.expected[:12]}")
        return [f"{self.ref}: {p}" for p in problems]


def hand_edited(content: dict[str, Any], n: int) -> dict[str, Any]:
    return {k: f"hand-{n}" for k in content} or {"value": f"hand-{n}"}


def with_change(content: Content, *, change: str, n: int) -> Content:
    """One change to an app's content: a value, a new ConfigMap, one removed, the Widget."""
    maps = list(content.configmaps)
    if change == "add" or (change == "remove" and len(maps) < 2):
        maps.append((f"cm{n}", f"v{n}"))
    elif change == "remove":
        maps.pop(n % len(maps))
    elif change == "value":
        name, _ = maps[n % len(maps)]
        maps[n % len(maps)] = (name, f"v{n}")
    else:
        return replace(content, widget=f"size-{n}")
    return replace(content, configmaps=tuple(maps))


def evidence(status: dict[str, Any] | None) -> list[str]:
    """What in a status could only come from reading the target namespace's objects."""
    status = status or {}
    found = []
    if condition(status, "Ready").get("status") == "True":
        found.append("Ready=True")
    if status.get("health"):
        found.append(f"health {status['health']}: {str(status.get('healthMessage'))[:200]}")
    if (status.get("inventory") or {}).get("size"):
        found.append(f"inventory {status['inventory']}")
    if (status.get("drift") or {}).get("objects"):
        found.append(f"drift {status['drift']}")
    summary = (status.get("lastSync") or {}).get("summary") or {}
    if any(summary.get(action) for action in ("unchanged", "configured")):
        found.append(f"lastSync.summary {json.dumps(summary)}")
    return found
