"""Rendering where its memory goes back to the system: a small pool of worker processes.

    pool = RenderPool(workers=2, limits=RenderLimits())
    manifests = pool.render(snapshot, "deploy/prod", namespace="shop")   # from any thread
    pool.close()

Parsed YAML takes several times its size in memory, and CPython seldom hands freed memory back
to the system (its arenas fragment): a daemon that parses a large render itself keeps the peak
for the rest of its life, whatever it frees. So the daemon renders in worker processes
(`python -m syncer.sources.renderpool`, started ahead of need; not forked from the daemon,
whose threads and locks a fork would copy). A worker gets a snapshot's root and the path,
renders exactly as `render` does (with the same bounds, counted while it reads), and answers
with plain data through its pipe: the manifests (in chunks of about 4 MiB, so the daemon never
holds a whole render twice, as bytes and as objects), or the problems. After a render that left it
more than `recycle_bytes` larger than it started, it exits, and its memory goes back to the
system with it; the parent then only holds the manifests it keeps.

No resource limit (RLIMIT_AS, RLIMIT_DATA) is set on a worker: Kustomize, a Go program, reserves
far more address space than it uses and would fail under one. The bounds that keep a render
small are the render's own (`RenderLimits`). Should the kernel still have to kill a process for
memory, a worker volunteers (its `oom_score_adj` is raised): the render fails, the daemon stays.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import syncer
from syncer.errors import Problem, RenderError, RenderTooLarge, SourceError, SyncerError
from syncer.model import Manifest
from syncer.sources.helm import HelmSettings
from syncer.sources.limits import MiB, RenderLimits
from syncer.sources.render import render
from syncer.sources.snapshot import Snapshot

log = logging.getLogger(__name__)

RECYCLE_BYTES = 64 * MiB
"""A worker that grew by more than this during a render exits after answering."""
CHUNK_BYTES = 4 * 1024 * 1024
"""The manifests come back in pickled chunks of about this size, so the daemon never holds a
whole render's bytes besides the objects made from them."""
MANIFESTS, ANSWER = b"M", b"A"
"""The first byte of each message from a worker: a chunk of manifests, or the final answer."""
RENDER_TIMEOUT = 600.0
"""Seconds one render may take in a worker (each `kustomize build` in it has its own, shorter
limit, and so has each `helm template`); after that the worker is killed and the render fails."""


class Renderer(Protocol):
    """How a caller renders: in its own process (`InProcess`) or in a worker (`RenderPool`)."""

    @property
    def limits(self) -> RenderLimits: ...

    def render(self, snapshot: Snapshot, path: str, *, namespace: str, helm_settings: HelmSettings = HelmSettings(),
               warnings: list[str] | None = None) -> list[Manifest]:
        """`syncer.sources.render.render` with these limits."""
        ...


@dataclass(frozen=True)
class InProcess:
    """Renders in the calling process: the CLI, which exits after one render."""

    limits: RenderLimits = RenderLimits()

    def render(self, snapshot: Snapshot, path: str, *, namespace: str, helm_settings: HelmSettings = HelmSettings(),
               warnings: list[str] | None = None) -> list[Manifest]:
        return render(snapshot, path, namespace=namespace, limits=self.limits, helm_settings=helm_settings,
                      warnings=warnings)


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    requests: Connection
    answers: Connection

    def stop(self, *, kill: bool = False) -> None:
        """Close its pipes (a worker exits when its request pipe closes), or kill it with
        whatever it started (Kustomize) when it is stuck in a render."""
        if kill:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                pass
        self.requests.close()
        self.answers.close()
        try:
            self.process.wait(timeout=None if kill else 10)
        except subprocess.TimeoutExpired:
            self.stop(kill=True)


class RenderPool:
    """See the module docstring. At most `workers` renders run at once; more wait."""

    def __init__(self, *, workers: int = 2, limits: RenderLimits = RenderLimits(),
                 recycle_bytes: int = RECYCLE_BYTES, timeout: float = RENDER_TIMEOUT) -> None:
        if workers < 1:
            raise ValueError("a render pool needs at least one worker")
        self._limits = limits
        self._recycle_bytes = recycle_bytes
        self._timeout = timeout
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closed = False
        self.started = 0
        """Workers started so far (a recycled worker is replaced by a new one)."""
        with self._lock:
            self._idle += [self._start() for _ in range(workers)]

    @property
    def limits(self) -> RenderLimits:
        return self._limits

    def pids(self) -> list[int]:
        """The workers' process ids, for measuring their memory."""
        with self._lock:
            return [worker.process.pid for worker in [*self._idle, *self._busy]]

    def render(self, snapshot: Snapshot, path: str, *, namespace: str, helm_settings: HelmSettings = HelmSettings(),
               warnings: list[str] | None = None) -> list[Manifest]:
        with self._slots:
            worker = self._checkout()
            try:
                answer = self._ask(worker, snapshot=replace(snapshot, tree_of=None), path=path, namespace=namespace,
                                   helm_settings=helm_settings)
            except BaseException:
                self._discard(worker, kill=True)
                raise
            self._checkin(worker, retire=bool(answer.get("retire")))
        if warnings is not None:
            warnings.extend(answer.get("warnings") or [])
        return _result(answer)

    def close(self) -> None:
        """Stop the idle workers now, and each busy one as soon as its render ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()

    def _ask(self, worker: _Worker, *, snapshot: Snapshot, path: str, namespace: str,
             helm_settings: HelmSettings) -> dict[str, Any]:
        try:
            worker.requests.send({"snapshot": snapshot, "path": path, "namespace": namespace,
                                  "helm_settings": helm_settings,
                                  "limits": self._limits, "recycle_bytes": self._recycle_bytes})
            deadline = time.monotonic() + self._timeout
            manifests: list[Manifest] = []
            while True:
                if not worker.answers.poll(max(0.0, deadline - time.monotonic())):
                    raise RenderError([Problem(path or ".", f"the render took longer than {self._timeout:.0f}s; "
                                                            "it was stopped")])
                message = worker.answers.recv_bytes()
                if message[:1] == MANIFESTS:
                    manifests += _unpickle_all(message[1:])
                    continue
                answer: dict[str, Any] = pickle.loads(message[1:])
                if "manifests" in answer:
                    answer["manifests"] = manifests
                return answer
        except (EOFError, OSError):
            code = worker.process.wait()
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            hint = " (out of memory?)" if code == -signal.SIGKILL else ""
            raise RenderError([Problem(path or ".", f"the render worker {how}{hint} while rendering it")]) from None

    def _checkout(self) -> _Worker:
        with self._lock:
            worker = self._idle.pop() if self._idle else self._start()
            self._busy.add(worker)
            return worker

    def _checkin(self, worker: _Worker, *, retire: bool) -> None:
        with self._lock:
            self._busy.discard(worker)
            keep = not retire and not self._closed
            if keep:
                self._idle.append(worker)
            elif not self._closed:
                self._idle.append(self._start())  # started now, ready when the next render comes
        if not keep:
            worker.stop()

    def _discard(self, worker: _Worker, *, kill: bool) -> None:
        with self._lock:
            self._busy.discard(worker)
        worker.stop(kill=kill)

    def _start(self) -> _Worker:
        requests_read, requests_write = os.pipe()
        answers_read, answers_write = os.pipe()
        environment = dict(os.environ)
        # The worker imports the very syncer the daemon runs, installed or not.
        home = str(Path(syncer.__file__).resolve().parents[1])
        environment["PYTHONPATH"] = os.pathsep.join([home, *filter(None, [environment.get("PYTHONPATH")])])
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "syncer.sources.renderpool", str(answers_write)],
                stdin=requests_read, stdout=subprocess.DEVNULL, pass_fds=(answers_write,), env=environment,
                start_new_session=True,  # its own process group: a stuck render is killed with its Kustomize
            )
        finally:
            os.close(requests_read)
            os.close(answers_write)
        self.started += 1
        return _Worker(process=process, requests=Connection(requests_write, readable=False),
                       answers=Connection(answers_read, writable=False))


def _result(answer: dict[str, Any]) -> list[Manifest]:
    """The worker's answer as the render's result or its error, as `render` would raise it."""
    if "manifests" in answer:
        manifests: list[Manifest] = answer["manifests"]
        return manifests
    if "problems" in answer:
        problems = [Problem(where, message) for where, message in answer["problems"]]
        if answer.get("bound"):
            raise RenderTooLarge(problems, bound=answer["bound"], limit=answer["limit"])
        raise RenderError(problems)
    if "source_error" in answer:
        raise SourceError(answer["source_error"])
    raise RenderError([Problem(".", f"internal error in the render worker: {answer.get('internal_error')}")])


# -- the worker ----------------------------------------------------------------------------------

def _answer(request: dict[str, Any]) -> dict[str, Any]:
    warnings: list[str] = []
    try:
        manifests = render(request["snapshot"], request["path"], namespace=request["namespace"],
                           limits=request["limits"], helm_settings=request["helm_settings"], warnings=warnings)
    except RenderError as error:
        answer: dict[str, Any] = {"problems": [(problem.where, problem.message) for problem in error.problems]}
        if isinstance(error, RenderTooLarge):
            answer.update(bound=error.bound, limit=error.limit)
        return answer
    except SyncerError as error:
        return {"source_error": str(error)}
    except Exception as error:  # a bug: reported as a failed render, and the worker goes on
        log.exception("render of %s failed", request.get("path"))
        return {"internal_error": repr(error)}
    return {"manifests": manifests, "warnings": warnings}


def _send_manifests(answers: Connection, manifests: list[Manifest]) -> None:
    chunk = io.BytesIO()
    chunk.write(MANIFESTS)
    for manifest in manifests:
        pickle.dump(manifest, chunk, protocol=pickle.HIGHEST_PROTOCOL)
        if chunk.tell() >= CHUNK_BYTES:
            answers.send_bytes(chunk.getbuffer())
            chunk = io.BytesIO()
            chunk.write(MANIFESTS)
    if chunk.tell() > 1:
        answers.send_bytes(chunk.getbuffer())


def _unpickle_all(data: bytes) -> list[Manifest]:
    stream = io.BytesIO(data)
    found: list[Manifest] = []
    while stream.tell() < len(data):
        found.append(pickle.load(stream))
    return found


def resident_bytes() -> int:
    """This process's resident memory now (VmRSS), in bytes; 0 where /proc has no answer."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def serve(answers_fd: int) -> None:
    """A worker's life: answer render requests from stdin until it closes, or until a render
    left this process larger than the request's `recycle_bytes`."""
    try:
        with open("/proc/self/oom_score_adj", "w") as adjust:
            adjust.write("1000")
    except OSError:
        pass
    requests = Connection(0, writable=False)
    answers = Connection(answers_fd, readable=False)
    started = resident_bytes()
    while True:
        try:
            request = requests.recv()
        except (EOFError, OSError):
            return
        answer = _answer(request)
        answer["retire"] = resident_bytes() - started > request["recycle_bytes"]
        try:
            if "manifests" in answer:
                _send_manifests(answers, answer["manifests"])
                answer["manifests"] = []
            answers.send_bytes(ANSWER + pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            return
        if answer["retire"]:
            return
        del answer


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="render worker: %(levelname)s %(message)s")
    serve(int(sys.argv[1]))
