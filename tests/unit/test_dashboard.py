"""The dashboard's pure parts: what a page shows of an App, and the auth decisions."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from click.testing import CliRunner

from syncer.cli import cli
from syncer.dashboard import DashboardOptions, check_options
from syncer.dashboard.auth import (
    KubernetesAuth,
    User,
    access_review,
    allowed_of_review,
    bearer_token,
    csrf_ok,
    csrf_token,
    same_origin,
    user_of_review,
)
from syncer.dashboard.views import Actions, ObjectRow, app_main, app_row, apps_main, event_rows
from syncer.errors import ConfigError

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def app(**status: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "team-a", "name": "shop", "uid": "u1"},
            "spec": {"repo": "https://git.example/shop.git", "path": "deploy", "suspend": False},
            "status": status}


READY = {"conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "revision abc applied"}],
         "lastAppliedRevision": "0123456789abcdef", "health": "Healthy", "drift": {"count": 0},
         "lastSync": {"time": "2026-01-01T11:55:00Z", "result": "Succeeded", "summary": {"unchanged": 2}}}


def test_a_row_has_the_columns_of_kubectl_get_apps() -> None:
    row = app_row(app(**READY))
    assert (row.ready, row.revision, row.health, row.drift, row.suspended, row.result) == (
        "True", "0123456789ab", "Healthy", "0", False, "Succeeded")
    html = apps_main([row], now=NOW)
    assert 'href="/apps/team-a/shop"' in html and "5m ago" in html


def test_an_app_without_status_shows_unknown() -> None:
    row = app_row(app())
    assert (row.ready, row.health, row.drift, row.result) == ("Unknown", "-", "-", "")
    assert "never" in apps_main([row], now=NOW)


def test_everything_a_tenant_writes_is_escaped() -> None:
    hostile = "<script>alert(1)</script>"
    obj = app(**{**READY, "lastSync": {"result": "Failed", "error": hostile}})
    obj["metadata"]["name"] = hostile
    obj["spec"]["repo"] = hostile
    html = app_main(obj, objects=[ObjectRow(kind="ConfigMap", namespace="a", name=hostile, action="created",
                                            health="Healthy", message=hostile)],
                    events=event_rows([{"type": "Warning", "reason": hostile, "message": hostile}]),
                    actions=Actions(), now=NOW)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<script>" not in apps_main([app_row(obj)], now=NOW)


def test_the_app_page_shows_its_history_newest_first_and_a_pending_plan() -> None:
    history = [
        {"revision": "b" * 40, "started": "2026-01-01T11:50:00Z", "finished": "2026-01-01T11:50:02Z",
         "durationSeconds": 2.0, "trigger": {"kind": "heal", "objects": ["ConfigMap/team-a/<web>"]},
         "result": "Succeeded", "summary": {"configured": 1}, "count": 2},
        {"revision": "a" * 40, "started": "2026-01-01T11:00:00Z", "finished": "2026-01-01T11:00:00Z",
         "durationSeconds": 0, "trigger": {"kind": "cli", "user": "alice"}, "result": "Interrupted", "summary": {},
         "count": 1, "planDigest": "sha256:0123456789abcdef", "alreadyApplied": 3, "planned": 5},
    ]
    pending = {"revision": "c" * 40, "digest": "sha256:feed", "summary": {"configured": 2}}
    html = app_main(app(**READY, history=history, pendingPlan=pending), objects=None, events=[], actions=Actions(),
                    now=NOW)
    table = html[html.index('id="history"'):html.index('id="events"')]
    assert table.index("b" * 12) < table.index("a" * 12)
    assert "heal ×2" in table and "ConfigMap/team-a/&lt;web&gt;" in table and "1 configured" in table
    assert "Interrupted" in table and "3 of 5 already applied" in table and "0123456789ab" in table
    assert "cli (alice)" in table and "10m ago" in table
    assert "Waiting for approval" in html and "sha256:feed" in html and "2 configured" in html
    assert "No sync recorded yet" in app_main(app(**READY), objects=None, events=[], actions=Actions(), now=NOW)


def test_buttons_only_when_allowed_and_each_form_carries_the_csrf_token() -> None:
    obj = app(**READY)
    assert "<form" not in app_main(obj, objects=None, events=[], actions=Actions(), now=NOW)
    html = app_main(obj, objects=None, events=[], actions=Actions(csrf="c0ffee", allowed=True), now=NOW)
    assert html.count("<form") == 2 and html.count('name="csrf" value="c0ffee"') == 2
    assert "/apps/team-a/shop/reconcile" in html and "/apps/team-a/shop/suspend" in html
    obj["spec"]["suspend"] = True
    html = app_main(obj, objects=None, events=[], actions=Actions(csrf="c0ffee", allowed=True), now=NOW)
    assert "/reconcile" not in html and "/apps/team-a/shop/resume" in html


def test_a_held_app_says_so_and_offers_to_release_it() -> None:
    hold = {"revision": "a" * 40, "from": "b" * 40, "holding": True}
    rolled = {"type": "RolledBack", "status": "True", "reason": "Held", "message": "rolled back to aaaaaaaaaaaa"}
    obj = app(**{**READY, "hold": hold, "conditions": [*READY["conditions"], rolled]})
    obj["spec"]["hold"] = {"revision": "a" * 40, "from": "b" * 40}
    assert "held (rolled back)" in apps_main([app_row(obj)], now=NOW)
    assert "held (rolled back)" not in apps_main([app_row(app(**READY))], now=NOW)
    html = app_main(obj, objects=None, events=[], actions=Actions(csrf="c0ffee", allowed=True), now=NOW)
    assert "/apps/team-a/shop/release" in html and "rolled back to aaaaaaaaaaaa" in html
    assert "/release" not in app_main(obj, objects=None, events=[], actions=Actions(), now=NOW)


def test_history_rows_offer_a_rollback_to_each_other_revision_applied() -> None:
    def entry(revision: str, result: str) -> dict[str, Any]:
        return {"revision": revision, "started": "2026-01-01T11:00:00Z", "finished": "2026-01-01T11:00:01Z",
                "durationSeconds": 1.0, "trigger": {"kind": "interval"}, "result": result, "summary": {}, "count": 1}

    current, older, failed = "a" * 40, "b" * 40, "c" * 40
    obj = app(**{**READY, "lastAppliedRevision": current,
                 "history": [entry(current, "Succeeded"), entry(failed, "Failed"), entry(older, "Succeeded"),
                             entry(current, "Succeeded"), entry(older, "Succeeded")]})
    html = app_main(obj, objects=None, events=[], actions=Actions(csrf="c0ffee", allowed=True), now=NOW)
    assert html.count("/apps/team-a/shop/rollback") == 1 and f'name="revision" value="{older}"' in html
    assert "/rollback" not in app_main(obj, objects=None, events=[], actions=Actions(), now=NOW)


def test_an_updated_object_shows_each_changed_field_and_why_never_a_value() -> None:
    row = ObjectRow(kind="Secret", namespace="team-a", name="db", action="configured", health="Healthy",
                    fields=((".data.password", "git"), (".spec.replicas", "drift: kubectl-scale at 2026-01-01T11:00:00Z")))
    html = app_main(app(**READY), objects=[row], events=[], actions=Actions(), now=NOW)
    assert "<code>.data.password</code> <small>git</small>" in html
    assert "drift: kubectl-scale at 2026-01-01T11:00:00Z" in html


def test_events_newest_first() -> None:
    rows = event_rows([{"reason": "Old", "lastTimestamp": "2026-01-01T10:00:00Z"},
                       {"reason": "New", "lastTimestamp": "2026-01-01T11:00:00Z", "count": 3}])
    assert [(r.reason, r.count) for r in rows] == [("New", 3), ("Old", 1)]


def test_a_token_review_names_the_user_or_nobody() -> None:
    answer = {"status": {"authenticated": True, "user": {"username": "system:serviceaccount:a:viewer", "uid": "9",
                                                          "groups": ["system:serviceaccounts"],
                                                          "extra": {"k": ["v"]}}}}
    user = user_of_review(answer, token="t")
    assert user == User(name="system:serviceaccount:a:viewer", uid="9", groups=("system:serviceaccounts",),
                        extra=(("k", ("v",)),), token="t")
    assert user_of_review({"status": {"authenticated": False}}, token="t") is None
    assert user_of_review({"status": {"authenticated": True, "user": {}}}, token="t") is None


def test_an_access_review_asks_about_apps_as_the_user() -> None:
    user = User(name="u", uid="9", groups=("g",), extra=(("k", ("v",)),))
    spec = access_review(user, verb="patch", namespace="a", name="shop")["spec"]
    assert spec == {"user": "u", "uid": "9", "groups": ["g"], "extra": {"k": ["v"]},
                    "resourceAttributes": {"group": "syncer.dev", "resource": "apps", "verb": "patch",
                                           "namespace": "a", "name": "shop"}}
    assert allowed_of_review({"status": {"allowed": True}})
    assert not allowed_of_review({"status": {"allowed": True, "denied": True}})
    assert not allowed_of_review({})


def test_the_header_token_wins_over_the_cookie() -> None:
    assert bearer_token({"authorization": "Bearer abc"}, {"c": "cookie"}, cookie="c") == "abc"
    assert bearer_token({"authorization": "Basic abc"}, {"c": "cookie"}, cookie="c") == "cookie"
    assert bearer_token({}, {}, cookie="c") is None


def test_csrf_tokens_belong_to_one_session() -> None:
    secret = b"s" * 32
    token = csrf_token(secret, "session-1")
    assert csrf_ok(secret, "session-1", token)
    assert not csrf_ok(secret, "session-2", token)
    assert not csrf_ok(b"t" * 32, "session-1", token)
    assert not csrf_ok(secret, "", csrf_token(secret, ""))
    assert not csrf_ok(secret, "session-1", "")


@pytest.mark.parametrize(("origin", "ok"), [("http://127.0.0.1:8081", True), ("https://127.0.0.1:8081", True),
                                            ("http://evil.example", False), ("null", False), (None, False)])
def test_only_the_dashboards_own_origin_may_post(origin: str | None, ok: bool) -> None:
    assert same_origin(origin, "127.0.0.1:8081") is ok


class FakeKube:
    """Answers TokenReviews and SubjectAccessReviews; counts them."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(path)
        if path.endswith("tokenreviews"):
            ok = kwargs["body"]["spec"]["token"] == "good"
            return {"status": {"authenticated": ok, "user": {"username": "alice"} if ok else {}}}
        attributes = kwargs["body"]["spec"]["resourceAttributes"]
        return {"status": {"allowed": attributes["namespace"] == "a" and attributes["verb"] == "get"}}


def test_kubernetes_auth_decides_from_the_reviews_and_keeps_answers_briefly() -> None:
    kube = FakeKube()
    clock = [0.0]
    auth = KubernetesAuth(kube, clock=lambda: clock[0])  # type: ignore[arg-type]
    alice = auth.authenticate("good")
    assert alice is not None and alice.name == "alice"
    assert auth.authenticate("bad") is None and auth.authenticate(None) is None
    assert auth.may(alice, verb="get", namespace="a")
    assert not auth.may(alice, verb="get", namespace="b")
    assert not auth.may(alice, verb="patch", namespace="a", name="shop")
    asked = len(kube.requests)
    auth.authenticate("good")
    auth.may(alice, verb="get", namespace="a")
    assert len(kube.requests) == asked
    clock[0] = 11.0
    auth.may(alice, verb="get", namespace="a")
    assert len(kube.requests) == asked + 1


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "::"])
def test_without_auth_the_dashboard_listens_on_loopback_only(host: str) -> None:
    with pytest.raises(ConfigError, match="loopback only"):
        check_options(DashboardOptions(listen=(host, 8081), auth="none"))
    check_options(DashboardOptions(listen=(host, 8081), auth="kubernetes"))
    check_options(DashboardOptions(listen=("127.0.0.1", 8081), auth="none"))
    check_options(DashboardOptions(listen=("::1", 8081), auth="none"))


def test_syncer_run_refuses_an_open_dashboard_without_auth() -> None:
    result = CliRunner().invoke(cli, ["run", "--ui", "--ui-listen", "0.0.0.0:8081"])
    assert result.exit_code != 0
    assert "--ui-auth kubernetes" in result.output
    result = CliRunner().invoke(cli, ["run", "--ui-actions"])
    assert result.exit_code != 0 and "add --ui" in result.output
