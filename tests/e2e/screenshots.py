"""The dashboard's screenshots in docs/ (README, "Dashboard"): `scripts/screenshots` runs this
file (not part of the suite) with SYNCER_SCREENSHOTS set to the folder to write into. Two
Apps, one healthy (synced twice, for the comparison of its two history entries) and one
whose last commit is broken, on a desktop and a phone width."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_apps import Kubectl, app_yaml, installed, run_daemon  # noqa: F401 - fixtures
from tests.e2e.test_daemon import commit, configmap_yaml, eventually, free_port
from tests.e2e.test_daemon import repo  # noqa: F401 - the fixture
from tests.e2e.test_dashboard import NEW_SECRET_VALUE, SECRET_VALUE, SECRET_YAML, browser  # noqa: F401 - the fixture

SIZES = {"": {"width": 1280, "height": 800}, "-phone": {"width": 390, "height": 844}}


def test_screenshots(installed: Kubectl, repo: Path, namespace: str, browser: Any,
                     run_daemon: Callable[..., subprocess.Popen[str]]) -> None:
    folder = os.environ.get("SYNCER_SCREENSHOTS")
    if not folder:
        pytest.skip("SYNCER_SCREENSHOTS is not set: run scripts/screenshots")
    kubectl = installed
    commit(repo, {"shop/secret.yaml": SECRET_YAML, "billing/config.yaml": configmap_yaml("billing", "blue")})
    port = free_port()
    run_daemon("--watch-namespace", namespace, "--ui", "--ui-listen", f"127.0.0.1:{port}")
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "shop", repo=repo, path="shop"))
    kubectl("apply", "-f", "-", stdin=app_yaml(namespace, "billing", repo=repo, path="billing"))
    kubectl("wait", "--for=condition=Ready", "app/shop", "app/billing", "-n", namespace, "--timeout=60s")
    commit(repo, {"billing/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n"}, "broken")
    eventually(lambda: kubectl.status(namespace, "billing").get("lastSync", {}).get("result") == "Failed",
               timeout=60, what="billing to fail")
    green = commit(repo, {"shop/config.yaml": configmap_yaml("web-config", "green"),
                          "shop/secret.yaml": SECRET_YAML.replace(SECRET_VALUE, NEW_SECRET_VALUE)}, "green")
    eventually(lambda: kubectl.status(namespace, "shop").get("lastAppliedRevision") == green,
               timeout=60, what="shop to sync the green commit")
    base = f"http://127.0.0.1:{port}"
    for suffix, size in SIZES.items():
        context = browser.new_context(viewport=size, device_scale_factor=1)
        page = context.new_page()
        page.goto(base + "/")
        page.screenshot(path=str(Path(folder) / f"dashboard-apps{suffix}.png"), full_page=True)
        page.goto(f"{base}/apps/{namespace}/shop")
        page.locator("table.objects").wait_for()
        page.screenshot(path=str(Path(folder) / f"dashboard-app{suffix}.png"), full_page=True)
        page.get_by_role("link", name=f"Compare {green[:12]} with the entry before it").click()
        page.locator("#compare-summary").wait_for()
        page.screenshot(path=str(Path(folder) / f"dashboard-compare{suffix}.png"), full_page=True)
        context.close()
