"""The get + update fallback for kinds an API server cannot server-side apply (pure parts)."""

from __future__ import annotations

from typing import Any

import pytest

from syncer.apply.updateapply import fallback_reason, three_way_merge
from syncer.kube import parse_server_version


@pytest.mark.parametrize(
    ("git_version", "version"),
    [("v1.20.2", (1, 20, 2)), ("v1.21.0-eks-4b4f7d", (1, 21, 0)), ("v1.30", (1, 30, 0)), ("unknown", None)],
)
def test_parse_server_version(git_version: str, version: tuple[int, int, int] | None) -> None:
    assert parse_server_version(git_version) == version


@pytest.mark.parametrize(
    ("version", "falls_back"),
    [
        ((1, 17, 9), True),
        ((1, 18, 17), True),
        ((1, 18, 18), False),
        ((1, 19, 9), True),
        ((1, 19, 10), False),
        ((1, 20, 2), True),
        ((1, 20, 5), True),
        ((1, 20, 6), False),
        ((1, 21, 0), False),
        ((1, 32, 1), False),
        (None, False),
    ],
)
def test_apiservices_fall_back_on_the_releases_without_the_fix(
    version: tuple[int, int, int] | None, falls_back: bool
) -> None:
    reason = fallback_reason("APIService.apiregistration.k8s.io", version)
    assert (reason is not None) is falls_back
    if reason is not None:
        assert "cannot server-side apply APIService.apiregistration.k8s.io" in reason


def test_other_kinds_never_fall_back() -> None:
    assert fallback_reason("Deployment.apps", (1, 20, 2)) is None
    assert fallback_reason("APIService.example.com", (1, 20, 2)) is None


@pytest.mark.parametrize(
    ("live", "last_applied", "desired", "merged"),
    [
        pytest.param({"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 1}, {"a": 1}, id="removed-from-git-is-removed"),
        pytest.param({"a": 1, "other": 9}, {"a": 1}, {"a": 2}, {"a": 2, "other": 9}, id="others-fields-stay"),
        pytest.param({"a": 1, "other": 9}, None, {"a": 1}, {"a": 1, "other": 9}, id="no-record-removes-nothing"),
        pytest.param(
            {"spec": {"x": 1, "y": 2, "z": 3}}, {"spec": {"x": 1, "y": 2}}, {"spec": {"x": 5}},
            {"spec": {"x": 5, "z": 3}}, id="nested",
        ),
        pytest.param({"l": [1, 2, 3]}, {"l": [1, 2]}, {"l": [4]}, {"l": [4]}, id="lists-replaced"),
        pytest.param({"m": {"k": 1}}, {"m": {"k": 1}}, {"m": "flat"}, {"m": "flat"}, id="type-change"),
    ],
)
def test_three_way_merge(live: Any, last_applied: Any, desired: Any, merged: Any) -> None:
    assert three_way_merge(live, last_applied, desired) == merged
