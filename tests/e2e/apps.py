"""Helpers for end-to-end tests: write an app's manifests into a folder, render them with
syncer's own renderer, and reach the test cluster through syncer's own adapter."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from syncer.apply import SyncOptions
from syncer.kube import ClientOptions, Kube
from syncer.model import Manifest
from syncer.sources import open_source
from syncer.sources.render import render


def write_app(root: Path, files: dict[str, str]) -> Path:
    """Replace the folder's YAML files with `files` (name -> YAML text, dedented)."""
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("*.yaml"):
        old.unlink()
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    return root


def render_app(root: Path, *, namespace: str) -> list[Manifest]:
    return render(open_source(str(root)).fetch(), ".", namespace=namespace)


def connect(kubeconfig: Path, context: str) -> Kube:
    return Kube.connect(ClientOptions(kubeconfig=str(kubeconfig), context=context))


def options(app: str, namespace: str, **overrides: Any) -> SyncOptions:
    settings: dict[str, Any] = {"lock_timeout": 5, "timeout": 60, **overrides}
    return SyncOptions(app=app, namespace=namespace, **settings)


# One stored Event, as the core group declares it and as events.k8s.io/v1 does: the server
# serves every Event under both (as 1.20 served Ingresses under three group-versions). The
# events.k8s.io/v1 fields each have their core twin (note/message, regarding/involvedObject,
# reportingController/reportingComponent), and that API refuses to change any of them, so
# both documents give every one the same value.
_EVENT_TIME = "2026-01-01T00:00:00.000000Z"


def core_event(name: str, namespace: str) -> str:
    return f"""
apiVersion: v1
kind: Event
metadata: {{name: {name}}}
involvedObject: {{apiVersion: v1, kind: ConfigMap, name: web, namespace: {namespace}}}
eventTime: "{_EVENT_TIME}"
action: Release
reason: Released
message: web was released
type: Normal
reportingComponent: syncer.dev/tests
reportingInstance: tests
"""


def events_event(name: str, namespace: str) -> str:
    return f"""
apiVersion: events.k8s.io/v1
kind: Event
metadata: {{name: {name}}}
regarding: {{apiVersion: v1, kind: ConfigMap, name: web, namespace: {namespace}}}
eventTime: "{_EVENT_TIME}"
action: Release
reason: Released
note: web was released
type: Normal
reportingController: syncer.dev/tests
reportingInstance: tests
"""


def configmap(api: client.ApiClient, namespace: str, name: str) -> Any | None:
    try:
        return client.CoreV1Api(api).read_namespaced_config_map(name, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


SLACK = 60.0
"""Seconds allowed, on top of what the protocol under test sets (an interval, a lease), for
work the code does before a test can see its result: a sync, a takeover, a controller's
answer. The README's test command runs on loaded 2-core machines, where a sync that takes a
fraction of a second alone can take many seconds. A deadline only bounds how long a failing
test waits; a passing one waits only as long as the work takes."""


RESTRICTED_USER = "syncer-restricted"
"""The unprivileged user of the local control plane (context `restricted`)."""


def grant_restricted(api: client.ApiClient, namespace: str, *, role: str, rules: list[dict[str, Any]]) -> None:
    """Give the unprivileged user exactly these RBAC rules in the namespace."""
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": role}, "rules": rules})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "User", "name": RESTRICTED_USER, "apiGroup": "rbac.authorization.k8s.io"}],
    })


def eventually(condition: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.1) -> Any:
    """The first truthy value of `condition()`, polled until `timeout`; fails the test after."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def signal_at_write(signal_name: str) -> str:
    """A `python -c` program that runs syncer's command line and sends itself `signal_name`
    (SIGSTOP: frozen; SIGKILL: killed) right after the lock check of its n-th write under the
    app's lock (n: `SYNCER_TEST_STOP_AT_WRITE`), before that write is sent."""
    return f"""
import os, runpy, signal, sys
from syncer.kube import client

chosen = int(os.environ["SYNCER_TEST_STOP_AT_WRITE"])
checks = []
guarded = client.Kube.guarded

def signalling_after(check):
    def checked():
        check()
        checks.append(1)
        if len(checks) == chosen:
            os.kill(os.getpid(), signal.{signal_name})
    return checked

client.Kube.guarded = lambda self, check: guarded(self, signalling_after(check))
sys.argv[0] = "syncer"
runpy.run_module("syncer", run_name="__main__", alter_sys=True)
"""
