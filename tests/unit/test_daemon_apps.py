"""App objects as configuration, and the App status computed from what the daemon observed."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from syncer.apply import Change, ChangeSet
from syncer.apply.history import Trigger, TriggerKind, entry
from syncer.apply.intent import Interrupted, SyncIntent
from syncer.config import AppConfig, parse_config
from syncer.daemon.appspec import AppSpec, InvalidApp, Notification, SecretKeyRef, TenantPolicy, app_spec
from syncer.daemon.notifytarget import parse_allow_list
from syncer.daemon.appstatus import AppHealth, Observation, aggregate_health, app_status, condition_status
from syncer.daemon.apptick import newest_status
from syncer.daemon.notify import signature, transitions
from syncer.daemon.reconciler import SyncAttempt, failure_cause
from syncer.diff import IgnoreRule
from syncer.model import Action, ObjectRef


def app(spec: dict[str, Any], *, name: str = "shop", namespace: str = "team-a") -> dict[str, Any]:
    return {"apiVersion": "syncer.dev/v1alpha1", "kind": "App",
            "metadata": {"name": name, "namespace": namespace, "uid": "u1", "generation": 1}, "spec": spec}


def test_an_app_builds_what_the_configuration_file_builds() -> None:
    spec = {"repo": "https://git.example.com/shop.git", "revision": "main", "path": "deploy/prod",
            "targetNamespace": "shop", "prune": False, "selfHeal": False, "interval": "5m", "timeout": "2m",
            "wait": True, "ignoreDifferences": [{"group": "apps", "kind": "Deployment",
                                                 "jsonPointers": ["/spec/replicas"]}]}
    from_app = app_spec(app(spec)).config
    from_file = parse_config(
        "apps:\n- name: shop\n  repo: https://git.example.com/shop.git\n  revision: main\n  path: deploy/prod\n"
        "  namespace: shop\n  prune: false\n  selfHeal: false\n  interval: 5m\n  timeout: 2m\n  wait: true\n"
        "  ignoreDifferences:\n  - {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}\n",
        source="apps.yaml", base_dir=__import__("pathlib").Path("/")).apps[0]
    assert from_app == AppConfig(**{**from_file.__dict__, "where": "App/team-a/shop", "home": "team-a"})
    assert isinstance(from_app.ignore[0], IgnoreRule)


def test_defaults_and_identity() -> None:
    spec = app_spec(app({"repo": "/srv/git/shop", "serviceAccountName": "deployer", "createNamespace": True,
                         "secretRef": {"name": "git"}, "suspend": True,
                         "notification": {"url": "http://127.0.0.1:9/hook", "secretRef": {"name": "hook"}}}),
                    policy=TenantPolicy(allow_local_repos=True, notify_allow=parse_allow_list(["127.0.0.1"])))
    assert spec == AppSpec(
        config=AppConfig(name="shop", repo="/srv/git/shop", namespace="team-a", where="App/team-a/shop",
                         create_namespace=True, home="team-a"),
        app_namespace="team-a", suspend=True, service_account="deployer", git_secret="git",
        notification=Notification(url="http://127.0.0.1:9/hook", secret=SecretKeyRef(name="hook", key="secret")),
    )
    assert spec.user == "system:serviceaccount:team-a:deployer"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidApp) as raised:
        app_spec(app({"repo": "relative/path", "interval": "5x", "path": "../up", "selfheal": True,
                      "revision": "a..b"}))
    text = str(raised.value)
    assert text.startswith("App/team-a/shop: ")
    for expected in ("spec: unknown field 'selfheal'", "spec.repo: 'relative/path' is neither a URL nor an absolute",
                     'spec.interval: "5x" is not a duration', "spec.path:", "spec.revision:"):
        assert expected in text
    assert raised.value.reason == "InvalidSpec"


def test_a_service_account_can_be_required() -> None:
    app_spec(app({"repo": "https://git.example.com/shop.git"}))
    with pytest.raises(InvalidApp) as raised:
        app_spec(app({"repo": "https://git.example.com/shop.git"}), policy=TenantPolicy(require_service_account=True))
    assert raised.value.reason == "ServiceAccountRequired"
    assert "spec.serviceAccountName: required" in str(raised.value)


def _deployment(**status: Any) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"generation": 1}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, **status}}


@pytest.mark.parametrize(("objects", "state"), [
    ([], "Healthy"),
    ([{"kind": "ConfigMap", "metadata": {}}], "Healthy"),
    ([{"kind": "ConfigMap", "metadata": {}}, None], "Missing"),
    ([_deployment(updatedReplicas=0), None], "Missing"),
    ([_deployment(updatedReplicas=0)], "Progressing"),
    ([_deployment(conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]),
      None, _deployment()], "Degraded"),
])
def test_health_is_aggregated_worst_first(objects: list[Any], state: str) -> None:
    refs = [ObjectRef(group="", kind="X", namespace="n", name=str(i)) for i in range(len(objects))]
    assert aggregate_health(list(zip(refs, objects))).state == state


def _outcome(revision: str, *actions: str, error: str | None = None, stopped: bool | None = None) -> SyncAttempt:
    changes = ChangeSet(app="shop", revision=revision, error=error,
                        stopped=error is not None if stopped is None else stopped, changes=[
        Change(ref=ObjectRef(group="", kind="ConfigMap", namespace="n", name=f"c{i}"), api_version="v1",
               action=Action(action))
        for i, action in enumerate(actions)])
    return SyncAttempt(revision=revision, changes=changes, error=error)


HEALTHY = AppHealth("Healthy", "2 object(s) healthy")


def test_ready_after_a_healthy_sync_and_an_idle_resync_changes_nothing() -> None:
    first = app_status({}, Observation(3, outcome=_outcome("a" * 40, "created", "created"), health=HEALTHY, drift=()),
                       now="t1")
    assert condition_status(first, "Ready") == "True"
    assert condition_status(first, "Stalled") == condition_status(first, "Reconciling") == "False"
    assert first["observedGeneration"] == 3
    assert first["lastAppliedRevision"] == first["lastAttemptedRevision"] == "a" * 40
    assert first["inventory"] == {"size": 2}
    assert first["drift"] == {"count": 0, "objects": []}
    assert first["lastSync"] == {"revision": "a" * 40, "result": "Succeeded", "summary": {"created": 2}, "time": "t1"}
    same = app_status(first, Observation(3, outcome=_outcome("a" * 40, "created", "created"), health=HEALTHY,
                                         drift=()), now="t2")
    assert same == first


def test_the_history_and_an_interrupted_sync_are_in_the_status_and_a_resync_changes_neither() -> None:
    synced = entry(revision="a" * 40, started="t0", finished="t1", seconds=1.0, trigger=Trigger(TriggerKind.WEBHOOK),
                   result="Succeeded", summary={"created": 2})
    outcome = _outcome("a" * 40, "created", "created")
    assert outcome.changes is not None
    outcome.changes.interrupted = Interrupted(
        intent=SyncIntent(revision="b" * 40, plan_digest="", started="t0", trigger=Trigger(TriggerKind.CLI)),
        already_applied=1, planned=2, found="t1")
    first = app_status({}, Observation(3, outcome=outcome, health=HEALTHY, drift=(), history=(synced,)), now="t1")
    assert first["history"] == [synced.to_dict()]
    assert first["lastInterrupted"]["revision"] == "b" * 40 and first["lastInterrupted"]["alreadyApplied"] == 1
    assert app_status(first, Observation(3, outcome=outcome, health=HEALTHY, drift=(), history=(synced,)),
                      now="t2") == first
    assert app_status(first, Observation(3, outcome=outcome, health=HEALTHY, drift=()), now="t2") == first


def test_a_failed_sync_keeps_the_applied_revision_and_says_why() -> None:
    applied = app_status({}, Observation(1, outcome=_outcome("a" * 40, "created"), health=HEALTHY, drift=()), now="t1")
    failed = app_status(applied, Observation(1, outcome=_outcome("b" * 40, error="Deployment/n/web: forbidden")),
                        now="t2")
    assert failed["lastAppliedRevision"] == "a" * 40
    assert failed["lastAttemptedRevision"] == "b" * 40
    ready = next(c for c in failed["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["lastTransitionTime"]) == ("False", "SyncFailed", "t2")
    assert "forbidden" in ready["message"]
    assert failed["lastSync"]["error"] == "Deployment/n/web: forbidden"
    assert condition_status(failed, "Reconciling") == "True"


def test_a_sync_applied_but_not_healthy_in_time_is_applied_and_not_ready() -> None:
    timed_out = app_status({}, Observation(1, outcome=_outcome(
        "c" * 40, "created", error="1 object(s) not healthy after 300s: Deployment/n/web: progressing", stopped=False),
        health=AppHealth("Progressing", "Deployment/n/web: progressing")), now="t1")
    assert timed_out["lastAppliedRevision"] == timed_out["lastAttemptedRevision"] == "c" * 40
    assert condition_status(timed_out, "Ready") == "False"
    assert timed_out["lastSync"]["result"] == "Failed"


@pytest.mark.parametrize(("health", "ready", "reconciling", "stalled"), [
    ("Progressing", "False", "True", "False"),
    ("Missing", "False", "True", "False"),
    ("Degraded", "False", "False", "True"),
])
def test_health_decides_ready(health: str, ready: str, reconciling: str, stalled: str) -> None:
    status = app_status({}, Observation(1, outcome=_outcome("a" * 40, "created"),
                                        health=AppHealth(health, "Deployment/n/web: x")))  # type: ignore[arg-type]
    assert status["health"] == health
    assert [condition_status(status, kind) for kind in ("Ready", "Reconciling", "Stalled")] == [
        ready, reconciling, stalled]


def test_invalid_and_suspended_apps() -> None:
    invalid = app_status({}, Observation(2, invalid=InvalidApp("App/a/b", ["spec.x: bad"])))
    assert condition_status(invalid, "Stalled") == "True"
    assert next(c for c in invalid["conditions"] if c["type"] == "Stalled")["reason"] == "InvalidSpec"
    ready = app_status({}, Observation(1, outcome=_outcome("a" * 40, "created"), health=HEALTHY), now="t1")
    suspended = app_status(ready, Observation(2, suspended=True, handled_request="r1"), now="t2")
    reasons = {c["type"]: (c["status"], c["reason"]) for c in suspended["conditions"]}
    assert reasons == {"Ready": ("True", "Suspended"), "Reconciling": ("False", "Suspended"),
                       "Stalled": ("False", "Suspended")}
    assert suspended["lastHandledReconcileAt"] == "r1"
    assert suspended["lastSync"] == ready["lastSync"]


def test_notifications_are_sent_on_transitions_only() -> None:
    ok = {"lastSync": {"result": "Succeeded"}, "health": "Healthy"}
    failed = {"lastSync": {"result": "Failed"}, "health": "Healthy"}
    assert transitions(ok, failed) == ["failed"]
    assert transitions(failed, failed) == []
    assert transitions(failed, ok) == ["recovered"]
    assert transitions(ok, {**ok, "health": "Degraded"}) == ["health"]
    assert transitions({}, ok) == []


def test_one_failed_event_per_distinct_failure_never_per_message_text() -> None:
    """Distinct by revision, cause and failed objects (issue 20)."""
    def status_after(*attempts: SyncAttempt) -> list[list[str]]:
        told, status = [], {}
        for attempt in attempts:
            after = app_status(status, Observation(1, outcome=attempt, health=HEALTHY), now="t")
            told.append(transitions(status, after))
            status = after
        return told

    a, b = "a" * 40, "b" * 40
    render = SyncAttempt(revision=a, changes=None, error="line 3: bad", cause=failure_cause(ValueError()))
    assert status_after(
        render,
        SyncAttempt(revision=a, changes=None, error="line 3: bad, at 12:01", cause=render.cause),  # same failure
        SyncAttempt(revision=b, changes=None, error="line 3: bad", cause=render.cause),  # a new revision
        _outcome(b, "failed", error=None, stopped=False),  # the same revision, another cause
        _outcome(b, "failed", "failed", error=None, stopped=False),  # another object failed too
        _outcome(b, "failed", "failed", error=None, stopped=False),
        _outcome(b, "created"),
    ) == [["failed"], [], ["failed"], ["failed"], ["failed"], [], ["recovered"]]


def test_signature_is_github_style_hmac() -> None:
    body = b'{"event":"failed"}'
    assert signature(body, b"s3cret") == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()


def test_app_mode_flags_are_refused_in_the_file_mode(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from syncer.cli import cli

    config = tmp_path / "apps.yaml"
    config.write_text("apps:\n- name: shop\n  repo: /srv/git/shop\n")
    result = CliRunner().invoke(cli, ["run", "--config", str(config), "--watch-namespace", "team-a"])
    assert result.exit_code == 2
    assert "--watch-namespace, --require-service-account, --notify-url, --allow-local-repos and --notify-allow " \
           "serve Apps" in result.output
    for flag in (["--allow-local-repos"], ["--notify-allow", "127.0.0.1"]):
        result = CliRunner().invoke(cli, ["run", "--config", str(config), *flag])
        assert result.exit_code == 2 and "serve Apps: they do not apply with --config" in result.output
    result = CliRunner().invoke(cli, ["run", "--notify-allow", "not a host"])
    assert result.exit_code == 2
    assert "--notify-allow: 'not a host' is neither an address, a network (CIDR) nor a host name" in result.output
    result = CliRunner().invoke(cli, ["run", "--notify-url", "ftp://x"])
    assert result.exit_code == 2 and "--notify-url ftp://x: not an http:// or https:// URL" in result.output


def test_the_status_told_from_is_the_latest_sync_whichever_replica_wrote_it() -> None:
    """A replica that takes an App over (shard handover, restart) compares with the status
    another replica wrote since, not with its own stale one: a failure told is not told again."""
    failed = app_status({}, Observation(1, outcome=SyncAttempt(revision="a" * 40, changes=None, error="boom",
                                                                cause="ValidationFailed")), now="2026-12-02T09:00:00Z")
    assert newest_status({}, failed) == failed
    assert transitions(newest_status({}, failed), failed) == []
    older = {"lastSync": {"result": "Succeeded", "time": "2026-12-02T08:00:00Z"}}
    assert newest_status(failed, older) == failed


def test_decryption_names_a_secret_of_age_keys_in_the_apps_namespace() -> None:
    spec = app_spec(app({"repo": "https://git.example.com/shop.git",
                         "decryption": {"provider": "sops", "secretRef": {"name": "sops-age"}}}))
    assert spec.decryption_secret == "sops-age"
    assert app_spec(app({"repo": "https://git.example.com/shop.git"})).decryption_secret is None
    with pytest.raises(InvalidApp) as raised:
        app_spec(app({"repo": "https://git.example.com/shop.git",
                      "decryption": {"provider": "vault", "secretRef": {"name": "x"}, "keyring": "y"}}))
    assert "spec.decryption: must be {provider: sops, secretRef: {name:" in str(raised.value)
    with pytest.raises(InvalidApp) as raised:
        app_spec(app({"repo": "https://git.example.com/shop.git", "decryption": {"secretRef": {}}}))
    assert "spec.decryption: secretRef: must be {name:" in str(raised.value)


def test_manual_approval_and_an_approved_digest_are_read_and_checked() -> None:
    digest = "sha256:" + "ab" * 32
    config = app_spec(app({"repo": "https://git.example.com/shop.git", "approval": "manual",
                           "approvedPlan": digest})).config
    assert (config.manual_approval, config.approved_plan) == (True, digest)
    assert not app_spec(app({"repo": "https://git.example.com/shop.git"})).config.manual_approval
    with pytest.raises(InvalidApp) as raised:
        app_spec(app({"repo": "https://git.example.com/shop.git", "approval": "yes", "approvedPlan": "abc"}))
    assert "spec.approval: 'yes': must be auto or manual" in str(raised.value)
    assert "spec.approvedPlan: 'abc': must be a plan digest" in str(raised.value)


def test_a_pending_plan_shows_in_the_status_with_one_event_per_plan() -> None:
    from syncer.daemon.approval import PendingPlan
    from syncer.model import AppId

    applied = app_status({}, Observation(1, outcome=_outcome("a" * 40, "created"), health=HEALTHY), now="t1")
    plan = PendingPlan(revision="b" * 40, digest="sha256:" + "1" * 64, summary={"configured": 2})
    waiting = app_status(applied, Observation(2, outcome=_outcome("a" * 40, "created"), health=HEALTHY,
                                              pending=plan, app=AppId(namespace="team-a", name="shop")), now="t2")
    assert waiting["pendingPlan"] == {"revision": "b" * 40, "digest": plan.digest, "summary": {"configured": 2}}
    ready = next(c for c in waiting["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "AwaitingApproval")
    assert ready["message"] == (f"revision {'b' * 12} is planned (2 configured) and waits for approval: "
                                f"syncer approve --app shop -n team-a --digest {plan.digest}")
    assert waiting["lastAppliedRevision"] == "a" * 40
    assert transitions(applied, waiting) == ["awaiting-approval"]
    assert transitions(waiting, waiting) == []
    done = app_status(waiting, Observation(2, outcome=_outcome("b" * 40, "configured"), health=HEALTHY), now="t3")
    assert "pendingPlan" not in done and condition_status(done, "Ready") == "True"
