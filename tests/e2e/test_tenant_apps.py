"""Apps written by a hostile tenant, against a real API server and `syncer run` as a process:
each is Invalid (Stalled) with a message naming the field, nothing is written for it but its
status, and the Apps around it are served as usual."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from kubernetes import client

from tests.e2e.test_apps import (  # noqa: F401 - fixtures
    Kubectl,
    Receiver,
    app_yaml,
    condition,
    installed,
    receiver,
    run_daemon,
)
from tests.e2e.test_daemon import commit, configmap_yaml, eventually
from tests.e2e.test_daemon import repo  # noqa: F401 - the fixture: a Git repository with shop/config.yaml

REMOTE = "https://git.invalid/team/shop.git"


def tenant_app(namespace: str, name: str, *, repo: str | Path, **spec: object) -> str:
    """app_yaml with the repository exactly as written (a URL is not a Path)."""
    body = json.loads(app_yaml(namespace, name, repo=Path("/"), path=str(spec.pop("path", "shop")), **spec))
    body["spec"]["repo"] = str(repo)
    return json.dumps(body)


def stalled_message(kubectl: Kubectl, namespace: str, name: str) -> str:
    def message() -> str | None:
        stalled = condition(kubectl.status(namespace, name), "Stalled")
        return str(stalled["message"]) if stalled.get("status") == "True" else None

    return str(eventually(message, timeout=30, what=f"App {name} to be Stalled"))


def parents(kube_api: client.ApiClient, namespace: str) -> list[str]:
    """The ApplySet parents (ConfigMaps syncer-<app>) in the namespace: written by a sync or a
    recorded sync failure, never for an invalid App."""
    items = client.CoreV1Api(kube_api).list_namespaced_config_map(namespace).items
    return sorted(cm.metadata.name for cm in items if cm.metadata.name.startswith("syncer-"))


def test_hostile_apps_are_invalid_and_nothing_is_written_for_them(
    installed: Kubectl, repo: Path, namespace: str, kube_api: client.ApiClient,  # noqa: F811
    run_daemon: Callable[..., subprocess.Popen[str]], receiver: Receiver, tmp_path: Path,  # noqa: F811
) -> None:
    kubectl = installed
    marker = tmp_path / "proxy-command-ran"

    # Without the operator's consent: no local repositories, no loopback receivers.
    daemon = run_daemon("--watch-namespace", namespace, operator_flags=())
    hostile = {
        "local": tenant_app(namespace, "local", repo=repo, path="shop"),
        "huge": tenant_app(namespace, "huge", repo=REMOTE, path="shop", interval="100000000h"),
        "proxy": tenant_app(namespace, "proxy", repo=f"ssh://-oProxyCommand=touch%20{marker}/repo.git",
                          path="shop"),
        "scp": tenant_app(namespace, "scp", repo="git@-oProxyCommand=reboot:repo.git", path="shop"),
        "filehost": tenant_app(namespace, "filehost", repo="file://host/srv/git/shop", path="shop"),
        "metadata": tenant_app(namespace, "metadata", repo=REMOTE, path="shop",
                             notification={"url": "http://169.254.169.254/latest/meta-data/"}),
        "loopback": tenant_app(namespace, "loopback", repo=REMOTE, path="shop",
                             notification={"url": receiver.url + "/app"}),
    }
    for body in hostile.values():
        kubectl("apply", "-f", "-", stdin=body)
    expected = {
        "local": "spec.repo: ",
        "huge": 'spec.interval: "100000000h" is longer than the maximum of 168h',
        "proxy": "spec.repo: repository 'ssh://-oProxyCommand=",
        "scp": "spec.repo: repository 'git@-oProxyCommand=",
        "filehost": "file:// URLs cannot name a host",
        "metadata": "spec.notification: url: 169.254.169.254 is a cloud metadata address",
        "loopback": "spec.notification: url: 127.0.0.1 is a loopback address",
    }
    for name, text in expected.items():
        message = stalled_message(kubectl, namespace, name)
        assert text in message, (name, message)
        assert condition(kubectl.status(namespace, name), "Stalled")["reason"] == "InvalidSpec"
    assert "--allow-local-repos" in stalled_message(kubectl, namespace, "local")
    assert parents(kube_api, namespace) == []
    assert not marker.exists()
    assert receiver.messages == []
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=30)

    # With --allow-local-repos: a local repository is served, the daemon's cache never is,
    # and an App created after one with an absurd interval is served (the watch of all Apps
    # used to fail on `date value out of range` and list again, forever).
    # The late App's own path (two Apps of one namespace may not own one object), committed
    # before the daemon first asks Git: Apps of one repository share its answer for an interval.
    commit(repo, {"late/config.yaml": configmap_yaml("late-config", "green")})
    run_daemon("--watch-namespace", namespace, operator_flags=("--allow-local-repos",))
    kubectl("wait", "--for=condition=Ready", "app/local", "-n", namespace, "--timeout=60s")
    cache = tmp_path / "cache"
    clones = [entry.name for entry in cache.iterdir() if entry.is_dir()]
    assert clones, "the local App's clone is in the cache"
    private = {"cache": cache, "clone": cache / clones[0] / "repo.git", "around": cache.parent}
    for name, location in private.items():
        kubectl("apply", "-f", "-", stdin=tenant_app(namespace, name, repo=location, path="."))
    kubectl("apply", "-f", "-", stdin=tenant_app(namespace, "late", repo=repo, path="late"))
    kubectl("wait", "--for=condition=Ready", "app/late", "-n", namespace, "--timeout=60s")
    for name in ("cache", "clone", "around"):
        message = stalled_message(kubectl, namespace, name)
        assert "a private directory of the daemon" in message, message
        # The status may repeat the path the tenant wrote, never name what else the cache holds.
        shown = json.dumps(kubectl.status(namespace, name)).replace(str(private[name]), "<spec.repo>")
        assert not any(clone in shown for clone in clones), shown
    assert parents(kube_api, namespace) == ["syncer-late", "syncer-local"]
    assert "spec.interval" in stalled_message(kubectl, namespace, "huge")
