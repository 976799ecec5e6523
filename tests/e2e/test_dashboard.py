"""The dashboard of `syncer run --ui`, in a real browser (Debian's chromium driven by
Playwright) against a daemon serving a real API server's Apps. The tests assert what the
pages show and what the cluster holds, never pixels."""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.test_apps import Kubectl, app_yaml, installed, run_daemon  # noqa: F401 - fixtures
from tests.e2e.test_daemon import commit, configmap_yaml, eventually, free_port, git
from tests.e2e.test_daemon import repo  # noqa: F401 - the fixture: a Git repository with shop/config.yaml

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
SECRET_VALUE = "pa55-never-on-the-page-7f3a"
NEW_SECRET_VALUE = "pa55-rotated-never-shown-91c4"
CHROMIUM_ARGS = ("--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-default-apps", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage")


def launch(playwright: Any) -> Any:
    """Debian's chromium, headless, without its background traffic; never a downloaded browser."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: ./scripts/test installs it (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def dashboard(run_daemon: Callable[..., subprocess.Popen[str]], namespace: str, *args: str) -> str:
    port = free_port()
    run_daemon("--watch-namespace", namespace, "--ui", "--ui-listen", f"127.0.0.1:{port}", *args)
    return f"http://127.0.0.1:{port}"


def http(url: str, *, token: str | None = None, data: dict[str, str] | None = None,
         origin: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if origin:
        headers["Origin"] = origin
    body = "&".join(f"{k}={urllib.parse.quote(v)}" for k, v in (data or {}).items()).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if data is not None else "GET")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def stream_text(url: str, *, seconds: float, token: str | None = None) -> str:
    """What an event stream sends within `seconds`."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    received = b""
    with socket.create_connection((host, int(port)), timeout=seconds) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n".encode())
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            received += chunk
    return received.decode(errors="replace")


def service_account_token(api: client.ApiClient, namespace: str, name: str, *, verbs: list[str]) -> str:
    """A service account that may `verbs` Apps in its namespace, and its token."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": [
        {"apiGroups": ["syncer.dev"], "resources": ["apps"], "verbs": verbs}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    })
    answer: Any = core.create_namespaced_service_account_token(name, namespace,
                                                                {"spec": {"expirationSeconds": 3600}})
    return str(answer.status.token)


SECRET_YAML = f"""apiVersion: v1
kind: Secret
metadata: {{name: shop-credentials}}
stringData: {{password: {SECRET_VALUE}}}
"""


def test_the_dashboard_shows_apps_live_failures_and_never_a_secret(
    installed: Kubectl, repo: Path, namespace: str, run_daemon: Callable[..., subprocess.Popen[str]], page: Any,
) -> None:
    kubectl = installed
    commit(repo, {"shop/secret.yaml": SECRET_YAML}, "a secret")
    base = dashboard(run_daemon, namespace)
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "shop", repo=repo, path="shop"))
    kubectl("wait", "--for=condition=Ready", "app/shop", "-n", namespace, "--timeout=60s")
    first = git(repo, "rev-parse", "HEAD")

    # The apps list: kubectl get apps' columns.
    page.goto(base + "/")
    row = page.locator(f'tr[data-app="{namespace}/shop"]')
    row.get_by_text("True").wait_for()
    assert first[:12] in row.inner_text()
    assert "Healthy" in row.inner_text()

    # One App: its objects with their action and health, its Events.
    row.get_by_role("link", name="shop").click()
    page.wait_for_url(f"{base}/apps/{namespace}/shop")
    objects = page.locator("table.objects")
    objects.get_by_text("shop-credentials").wait_for()
    assert "web-config" in objects.inner_text()
    secret_row = objects.locator("tr", has_text="shop-credentials").inner_text()
    assert "Secret" in secret_row and ("created" in secret_row or "unchanged" in secret_row), secret_row
    assert "Healthy" in objects.locator("tr", has_text="web-config").inner_text()

    # The Secret's value is nowhere: neither in the pages nor in their event streams.
    for path in ("/", f"/apps/{namespace}/shop"):
        page.goto(base + path)
        assert SECRET_VALUE not in page.content()
    streamed = stream_text(f"{base}/stream/apps/{namespace}/shop", seconds=3)
    assert "event: main" in streamed and "shop-credentials" in streamed
    assert SECRET_VALUE not in streamed
    assert SECRET_VALUE not in stream_text(f"{base}/stream", seconds=2)
    page.goto(f"{base}/apps/{namespace}/shop")

    # A commit shows without a reload.
    page.evaluate("window.notReloaded = true")
    second = commit(repo, {"shop/config.yaml": configmap_yaml("web-config", "green")}, "green")
    page.locator("#main").get_by_text(second).first.wait_for()
    assert page.evaluate("window.notReloaded") is True
    # The last diff: the field the commit changed, and why (never a value).
    changed = page.locator("table.objects tr", has_text="web-config").locator("ul.fields li")
    changed.get_by_text(".data.color", exact=True).wait_for()
    assert [item.split() for item in changed.all_inner_texts()] == [[".data.color", "git"]], changed.all_inner_texts()

    # A broken commit: Ready=False with the reason, still without a reload.
    broken = commit(repo, {"shop/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n"}, "broken")
    page.locator("#ready-message", has_text=f"sync of revision {broken[:12]} failed").wait_for()
    assert page.locator("dl.facts").get_by_text("False").first.is_visible()
    page.locator("table.events").get_by_text("SyncFailed").wait_for()
    assert page.evaluate("window.notReloaded") is True

    # The history, newest first: the failed commit, the green one, the first sync.
    history = page.locator("table.history")
    history.locator("tbody tr").nth(2).wait_for()
    rows = [history.locator("tbody tr").nth(n).inner_text() for n in range(3)]
    assert broken[:12] in rows[0] and "Failed" in rows[0], rows
    assert second[:12] in rows[1] and "1 configured" in rows[1] and "Succeeded" in rows[1], rows
    assert first[:12] in rows[2] and "created" in rows[2], rows
    assert SECRET_VALUE not in page.content()


def test_two_history_entries_compare_with_old_and_new_values_and_never_a_secret(
    installed: Kubectl, repo: Path, namespace: str, run_daemon: Callable[..., subprocess.Popen[str]], page: Any,
) -> None:
    kubectl = installed
    first = commit(repo, {"shop/secret.yaml": SECRET_YAML}, "a secret")
    base = dashboard(run_daemon, namespace)
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "shop", repo=repo, path="shop"))
    kubectl("wait", "--for=condition=Ready", "app/shop", "-n", namespace, "--timeout=60s")
    second = commit(repo, {"shop/config.yaml": configmap_yaml("web-config", "green"),
                           "shop/secret.yaml": SECRET_YAML.replace(SECRET_VALUE, NEW_SECRET_VALUE)}, "green")
    eventually(lambda: [entry["revision"] for entry in kubectl.status(namespace, "shop").get("history") or []
                        if entry.get("result") == "Succeeded"][:2] == [second, first],
               timeout=60, what="the second commit's sync in the App's history")
    history = kubectl.status(namespace, "shop")["history"]

    # On the app page: pick the two entries, and submit with the keyboard.
    page.goto(f"{base}/apps/{namespace}/shop")
    for label, revision in (("From", first), ("To", second)):
        chooser = page.get_by_label(label, exact=True)
        chooser.select_option(value=chooser.locator("option", has_text=revision[:12]).first.get_attribute("value"))
    page.get_by_role("button", name="Compare").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(f"{base}/apps/{namespace}/shop/compare?")))

    # The two entries' facts, and what changed between their renders.
    entries = page.locator("#compare-entries")
    assert first in entries.inner_text() and second in entries.inner_text()
    assert "created" in entries.locator("tr", has_text="Changes").inner_text(), entries.inner_text()
    assert "2 changed, 0 added, 0 removed" in page.locator("#compare-summary").inner_text()
    config = page.locator(f'tr[data-object="ConfigMap/{namespace}/web-config"] table.values tr', has_text=".data.color")
    assert [cell.strip() for cell in config.locator("td").all_inner_texts()] == ["blue", "green"]
    secret = page.locator(f'tr[data-object="Secret/{namespace}/shop-credentials"] table.values tr',
                          has_text=".data.password")
    assert [cell.strip() for cell in secret.locator("td").all_inner_texts()] == ["value hidden (Secret)"] * 2
    content = page.content()
    for value in (SECRET_VALUE, NEW_SECRET_VALUE):
        assert value not in content and base64.b64encode(value.encode()).decode() not in content
    assert "secret sha256" not in content

    # The newest entry's "vs previous" is the same comparison.
    page.goto(f"{base}/apps/{namespace}/shop")
    page.get_by_role("link", name=f"Compare {second[:12]} with the entry before it").click()
    page.locator("#compare-summary").get_by_text("2 changed").wait_for()
    streamed = stream_text(f"{base}/stream/apps/{namespace}/shop", seconds=3)
    assert "compare-from" in streamed and NEW_SECRET_VALUE not in streamed and SECRET_VALUE not in streamed

    # Read-only: the cluster still runs the second commit, and no sync was recorded by comparing.
    live = json.loads(kubectl("get", "configmap", "web-config", "-n", namespace, "-o", "json").stdout)
    assert live["data"] == {"color": "green"}
    assert kubectl.status(namespace, "shop")["history"] == history


def test_a_user_sees_only_the_apps_of_their_namespaces_and_acts_only_with_their_rights(
    installed: Kubectl, repo: Path, namespace: str, kube_api: client.ApiClient,
    run_daemon: Callable[..., subprocess.Popen[str]], page: Any,
) -> None:
    kubectl = installed
    other = namespace[:-6] + "b-" + namespace[-6:]
    core = client.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": other}})
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        run_daemon("--watch-namespace", namespace, "--watch-namespace", other, "--ui", "--ui-listen",
                   f"127.0.0.1:{port}", "--ui-auth", "kubernetes", "--ui-actions")
        kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "shop", repo=repo, path="shop"))
        kubectl("apply", "-f", "-", stdin=app_yaml(other, "hidden", repo=repo, path="shop", suspend=True))
        viewer = service_account_token(kube_api, namespace, "viewer", verbs=["get", "list", "watch"])
        operator = service_account_token(kube_api, namespace, "operator", verbs=["get", "list", "watch", "patch"])

        # Without a token: the sign-in page; with a wrong one: refused.
        page.goto(base + "/")
        page.wait_for_url(base + "/login")
        page.get_by_label("Token").fill("not-a-token")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        assert "does not accept this token" in page.content(), page.content()

        # The viewer sees namespace A's App, not B's, and no buttons (no patch).
        page.get_by_label("Token").fill(viewer)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(base + "/")
        page.locator(f'tr[data-app="{namespace}/shop"]').wait_for()
        assert "hidden" not in page.locator("#main").inner_text()
        assert f"{other}/hidden" not in page.content()
        assert http(f"{base}/apps/{other}/hidden", token=viewer)[0] == 404
        assert http(f"{base}/apps/{namespace}/shop", token=viewer)[0] == 200
        assert "hidden" not in stream_text(f"{base}/stream", seconds=2, token=viewer)
        page.goto(f"{base}/apps/{namespace}/shop")
        assert page.get_by_role("button", name="Reconcile now").count() == 0

        # An action without patch rights is refused, with or without the CSRF token.
        status, body = http(f"{base}/apps/{namespace}/shop", token=viewer)
        viewer_csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', body)
        assert viewer_csrf is not None
        before = kubectl.app(namespace, "shop")["metadata"].get("annotations") or {}
        status, body = http(f"{base}/apps/{namespace}/shop/reconcile", token=viewer, origin=base,
                            data={"csrf": viewer_csrf.group(1)})
        assert status == 403, body
        status, _ = http(f"{base}/apps/{other}/hidden/resume", token=viewer, origin=base,
                         data={"csrf": viewer_csrf.group(1)})
        assert status == 404
        assert kubectl.app(other, "hidden")["spec"]["suspend"] is True

        # The operator may patch: without the CSRF token (or from another origin) refused, with it done.
        _, body = http(f"{base}/apps/{namespace}/shop", token=operator)
        operator_csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', body)
        assert operator_csrf is not None
        assert http(f"{base}/apps/{namespace}/shop/suspend", token=operator, origin=base, data={})[0] == 403
        assert http(f"{base}/apps/{namespace}/shop/suspend", token=operator, origin=base,
                    data={"csrf": viewer_csrf.group(1)})[0] == 403
        assert http(f"{base}/apps/{namespace}/shop/suspend", token=operator, origin="http://evil.example",
                    data={"csrf": operator_csrf.group(1)})[0] == 403
        assert not kubectl.app(namespace, "shop")["spec"].get("suspend")
        assert (kubectl.app(namespace, "shop")["metadata"].get("annotations") or {}) == before
        status, _ = http(f"{base}/apps/{namespace}/shop/suspend", token=operator, origin=base,
                         data={"csrf": operator_csrf.group(1)})
        assert status == 303
        assert kubectl.app(namespace, "shop")["spec"]["suspend"] is True

        # In the browser, signed in as the operator: the buttons are there and work.
        page.context.clear_cookies()
        page.goto(base + "/login")
        page.get_by_label("Token").fill(operator)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(base + "/")
        page.goto(f"{base}/apps/{namespace}/shop")
        page.get_by_role("button", name="Resume").click()
        page.get_by_role("button", name="Suspend").wait_for()
        eventually(lambda: not kubectl.app(namespace, "shop")["spec"]["suspend"], timeout=30,
                   what="the App to be resumed")
    finally:
        core.delete_namespace(other)
