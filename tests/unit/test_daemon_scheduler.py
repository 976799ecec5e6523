"""Scheduling: backoff arithmetic, and the real APScheduler running ticks (short intervals)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from syncer.daemon.scheduler import MAX_BACKOFF, AppScheduler, backoff_interval, jitter_for


@pytest.mark.parametrize(
    ("interval", "failures", "expected"),
    [
        (60, 0, 60),
        (60, 1, 120),
        (60, 2, 240),
        (60, 3, 480),
        (60, 4, MAX_BACKOFF),
        (60, 100, MAX_BACKOFF),
        (1, 5, 32),
        (3600, 3, 3600),  # never shorter than the interval, even above the cap
    ],
)
def test_backoff_doubles_up_to_the_cap(interval: float, failures: int, expected: float) -> None:
    assert backoff_interval(interval, failures) == expected


@pytest.mark.parametrize(("period", "jitter"), [(1, 0.1), (60, 6), (3600, 30)])
def test_jitter_is_a_tenth_capped_at_30s(period: float, jitter: float) -> None:
    assert jitter_for(period) == pytest.approx(jitter)


def recorder(runs: list[str], name: str) -> Callable[[], bool]:
    """A tick that notes that it ran and succeeds."""
    def tick() -> bool:
        runs.append(name)
        return True
    return tick


def eventually(condition: Callable[[], bool], *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def scheduler() -> Iterator[AppScheduler]:
    scheduler = AppScheduler(max_workers=4)
    yield scheduler
    scheduler.stop(timeout=5)


def test_each_app_ticks_on_its_interval(scheduler: AppScheduler) -> None:
    runs: list[str] = []
    scheduler.add("fast", interval=0.2, tick=recorder(runs, "fast"))
    scheduler.add("slow", interval=60, tick=recorder(runs, "slow"))
    scheduler.start()
    eventually(lambda: runs.count("fast") >= 3)
    assert runs.count("slow") == 1  # the first run is at start, the next in a minute


def test_a_blocked_app_does_not_delay_another(scheduler: AppScheduler) -> None:
    release = threading.Event()
    runs: list[str] = []
    scheduler.add("stuck", interval=0.1, tick=lambda: release.wait(10))
    scheduler.add("ok", interval=0.1, tick=recorder(runs, "ok"))
    scheduler.start()
    eventually(lambda: len(runs) >= 3)
    release.set()


def test_failures_back_off_and_success_recovers(scheduler: AppScheduler) -> None:
    results = [False, False, True]
    calls: list[float] = []

    def tick() -> bool:
        calls.append(time.monotonic())
        return results[min(len(calls) - 1, len(results) - 1)]

    scheduler.add("app", interval=0.2, tick=tick)
    scheduler.start()
    eventually(lambda: scheduler.failures("app") == 2)
    assert scheduler.period("app") == pytest.approx(0.8)
    eventually(lambda: len(calls) >= 3, timeout=5)
    eventually(lambda: scheduler.failures("app") == 0)
    assert scheduler.period("app") == pytest.approx(0.2)
    # The second retry waited for the doubled period (0.4s, plus up to 10% jitter).
    assert calls[2] - calls[1] >= 0.75


def test_trigger_runs_at_once(scheduler: AppScheduler) -> None:
    runs: list[float] = []

    def tick() -> bool:
        runs.append(time.monotonic())
        return True

    scheduler.add("app", interval=3600, tick=tick)
    scheduler.start()
    eventually(lambda: len(runs) == 1)
    triggered = time.monotonic()
    scheduler.trigger("app")
    # "at once" against an hour's interval (a trigger that raced the first tick was once lost)
    eventually(lambda: len(runs) == 2, timeout=5)
    assert runs[1] - triggered < 5


def test_trigger_during_a_tick_runs_again_right_after(scheduler: AppScheduler) -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def tick() -> bool:
        runs.append(len(runs))
        if len(runs) == 1:
            started.set()
            release.wait(5)
        return True

    scheduler.add("app", interval=3600, tick=tick)
    scheduler.start()
    assert started.wait(5)
    scheduler.trigger("app")  # arrives while the first tick is running
    release.set()
    eventually(lambda: len(runs) == 2, timeout=3)


def test_stop_waits_for_a_running_tick_and_starts_no_more() -> None:
    scheduler = AppScheduler(max_workers=2)
    started = threading.Event()
    finished: list[bool] = []

    def tick() -> bool:
        started.set()
        time.sleep(0.5)
        finished.append(True)
        return True

    scheduler.add("app", interval=0.1, tick=tick)
    scheduler.start()
    assert started.wait(5)
    assert scheduler.stop(timeout=5) == []
    assert finished == [True]
    time.sleep(0.3)
    assert finished == [True]


def test_stop_reports_ticks_still_running_after_the_timeout() -> None:
    scheduler = AppScheduler(max_workers=2)
    started, release = threading.Event(), threading.Event()
    def tick() -> bool:
        started.set()
        return release.wait(5)

    scheduler.add("slow", interval=60, tick=tick)
    scheduler.start()
    assert started.wait(5)
    assert scheduler.stop(timeout=0.2) == ["slow"]
    release.set()
