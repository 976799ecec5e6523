"""Fixtures for end-to-end tests that use syncer's own cluster adapter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from syncer.kube import Kube
from tests.conftest import ClusterAccess
from tests.e2e.apps import connect


@pytest.fixture
def kube(cluster: ClusterAccess) -> Iterator[Kube]:
    """syncer's adapter, as the admin of the test cluster."""
    kube = connect(cluster.kubeconfig, cluster.context)
    yield kube
    kube.close()
