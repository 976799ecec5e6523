"""The API server's release and what it serves, for tests whose behaviour differs between the
releases syncer supports (1.20, the oldest, and the current one): each such test skips on the
other release with a reason that names what is missing."""

from __future__ import annotations

import pytest

from syncer.kube import Kube


def release(kube: Kube) -> tuple[int, int, int]:
    version = kube.server_version()
    assert version is not None, "the test API server does not say its version"
    return version


def named(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


def needs(kube: Kube, at_least: tuple[int, int], why: str) -> tuple[int, int, int]:
    """Skip unless the server is `at_least` (major, minor); the server's release."""
    version = release(kube)
    if version[:2] < at_least:
        pytest.skip(f"needs Kubernetes {at_least[0]}.{at_least[1]}+ ({why}); this server is {named(version)}")
    return version


def before(kube: Kube, below: tuple[int, int], why: str) -> tuple[int, int, int]:
    """Skip unless the server is older than `below` (major, minor); the server's release."""
    version = release(kube)
    if version[:2] >= below:
        pytest.skip(f"about Kubernetes before {below[0]}.{below[1]} ({why}); this server is {named(version)}")
    return version


def skip_unless_served(served: frozenset[str], *api_versions: str) -> None:
    """Skips the calling test, naming the versions, on a server that does not serve them all
    (Kubernetes 1.22 stopped serving Ingress in extensions/v1beta1 and networking.k8s.io/v1beta1)."""
    missing = [version for version in api_versions if version not in served]
    if missing:
        pytest.skip(f"this server does not serve {', '.join(missing)} (Kubernetes 1.20 does: "
                    "the oldest leg of scripts/test runs this test)")
