"""check_object: what the server's dry-run decides for one object, and what of its answer is read."""

from __future__ import annotations

from syncer.apply.check import check_object
from syncer.apply.options import SyncOptions
from syncer.errors import ClusterError
from syncer.model import Action
from tests.unit.fakes import FakeKube, planned

OPTIONS = SyncOptions(app="shop", namespace="shop")


def test_a_new_objects_prediction_is_not_decoded_and_an_existing_ones_is() -> None:
    """A new object is compared as its manifest, so only whether the server objects matters;
    an existing one is compared with the server's prediction."""
    kube = FakeKube()
    new = planned("ConfigMap/shop/a", Action.CREATED).desired
    existing = planned("ConfigMap/shop/b", Action.CONFIGURED).desired
    assert existing.live is not None
    kube.put(existing.live)

    created, configured = check_object(kube, new, options=OPTIONS), check_object(kube, existing, options=OPTIONS)

    assert not isinstance(created, ClusterError) and not isinstance(configured, ClusterError)
    assert created.action is Action.CREATED
    assert configured.action is Action.CONFIGURED and configured.diff.changed == (".data",)
    assert [(r.path.rpartition("/")[2], r.dry_run, r.decoded) for r in kube.requests if r.method == "PATCH"] == [
        ("a", True, False), ("b", True, True)]
