"""The daemon's render workers (`syncer.sources.renderpool`): the same result as rendering in
process, errors that cross the pipe intact, and workers that go away with their memory."""

from __future__ import annotations

import importlib
import os
import signal
import stat
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncer.errors import RenderError, RenderTooLarge, SourceError
from syncer.sources import RenderLimits, Snapshot, render
render_module = importlib.import_module("syncer.sources.render")
from syncer.sources.renderpool import RenderPool

CONFIGMAP = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm{n}\ndata:\n  key: value\n"
SLACK = 60.0


def snapshot_of(root: Path) -> Snapshot:
    return Snapshot(revision="working-tree", root=root, repo=str(root), tree_of=lambda path: None)


def eventually(condition: object, *, what: str) -> None:
    deadline = time.monotonic() + SLACK
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            return stat_file.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "apps.yaml").write_text("".join(CONFIGMAP.format(n=n) for n in range(5)))
    return root


@pytest.fixture
def pool() -> Iterator[RenderPool]:
    workers = RenderPool(workers=2, limits=RenderLimits(max_objects=10))
    yield workers
    workers.close()


def test_a_worker_renders_what_the_daemon_would(repo: Path, pool: RenderPool,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    expected = render(snapshot_of(repo), limits=pool.limits)

    def not_here(*args: object, **kwargs: object) -> None:
        raise AssertionError("rendered in the daemon's process")

    monkeypatch.setattr(render_module, "load_yaml", not_here)
    assert pool.render(snapshot_of(repo), ".", namespace="default") == expected


def test_errors_cross_the_pipe_as_render_raises_them(repo: Path, pool: RenderPool) -> None:
    (repo / "more.yaml").write_text("".join(CONFIGMAP.format(n=n) for n in range(5, 20)))
    with pytest.raises(RenderTooLarge) as too_large:
        pool.render(snapshot_of(repo), ".", namespace="default")
    assert (too_large.value.bound, too_large.value.limit) == ("objects", 10)
    assert str(too_large.value).startswith("more.yaml:37: more than 10 objects;")

    (repo / "more.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n")
    with pytest.raises(RenderError) as invalid:
        pool.render(snapshot_of(repo), ".", namespace="default")
    assert not isinstance(invalid.value, RenderTooLarge)
    assert [problem.where for problem in invalid.value.problems] == ["more.yaml:4"]

    with pytest.raises(SourceError, match="path 'missing' not found"):
        pool.render(snapshot_of(repo), "missing", namespace="default")


def test_a_worker_that_grew_exits_and_is_replaced(repo: Path) -> None:
    keeping = RenderPool(workers=1)
    recycling = RenderPool(workers=1, recycle_bytes=0)
    try:
        (kept,) = keeping.pids()
        (first,) = recycling.pids()
        for _ in range(2):
            assert keeping.render(snapshot_of(repo), ".", namespace="n")
            assert recycling.render(snapshot_of(repo), ".", namespace="n")
        assert keeping.pids() == [kept] and keeping.started == 1
        assert recycling.started == 3
        assert first not in recycling.pids()
        eventually(lambda: not alive(first), what="the grown worker to exit")
    finally:
        keeping.close()
        recycling.close()


def hanging_kustomize(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `kustomize` on PATH that writes its pid to a file and sleeps."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pid_file = tmp_path / "kustomize.pid"
    script = bin_dir / "kustomize"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo $$ > {pid_file}
        exec sleep 300
        """))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return pid_file


def test_a_render_that_takes_too_long_is_stopped_with_its_kustomize(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pid_file = hanging_kustomize(tmp_path, monkeypatch)
    (repo / "stuck").mkdir()
    (repo / "stuck" / "kustomization.yaml").write_text("resources: []\n")
    pool = RenderPool(workers=1, timeout=3.0)
    try:
        with pytest.raises(RenderError, match="the render took longer than 3s; it was stopped"):
            pool.render(snapshot_of(repo), "stuck", namespace="n")
        kustomize = int(pid_file.read_text())
        eventually(lambda: not alive(kustomize), what="the stuck kustomize to be killed")
        assert pool.render(snapshot_of(repo), "apps.yaml", namespace="n")
    finally:
        pool.close()


def test_a_worker_killed_mid_render_fails_that_render_only(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the kernel's OOM killer would: the render fails, the daemon and the pool go on."""
    pid_file = hanging_kustomize(tmp_path, monkeypatch)
    (repo / "stuck").mkdir()
    (repo / "stuck" / "kustomization.yaml").write_text("resources: []\n")
    pool = RenderPool(workers=1)
    try:
        (worker,) = pool.pids()
        errors: list[BaseException] = []

        def render_stuck() -> None:
            try:
                pool.render(snapshot_of(repo), "stuck", namespace="n")
            except BaseException as error:  # noqa: BLE001 - kept for the assertion
                errors.append(error)

        thread = threading.Thread(target=render_stuck)
        thread.start()
        eventually(pid_file.exists, what="the render to start kustomize")
        os.kill(worker, signal.SIGKILL)
        thread.join(SLACK)
        assert [str(error) for error in errors] == [
            "invalid manifests (1 problem):\n  stuck: the render worker was killed by signal 9 (out of memory?) "
            "while rendering it"]
        assert len(pool.render(snapshot_of(repo), "apps.yaml", namespace="n")) == 5
    finally:
        pool.close()


def test_renders_beyond_the_workers_wait_for_one(repo: Path, pool: RenderPool) -> None:
    results: list[int] = []

    def one() -> None:
        results.append(len(pool.render(snapshot_of(repo), ".", namespace="n")))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SLACK)
    assert results == [5] * 6
    assert len(pool.pids()) == 2


def test_closing_stops_the_workers(repo: Path) -> None:
    pool = RenderPool(workers=2)
    pids = pool.pids()
    pool.close()
    for pid in pids:
        eventually(lambda pid=pid: not alive(pid), what=f"worker {pid} to exit")  # type: ignore[misc]
