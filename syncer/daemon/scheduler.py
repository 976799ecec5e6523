"""When each app's tick runs: APScheduler interval jobs, one per app, with backoff on failure.

Each app is its own job in a thread pool, so a slow or failing app never delays another.
`max_instances=1` keeps two ticks of one app from overlapping and `coalesce=True` turns a
backlog of missed runs into one. A failing app's interval grows exponentially (capped), and
snaps back after its first success. `trigger()` (webhooks, gaining leadership) runs an app at
once; if its tick is already running, one more run follows right after it, so a push that
arrives mid-tick is never lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

MAX_BACKOFF = 600.0
"""A failing app is retried at least every 10 minutes (or its interval, when longer)."""
JITTER_RATIO = 0.1
MAX_JITTER = 30.0

Tick = Callable[[], bool]
"""Runs one tick of an app; returns False when it failed (to back off)."""


def backoff_interval(interval: float, failures: int, *, cap: float = MAX_BACKOFF) -> float:
    """The period after `failures` consecutive failures: interval * 2^failures, capped at
    `cap` but never shorter than the interval itself."""
    if failures <= 0:
        return interval
    return float(max(interval, min(cap, interval * 2 ** min(failures, 32))))


def jitter_for(period: float) -> float:
    """Up to 10% of the period (at most 30s), so apps and replicas started together spread
    their Git and API requests instead of firing in lockstep."""
    return min(period * JITTER_RATIO, MAX_JITTER)


@dataclass
class _AppJob:
    tick: Tick
    interval: float
    period: float
    failures: int = 0
    started: int = 0
    finished: int = 0
    """Ticks started, and ticks APScheduler has counted as finished (a new one may start)."""
    active: bool = False
    """While the tick's code runs (what shutdown waits for)."""
    rerun: bool = False

    @property
    def running(self) -> bool:
        return self.started > self.finished


class AppScheduler:
    """One interval job per app; see the module docstring."""

    def __init__(self, *, max_workers: int = 16) -> None:
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=max_workers)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone=timezone.utc,
        )
        self._jobs: dict[str, _AppJob] = {}
        self._lock = threading.Condition()
        self._stopping = False
        self._scheduler.add_listener(self._finished, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    def add(self, app: str, *, interval: float, tick: Tick, first_run_in: float = 0.0) -> None:
        """Schedule an app; its first tick runs after `first_run_in` seconds plus jitter."""
        self._jobs[app] = _AppJob(tick=tick, interval=interval, period=interval)
        first = datetime.now(timezone.utc) + timedelta(seconds=first_run_in)
        self._scheduler.add_job(
            self._run, trigger=self._trigger(interval), args=(app,), id=app, name=f"sync {app}",
            next_run_time=first,
        )

    def remove(self, app: str) -> None:
        """Stop scheduling an app (its App was deleted); a tick in progress still finishes."""
        with self._lock:
            self._jobs.pop(app, None)
        try:
            self._scheduler.remove_job(app)
        except JobLookupError:
            pass

    def start(self) -> None:
        self._scheduler.start()

    @property
    def running(self) -> bool:
        """True from start() until stop(): the scheduler's thread is alive and dispatching."""
        return bool(self._scheduler.running) and not self._stopping

    def failures(self, app: str) -> int:
        with self._lock:
            return self._jobs[app].failures

    def period(self, app: str) -> float:
        with self._lock:
            return self._jobs[app].period

    def trigger(self, app: str) -> None:
        """Run the app's tick now (or right after the one in progress)."""
        with self._lock:
            if self._stopping:
                return
            job = self._jobs.get(app)
            if job is None:
                return
            if job.running:
                job.rerun = True
                return
        self._run_soon(app)

    def trigger_all(self, *, where: Callable[[str], bool] = lambda app: True) -> None:
        """Trigger every app (or those `where` is true for: the apps a replica just gained)."""
        for app in list(self._jobs):
            if where(app):
                self.trigger(app)

    @property
    def apps(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def running_apps(self) -> list[str]:
        """The apps whose tick is running now."""
        with self._lock:
            return [app for app, job in self._jobs.items() if job.active]

    def stop(self, *, timeout: float) -> list[str]:
        """Stop scheduling; wait up to `timeout` seconds for running ticks to finish. Returns
        the apps whose tick is still running (empty when all finished)."""
        with self._lock:
            self._stopping = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        with self._lock:
            self._lock.wait_for(lambda: not any(j.active for j in self._jobs.values()), timeout=timeout)
            return sorted(app for app, job in self._jobs.items() if job.active)

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _trigger(period: float) -> IntervalTrigger:
        return IntervalTrigger(seconds=period, jitter=jitter_for(period), timezone=timezone.utc)

    def _run_soon(self, app: str) -> None:
        """Make the job due now, from a thread of its own: when a tick finishes very fast,
        APScheduler calls `_finished` on its own thread, inside `_process_jobs`, which holds
        the (re-entrant) job store lock and sets the job's next run time right after, which
        would silently overwrite a change made here. Another thread waits for that lock."""
        threading.Thread(target=self._make_due, args=(app,), name=f"trigger-{app}", daemon=True).start()

    def _make_due(self, app: str) -> None:
        try:
            self._scheduler.modify_job(app, next_run_time=datetime.now(timezone.utc))
        except JobLookupError:  # shut down meanwhile
            pass

    def _run(self, app: str) -> bool:
        """The job: one tick. Its result reaches `_finished` as the event's return value."""
        with self._lock:
            job = self._jobs.get(app)
            if job is None or self._stopping:
                return True
            job.started += 1
            job.active = True
            job.rerun = False
        try:
            return job.tick()
        except Exception:  # a tick reports its own failures; this is a bug, keep the job alive
            log.exception("app %s: unexpected error in its tick", app)
            return False
        finally:
            with self._lock:
                job.active = False
                self._lock.notify_all()

    def _finished(self, event: JobExecutionEvent) -> None:
        """After APScheduler counted the run as finished (so a new run may start): back off or
        recover, and run again at once when a trigger arrived meanwhile."""
        job = self._jobs.get(event.job_id)
        if job is None:
            return
        ok = event.code == EVENT_JOB_EXECUTED and event.retval is True
        with self._lock:
            if job.finished >= job.started:
                return
            job.finished += 1
            job.failures = 0 if ok else job.failures + 1
            period = backoff_interval(job.interval, job.failures)
            changed, job.period = period != job.period, period
            rerun, job.rerun = job.rerun, False
            if self._stopping:
                return
        if changed:
            if job.failures:
                log.info("app %s: %d failure(s) in a row; next try in %.0fs", event.job_id, job.failures, period)
            try:
                self._scheduler.reschedule_job(event.job_id, trigger=self._trigger(period))
            except JobLookupError:
                return
        if rerun:
            self._run_soon(event.job_id)
