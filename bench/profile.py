"""Profiling syncer with py-spy, and a plain-text summary of where its CPU time goes.

py-spy samples the thread holding the GIL (`--gil`), so a sample is Python CPU time; time spent
waiting for the API server holds no GIL and does not show. Set against the command's wall and
CPU time, that separates "the server is slow" from "our Python is slow". The raw output is
collapsed stacks (`frame;frame;... count` per line), which speedscope and flamegraph.pl read.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("start-up (imports)", ("<frozen importlib._bootstrap",)),
    ("diff text (YAML dump, difflib)", ("syncer/diff/text.py",)),
    ("render (Git export, YAML)", ("syncer/sources/", "yaml/")),
    ("diff and proof (normalise, compare)", ("syncer/diff/",)),
    ("JSON decoding", ("json/decoder.py", "json/__init__.py")),
    ("HTTP client (kubernetes, urllib3, ssl)", ("kubernetes/client/", "urllib3/", "ssl.py", "http/client.py")),
    ("thread pool and locks", ("concurrent/futures/", "threading.py")),
)
"""Where a sample is charged: the first category (in this order) any frame of its stack
matches, so imports win over everything they run, and the YAML dumping of `diff text` is
not mistaken for the YAML loading of `render`."""


@dataclass(frozen=True)
class Stack:
    frames: tuple[str, ...]
    """Outermost first, as py-spy writes them: `function (file:line)`."""
    samples: int


def parse_collapsed(lines: Iterable[str]) -> list[Stack]:
    """py-spy's raw format: one `frame;frame;...;frame count` per line."""
    stacks = []
    for line in lines:
        text, _, count = line.rstrip("\n").rpartition(" ")
        if not text or not count.isdigit():
            continue
        stacks.append(Stack(tuple(text.split(";")), int(count)))
    return stacks


def categorize(stacks: Sequence[Stack]) -> dict[str, int]:
    """Samples per category (see CATEGORIES); `other` for the rest."""
    totals: Counter[str] = Counter()
    for stack in stacks:
        label = next(
            (name for name, needles in CATEGORIES
             if any(needle in frame for frame in stack.frames for needle in needles)),
            "other",
        )
        totals[label] += stack.samples
    return dict(totals.most_common())


def top_frames(stacks: Sequence[Stack], *, within: str = "syncer/", limit: int = 12) -> list[tuple[str, int]]:
    """The functions of `within` (a path fragment) with the most samples inclusive of what
    they call, each counted once per stack; module bodies (imports) are left out, the
    `start-up` category already has them."""
    inclusive: Counter[str] = Counter()
    for stack in stacks:
        for frame in set(stack.frames):
            if within in frame and not frame.startswith("<module>"):
                inclusive[frame] += stack.samples
    return inclusive.most_common(limit)


def summary(stacks: Sequence[Stack], *, title: str) -> str:
    total = sum(stack.samples for stack in stacks) or 1
    lines = [f"{title}: {total} samples of Python CPU (GIL held)", "", "by category:"]
    lines += [f"  {100 * count / total:5.1f}%  {name}" for name, count in categorize(stacks).items()]
    lines += ["", "syncer functions (inclusive):"]
    lines += [f"  {100 * count / total:5.1f}%  {frame}" for frame, count in top_frames(stacks)]
    return "\n".join(lines) + "\n"


def find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def py_spy_argv(py_spy: str, *, output: Path, command: Sequence[str], rate: int = 250) -> list[str]:
    """py-spy record, sampling only the GIL holder, without pausing the process for each
    sample (`--nonblocking`: a little less exact, far less slowdown)."""
    return [py_spy, "record", "--gil", "--nonblocking", "--rate", str(rate), "--format", "raw",
            "--output", str(output), "--", *command]
