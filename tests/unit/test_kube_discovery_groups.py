"""The API groups a scan of every kind reads: once per burst of scans (every new App's
inventory recovery scans every kind), and again once `REFRESH_SECONDS` have passed, so that a
group created since is scanned too."""

from __future__ import annotations

from typing import Any

import pytest

from syncer.kube import discovery
from syncer.kube.discovery import REFRESH_SECONDS, Discovery


class Server:
    def __init__(self) -> None:
        self.groups = ["apps"]
        self.paths: list[str] = []

    def get(self, path: str, *, subject: str, retry: bool) -> Any:
        self.paths.append(path)
        if path == "/apis":
            return {"groups": [{"name": g, "preferredVersion": {"groupVersion": f"{g}/v1"},
                                "versions": [{"groupVersion": f"{g}/v1"}]} for g in self.groups]}
        group = path.split("/")[2] if path.startswith("/apis/") else ""
        kind = {"apps": "Deployment", "": "ConfigMap"}.get(group, "Widget")
        return {"resources": [{"name": kind.lower() + "s", "kind": kind, "namespaced": True, "verbs": ["list"]}]}


def test_a_burst_of_scans_reads_the_groups_once_and_a_later_scan_sees_a_new_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(discovery.time, "monotonic", lambda: now[0])
    server = Server()
    found = Discovery(server.get)
    for _ in range(5):
        assert sorted(r.kind for r in found.listable_resources()[0]) == ["ConfigMap", "Deployment"]
    assert server.paths.count("/apis") == 1
    server.groups.append("example.com")
    now[0] += REFRESH_SECONDS
    assert sorted(r.kind for r in found.listable_resources()[0]) == ["ConfigMap", "Deployment", "Widget"]
    assert server.paths.count("/apis") == 2
    found.forget()
    found.listable_resources()
    assert server.paths.count("/apis") == 3
