"""The one rule for when a tick plans its drift (`syncer.daemon.tick.run_tick`), as a table."""

from __future__ import annotations

from typing import Any

import pytest

from syncer.apply import ChangeSet
from syncer.config import AppConfig
from syncer.daemon import tick
from syncer.daemon.reconciler import SyncAttempt, SyncStep

PLANNED = ("ConfigMap/shop/web",)
OK = SyncAttempt(revision="r", changes=ChangeSet(app="shop", revision="r"), error=None)
FAILED = SyncAttempt(revision="r", changes=None, error="render failed")


class StepOnly:
    """A reconciler that returns one step; it has rendered unless `manifests` is None."""

    def __init__(self, step: SyncStep, *, manifests: list[Any] | None) -> None:
        self.app = AppConfig(name="shop", repo="/srv/git/shop", namespace="shop")
        self.manifests = manifests
        self.rendered_revision = "r"
        self.options = None
        self._step = step
        self.current_attempt = step.attempt
        self.pending = None
        self.hold_status = None
        self.history = None

    def step(self) -> SyncStep:
        return self._step


@pytest.mark.parametrize(("step", "rendered", "cached", "drift"), [
    (SyncStep(ok=True, attempt=OK), True, True, ()),                          # the sync made it match
    (SyncStep(ok=True, attempt=OK, member_changed=True), True, True, ()),
    (SyncStep(ok=False, attempt=FAILED), False, True, None),                  # nothing rendered
    (SyncStep(ok=False, attempt=FAILED), True, True, PLANNED),                # a failed sync may have written
    (SyncStep(ok=True, member_changed=True), True, True, PLANNED),            # a member changed (no selfHeal)
    (SyncStep(ok=True), True, True, None),                                    # settled: the watches saw nothing
    (SyncStep(ok=True), True, False, PLANNED),                                # no watches: nothing would tell
])
def test_when_a_tick_plans_its_drift(
    monkeypatch: pytest.MonkeyPatch, step: SyncStep, rendered: bool, cached: bool, drift: tuple[str, ...] | None
) -> None:
    monkeypatch.setattr(tick, "observe_drift", lambda *args, **kwargs: PLANNED)
    reconciler = StepOnly(step, manifests=[object()] if rendered else None)
    outcome = tick.run_tick(reconciler, kube=None, cache=object() if cached else None,  # type: ignore[arg-type]
                            health=False)
    assert (outcome.ok, outcome.attempt, outcome.drift) == (step.ok, step.attempt, drift)
