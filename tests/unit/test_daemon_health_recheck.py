"""An app whose objects are still progressing is looked at again soon, backing off, instead of
at its next interval (a rollout ends with status writes, which start no sync)."""

from __future__ import annotations

import threading
import time

import pytest

import syncer.daemon.runtime as runtime
from syncer.daemon.appstatus import AppHealth
from syncer.daemon.metrics import Metrics
from syncer.daemon.runtime import Daemon
from syncer.daemon.tick import TickOutcome
from syncer.model import AppId


class Triggers:
    def __init__(self) -> None:
        self.apps: list[str] = []
        self.seen = threading.Event()

    def trigger(self, app: str) -> None:
        self.apps.append(app)
        self.seen.set()


class Source:
    """Reports the app's health as `states` says, one tick after the other."""

    def __init__(self, *states: str) -> None:
        self.states = list(states)

    def tick(self, app: str) -> TickOutcome:
        return TickOutcome(app=AppId.of_key(app), ok=True, health=AppHealth(self.states.pop(0)))  # type: ignore[arg-type]


class Everything:
    def owns(self, app: str) -> bool:
        return True


def bare_daemon(scheduler: Triggers, source: Source) -> Daemon:
    daemon = Daemon.__new__(Daemon)
    daemon._drift_lock = threading.Lock()
    daemon._rechecks = {}
    daemon._stopping = False
    daemon.drift = {}
    daemon.scheduler = scheduler  # type: ignore[assignment]
    daemon.source = source  # type: ignore[assignment]
    daemon.ownership = Everything()  # type: ignore[assignment]
    daemon.metrics = Metrics(())
    return daemon


def test_a_progressing_app_is_looked_at_again_with_backoff_until_it_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    real_timer = threading.Timer

    def timer(delay: float, function: object, args: tuple[str]) -> threading.Timer:
        delays.append(delay)
        return real_timer(0.0, function, args=args)  # type: ignore[arg-type]

    monkeypatch.setattr(runtime.threading, "Timer", timer)
    scheduler = Triggers()
    daemon = bare_daemon(scheduler, Source(*["Progressing"] * 5, "Missing", "Healthy", "Progressing"))
    for _ in range(6):
        daemon._tick("team-a/shop")
    deadline = time.monotonic() + 10
    while len(scheduler.apps) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert scheduler.apps == ["team-a/shop"] * 6
    assert delays == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    daemon._tick("team-a/shop")
    assert len(delays) == 6
    daemon._tick("team-a/shop")
    assert delays[-1] == 5.0


def test_a_healthy_app_waits_for_its_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.threading, "Timer", lambda *a, **k: pytest.fail("a healthy app was re-checked"))
    daemon = bare_daemon(Triggers(), Source("Healthy", "Degraded"))
    daemon._tick("team-a/shop")
    daemon._tick("team-a/shop")
