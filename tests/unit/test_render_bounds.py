"""The per-app bounds of a render (issue 20, report 8): bytes and objects, counted while the
files are read, so that reading stops at the bound instead of loading everything first."""

from __future__ import annotations

import os
import stat
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import syncer.cli.render  # noqa: F401  (registers the command)
from syncer.cli import cli
from syncer.cli.options import parse_size
from syncer.config import AppConfig
from syncer.daemon.appstatus import Observation, app_status, condition_status
from syncer.daemon.metrics import Metrics
from syncer.daemon.reconciler import AppReconciler
from syncer.errors import RenderError, RenderTooLarge
from syncer.sources import RenderLimits, Snapshot, render
from syncer.sources.limits import MiB, object_count
from syncer.sources.renderpool import InProcess
from tests.unit.fakes import FakeKube

CONFIGMAP = """\
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm{n}
data:
  key: value
"""
"""Seven lines: document n starts at line 7n + 1 (its `---`), its mapping at line 7n + 2."""


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def snapshot_of(root: Path) -> Snapshot:
    return Snapshot(revision="working-tree", root=root, repo=str(root))


def refused(root: Path, **limits: int | float) -> RenderTooLarge:
    with pytest.raises(RenderTooLarge) as excinfo:
        render(snapshot_of(root), limits=RenderLimits(**limits))  # type: ignore[arg-type]
    return excinfo.value


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


# -- objects --------------------------------------------------------------------------------


def test_the_object_bound_stops_at_the_first_document_past_it(repo: Path) -> None:
    write(repo, "many.yaml", "".join(CONFIGMAP.format(n=n) for n in range(50)))
    # The 11th document is malformed: reading went on past the bound only if it is reported.
    text = (repo / "many.yaml").read_text().replace("name: cm12", "name: [cm12")
    (repo / "many.yaml").write_text(text)

    error = refused(repo, max_objects=10)

    assert (error.bound, error.limit) == ("objects", 10)
    assert [str(problem) for problem in error.problems] == [
        "many.yaml:72: more than 10 objects; the limit per app is 10 objects (raise it with --max-objects, "
        "or render a narrower path)"]
    assert str(error) == str(error.problems[0])


def test_a_list_is_stopped_at_the_item_past_the_bound_before_the_list_is_read_to_its_end(repo: Path) -> None:
    items = "".join(f"- {{apiVersion: v1, kind: ConfigMap, metadata: {{name: cm{n}}}}}\n" for n in range(1000))
    write(repo, "list.yaml", "apiVersion: v1\nkind: List\nitems:\n" + items + "- [unclosed\n")

    error = refused(repo, max_objects=10)

    # Line 14 holds item 11: the bound was passed in the middle of the one document, and the
    # syntax error at its end was never reached.
    assert [problem.where for problem in error.problems] == ["list.yaml:14"]


def test_objects_are_counted_as_validation_flattens_them(repo: Path) -> None:
    nested = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMapList", "items": [{"kind": "ConfigMap"}] * 3},
        {"apiVersion": "v1", "kind": "ConfigMap"},
        {"apiVersion": "v1", "kind": "List"},
    ]}
    assert object_count(nested) == 4
    assert object_count({"kind": "Foo", "items": [1, 2]}) == 1  # not a List kind: one object
    # `kind` after `items`: counted once the document is read, not while.
    write(repo, "late-kind.yaml", "items:\n" + "".join(
        f"- {{apiVersion: v1, kind: ConfigMap, metadata: {{name: cm{n}}}}}\n" for n in range(4)) + "kind: List\n")
    write(repo, "one.json", '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "json"}}')

    assert len(render(snapshot_of(repo), limits=RenderLimits(max_objects=5))) == 5
    error = refused(repo, max_objects=4)
    assert [problem.where for problem in error.problems] == ["one.json:1"]
    error = refused(repo, max_objects=3)
    assert [problem.where for problem in error.problems] == ["late-kind.yaml:1"]


# -- bytes ----------------------------------------------------------------------------------


def test_the_byte_bound_refuses_before_any_file_is_read(repo: Path) -> None:
    write(repo, "a.yaml", CONFIGMAP.format(n=1))
    write(repo, "b/broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n")
    write(repo, "b/padding.yaml", "# " + "x" * 4000 + "\n")
    total = sum(path.stat().st_size for path in repo.rglob("*.yaml"))

    error = refused(repo, max_total_bytes=4000)

    # Nothing was parsed: the broken file's problem is not among them.
    assert (error.bound, error.limit) == ("bytes", 4000)
    assert [str(problem) for problem in error.problems] == [
        f"path .: the files to render add up to {total} bytes ({total / 1024:.4g} KiB); the limit per app is "
        "4000 bytes (3.906 KiB) of manifests (raise it with --max-render-bytes, or render a narrower path)"]
    assert len(render(snapshot_of(repo), "a.yaml", limits=RenderLimits(max_total_bytes=4000))) == 1


def test_a_kustomize_that_never_stops_writing_is_stopped_at_the_bound(repo: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Kustomize's output is counted while it arrives: reading it whole first would never end."""
    bin_dir = tmp_path / "bin"
    endless = write(bin_dir, "kustomize", textwrap.dedent("""\
        #!/bin/sh
        n=0
        while :; do
          printf -- '---\\napiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: cm%s\\n' "$n"
          n=$((n + 1))
        done
        """))
    endless.chmod(endless.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    write(repo, "kustomization.yaml", "resources: []\n")
    started = time.monotonic()

    error = refused(repo, max_total_bytes=2 * MiB, kustomize_timeout=60.0)

    assert time.monotonic() - started < 50  # stopped at the bound, not by the timeout
    assert error.bound == "bytes"
    assert [problem.where for problem in error.problems] == [". (kustomize output)"]
    assert "the render reads more than that; the limit per app is 2097152 bytes (2 MiB)" in str(error)


def test_other_limits_stay_problems_of_the_files(repo: Path) -> None:
    """An alias bomb is a broken file, not an app too large: it is not RenderTooLarge."""
    write(repo, "bomb.yaml", "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                             "c: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n")
    with pytest.raises(RenderError) as excinfo:
        render(snapshot_of(repo), limits=RenderLimits(max_nodes=500))
    assert not isinstance(excinfo.value, RenderTooLarge)


@pytest.mark.parametrize(("text", "size"), [
    ("64Mi", 64 * MiB), ("1Gi", 1024 * MiB), ("100M", 100_000_000), ("10k", 10_000), ("4096", 4096), (" 2Ki ", 2048),
])
def test_sizes_are_read_as_kubernetes_quantities(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["64MB", "1.5Gi", "-1", "", "Mi"])
def test_other_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


# -- the daemon's answer: a Stalled App that names the App, the bound and the flag ------------


def test_an_app_past_a_bound_is_stalled_with_a_message_that_says_how_to_raise_it(repo: Path) -> None:
    write(repo, "many.yaml", "".join(CONFIGMAP.format(n=n) for n in range(3)))
    app = AppConfig(name="big", repo=str(repo), namespace="team-a", where="App/team-a/big")
    reconciler = AppReconciler(app, kube=FakeKube(), metrics=Metrics(()),
                               renderer=InProcess(RenderLimits(max_objects=2)))

    step = reconciler.step()

    assert not step.ok and step.attempt is not None
    assert step.attempt.stalled == "RenderTooLarge"
    status = app_status({}, Observation(1, outcome=step.attempt), now="t1")
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions == {"Ready": ("False", "RenderTooLarge"), "Reconciling": ("False", "RenderTooLarge"),
                          "Stalled": ("True", "RenderTooLarge")}
    message = next(c["message"] for c in status["conditions"] if c["type"] == "Stalled")
    assert message == ("App/team-a/big: revision working-tree: many.yaml:16: more than 2 objects; the limit per app "
                       "is 2 objects (raise it with --max-objects, or render a narrower path)")
    assert condition_status(status, "Ready") == "False"
    assert status["lastSync"]["error"] == message


# -- the CLI: the same bounds, the same flags -----------------------------------------------


def test_the_cli_takes_the_bounds_as_flags(repo: Path) -> None:
    write(repo, "many.yaml", "".join(CONFIGMAP.format(n=n) for n in range(3)))

    def run(*flags: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, ["render", "--repo", str(repo), *flags])
        return result.exit_code, result.stderr

    assert run()[0] == 0
    code, stderr = run("--max-objects", "2")
    assert code == 2 and "more than 2 objects; the limit per app is 2 objects (raise it with --max-objects" in stderr
    code, stderr = run("--max-render-bytes", "100")
    assert code == 2 and "the limit per app is 100 bytes" in stderr
    code, stderr = run("--max-render-bytes", "64MB")
    assert code == 2 and "'64MB' is not a size" in stderr
