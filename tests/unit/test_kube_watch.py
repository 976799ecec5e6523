"""The reflector (syncer.kube.watch) over a scripted fake client: when it lists, when it resumes,
what the handler is told, how it backs off. No server: each case is a script of answers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from syncer.errors import ClusterError, Forbidden, Unavailable
from syncer.kube import Resource
from syncer.kube.watch import Reflector
from syncer.model import Object

CONFIGMAPS = Resource(group="", version="v1", kind="ConfigMap", plural="configmaps", namespaced=True,
                      verbs=frozenset({"list", "watch"}))


def cm(name: str, version: str) -> Object:
    return {"metadata": {"name": name, "namespace": "a", "resourceVersion": version}}


def event(kind: str, obj: Object) -> Object:
    return {"type": kind, "object": obj}


@dataclass
class Watch:
    """One scripted watch: its events, then how it ends (None: the server's timeout)."""

    events: list[Object] = field(default_factory=list)
    ends_with: ClusterError | None = None
    early: bool = False
    """The server ends it before its timeout."""


class FakeKube:
    """Answers lists and watches from a script; records what was asked. After the script the
    reflector is stopped."""

    def __init__(self, script: list[Any], stop: threading.Event) -> None:
        self.script = list(script)
        self.stop = stop
        self.asked: list[str] = []
        self.now = 0.0

    def _next(self) -> Any:
        if not self.script:
            self.stop.set()
            raise Unavailable("ConfigMap", "script over")
        return self.script.pop(0)

    def list_versioned(self, resource: Resource, *, namespace: str | None = None,
                       label_selector: str | None = None) -> tuple[list[Object], str]:
        self.asked.append("list")
        answer = self._next()
        if isinstance(answer, ClusterError):
            raise answer
        objects, version = answer
        return objects, version

    def watch(self, resource: Resource, *, namespace: str | None = None, resource_version: str,
              label_selector: str | None = None, timeout_seconds: int = 300) -> Iterator[Object]:
        self.asked.append(f"watch@{resource_version}")
        answer = self._next()
        if isinstance(answer, ClusterError):
            raise answer
        assert isinstance(answer, Watch)
        yield from answer.events
        if answer.ends_with is not None:
            raise answer.ends_with
        if not answer.early:
            self.now += timeout_seconds


@dataclass
class Recorder:
    seen: list[str] = field(default_factory=list)
    keep_going: bool = True

    def listed(self, objects: list[Object]) -> None:
        self.seen.append("listed " + ",".join(o["metadata"]["name"] for o in objects))

    def event(self, kind: str, obj: Object) -> None:
        self.seen.append(f"{kind} {obj['metadata'].get('name', '')}".rstrip())

    def failed(self, error: ClusterError) -> bool:
        self.seen.append(f"failed {error.status}")
        return self.keep_going


def run(script: list[Any], *, handler: Recorder | None = None, monkeypatch: pytest.MonkeyPatch,
        ) -> tuple[FakeKube, Recorder, list[float]]:
    stop = threading.Event()
    kube = FakeKube(script, stop)
    waits: list[float] = []
    monkeypatch.setattr("syncer.kube.watch.time.monotonic", lambda: kube.now)
    real_wait = stop.wait

    def wait(seconds: float | None = None) -> bool:
        waits.append(float(seconds or 0))
        return real_wait(0)

    monkeypatch.setattr(stop, "wait", wait)
    recorder = handler or Recorder()
    reflector = Reflector(kube, CONFIGMAPS, handler=recorder, stop=stop, retry_seconds=2, max_retry_seconds=30)
    reflector.run()
    return kube, recorder, waits


def test_lists_then_watches_from_the_lists_version_and_resumes_after_a_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    kube, seen, _ = run([
        ([cm("x", "5")], "10"),
        Watch([event("ADDED", cm("y", "11")), event("MODIFIED", cm("x", "12"))]),
        Watch([event("BOOKMARK", {"metadata": {"resourceVersion": "20"}})]),
        Watch([event("DELETED", cm("y", "21"))]),
    ], monkeypatch=monkeypatch)
    assert kube.asked[:4] == ["list", "watch@10", "watch@12", "watch@20"]
    assert seen.seen[:5] == ["listed x", "ADDED y", "MODIFIED x", "BOOKMARK", "DELETED y"]


@pytest.mark.parametrize("ending", [
    pytest.param(Watch([event("ERROR", {"code": 410, "message": "too old resource version"})]), id="ERROR event"),
    pytest.param(Watch(ends_with=ClusterError("ConfigMap", "Gone", status=410)), id="HTTP 410"),
    pytest.param(Watch([event("ADDED", cm("y", "11"))], early=True), id="ended early by the server"),
])
def test_lists_again_instead_of_resuming(ending: Watch, monkeypatch: pytest.MonkeyPatch) -> None:
    kube, seen, _ = run([([cm("x", "5")], "10"), ending, ([cm("x", "5")], "30"), Watch()],
                        monkeypatch=monkeypatch)
    assert kube.asked[:4] == ["list", "watch@10", "list", "watch@30"]
    assert seen.seen.count("listed x") == 2


def test_a_broken_watch_resumes_from_the_last_version_after_a_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    kube, seen, waits = run([
        ([], "10"),
        Watch([event("ADDED", cm("y", "11"))], ends_with=Unavailable("ConfigMap", "connection reset")),
        Unavailable("ConfigMap", "refused"),
        Unavailable("ConfigMap", "refused"),
        Watch(),
    ], monkeypatch=monkeypatch)
    assert kube.asked[:5] == ["list", "watch@10", "watch@11", "watch@11", "watch@11"]
    assert waits[:3] == [2, 4, 8]
    assert "failed 0" in seen.seen


def test_backoff_is_capped_and_starts_over_after_a_watch_that_worked(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = Unavailable("ConfigMap", "refused")
    _, _, waits = run([refused] * 6 + [([], "1"), Watch(), refused], monkeypatch=monkeypatch)
    assert waits[:6] == [2, 4, 8, 16, 30, 30]
    assert waits[6] == 2


def test_the_handler_may_stop_it(monkeypatch: pytest.MonkeyPatch) -> None:
    kube, seen, _ = run([Forbidden("ConfigMap", "no", status=403), ([], "1")],
                        handler=Recorder(keep_going=False), monkeypatch=monkeypatch)
    assert kube.asked == ["list"]
    assert seen.seen == ["failed 403"]


def test_a_handler_that_raises_gets_a_fresh_list(monkeypatch: pytest.MonkeyPatch) -> None:
    class Clumsy(Recorder):
        def event(self, kind: str, obj: Object) -> None:
            super().event(kind, obj)
            if kind == "MODIFIED":
                raise KeyError("bookkeeping bug")

    kube, seen, _ = run([([], "1"), Watch([event("MODIFIED", cm("x", "2"))]), ([cm("x", "2")], "3"), Watch()],
                        handler=Clumsy(), monkeypatch=monkeypatch)
    assert kube.asked[:4] == ["list", "watch@1", "list", "watch@3"]
    assert seen.seen[:3] == ["listed ", "MODIFIED x", "listed x"]


def test_relists_when_the_safety_interval_is_due(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    kube = FakeKube([([], "1"), Watch(), Watch(), ([], "9"), Watch()], stop)
    monkeypatch.setattr("syncer.kube.watch.time.monotonic", lambda: kube.now)
    Reflector(kube, CONFIGMAPS, handler=Recorder(), stop=stop, relist_interval=500, watch_seconds=300).run()
    # 300 s, then the remaining ~200 s, then the re-list.
    assert kube.asked[:5] == ["list", "watch@1", "watch@1", "list", "watch@9"]
