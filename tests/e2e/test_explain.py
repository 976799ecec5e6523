"""Why each field differs, as `syncer diff` and `syncer sync` tell it, against a real API server:
one case per cause, made the way users make them (kubectl 1.32 edit and scale, a controller's
write, a change to Git), read back from the JSON document, the text and the exit code."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from syncer.cli import cli
from syncer.kube import Kube
from tests.conftest import ClusterAccess
from tests.e2e.apps import eventually, write_app
from tests.e2e.test_diff import deployment
from tests.e2e.versions import release
from tests.schema import assert_valid

pytestmark = pytest.mark.oldest

def manifest(*, image: str = "nginx:1.25", label: str = ", tier: frontend") -> str:
    return deployment(image=image, extra_label=label)


class Cluster:
    """kubectl (the installed 1.32) and syncer's CLI against the test's cluster and app."""

    def __init__(self, access: ClusterAccess, app: Path, namespace: str) -> None:
        self.access, self.app, self.namespace = access, app, namespace

    def kubectl(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.access.kubeconfig), "--context", self.access.context,
             "-n", self.namespace, *args],
            capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def syncer(self, command: str, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, [
            command, "--repo", str(self.app), "--name", "explain", "--namespace", self.namespace,
            "--kubeconfig", str(self.access.kubeconfig), "--context", self.access.context, *args])
        assert result.exit_code in (0, 1) or command == "sync", result.output
        return result.exit_code, result.stdout

    def document(self, command: str, *args: str) -> tuple[int, dict[str, Any]]:
        code, stdout = self.syncer(command, *args, "-o", "json")
        report = json.loads(stdout)
        assert_valid(report, kind="Diff" if command == "diff" else "Sync")
        return code, report

    def deployment_controller_caught_up(self) -> None:
        """Wait until the Deployment controller has acted on the Deployment's current spec. Its
        writes (the revision annotation, then the status) are a foreign manager's fields, and
        one landing between `diff` and `sync` would make their explanations differ."""
        def caught_up() -> bool:
            live = json.loads(self.kubectl("get", "deployment", "web", "-o", "json"))
            return bool(live["status"].get("observedGeneration") == live["metadata"]["generation"]
                        and "deployment.kubernetes.io/revision" in live["metadata"].get("annotations", {}))

        eventually(caught_up, timeout=60, interval=0.2,
                   what=f"the Deployment controller to act on deployment/web in {self.namespace}")

    def entry_time(self, manager: str) -> str | None:
        """The time of `manager`'s managedFields entry: None where the server records none
        (an update through the scale subresource, as of 1.37)."""
        live = json.loads(self.kubectl("get", "deployment", "web", "-o", "json", "--show-managed-fields"))
        entry = next(e for e in live["metadata"]["managedFields"] if e["manager"] == manager)
        return str(entry["time"]) if "time" in entry else None


def edit_image(cluster: Cluster) -> None:
    """`kubectl edit`, with an editor that changes the image."""
    cluster.kubectl("edit", "deployment", "web", env={"KUBE_EDITOR": "sed -i s/nginx:1.25/nginx:hacked/"})


def scale(cluster: Cluster) -> None:
    cluster.kubectl("scale", "deployment", "web", "--replicas=3")


def controller_annotates(cluster: Cluster) -> None:
    """A controller's write of a field Git does not set, with its own field manager."""
    cluster.kubectl("annotate", "deployment", "web", "example.com/seen=yes", "--field-manager=example-controller")


@dataclass(frozen=True)
class Case:
    cluster_change: Callable[[Cluster], None] | None = None
    git: str | None = None
    """The manifest after the sync, when Git changes."""
    exit_code: int = 1
    fields: list[dict[str, Any]] = field(default_factory=list)
    """Expected among the object's fields; `"time": manager`: that manager's entry time, when
    the server records one."""
    lines: list[str] = field(default_factory=list)
    """Expected in `syncer diff`'s text under the object's header."""
    verbose_lines: list[str] = field(default_factory=list)
    """Expected in the text with -v only."""
    before_1_21: Case | None = None
    """What a server before 1.21 says instead: it records no owner for a write through the
    scale subresource (kubernetes#82046, fixed in 1.21 by kubernetes#98377)."""


IMAGE = ".spec.template.spec.containers[0].image"
CASES = {
    "kubectl-edit-is-drift": Case(
        cluster_change=edit_image,
        fields=[{"path": IMAGE, "cause": "drift", "manager": "kubectl-edit", "time": "kubectl-edit",
                 "takesOver": True}],
        lines=[f"  {IMAGE}  drift: kubectl-edit at <kubectl-edit>, takes over {IMAGE} from kubectl-edit"]),
    "kubectl-scale-is-drift": Case(
        cluster_change=scale,
        fields=[{"path": ".spec.replicas", "cause": "drift", "manager": "kubectl", "time": "kubectl",
                 "takesOver": True}],
        lines=["  .spec.replicas  drift: kubectl at <kubectl>, takes over .spec.replicas from kubectl"],
        before_1_21=Case(cluster_change=scale, fields=[{"path": ".spec.replicas", "cause": "git"}],
                         lines=["  .spec.replicas  git"])),
    "server-defaults-are-no-change": Case(exit_code=0),
    "git-change": Case(
        git=manifest(image="nginx:1.27"),
        fields=[{"path": IMAGE, "cause": "git"},
                {"path": ".spec.strategy", "cause": "default"},
                {"path": ".spec.template.spec.containers[0].imagePullPolicy", "cause": "default"}],
        lines=[f"  {IMAGE}  git"],
        verbose_lines=["  .spec.strategy  default (not a change)"]),
    "controller-field-is-foreign": Case(
        cluster_change=controller_annotates, git=manifest(image="nginx:1.27"),
        fields=[{"path": IMAGE, "cause": "git"},
                {"path": '.metadata.annotations["example.com/seen"]', "cause": "foreign",
                 "manager": "example-controller", "time": "example-controller"}],
        lines=[f"  {IMAGE}  git"],
        verbose_lines=['  .metadata.annotations["example.com/seen"]  foreign: example-controller at '
                       '<example-controller> (not a change)']),
    "field-dropped-from-git-is-removed": Case(
        git=manifest(label=""),
        fields=[{"path": ".metadata.labels.tier", "cause": "removed"}],
        lines=["  .metadata.labels.tier  removed"]),
}


def field_lines(text: str) -> set[str]:
    """The lines between the Deployment's header and its unified diff, with the padding that
    aligns the causes collapsed to two spaces."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("~ apps/v1 Deployment")) + 1
    end = next(i for i, line in enumerate(lines) if i >= start and line.startswith("--- "))
    return {"  " + re.sub(r" {2,}", "  ", line.strip(), count=1) for line in lines[start:end]}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_field_says_why_it_differs(
    case: Case, cluster: ClusterAccess, kube: Kube, tmp_path: Path, namespace: str
) -> None:
    if case.before_1_21 is not None and release(kube)[:2] < (1, 21):
        case = case.before_1_21
    app = write_app(tmp_path / "app", {"web.yaml": manifest()})
    target = Cluster(cluster, app, namespace)
    assert target.syncer("sync")[0] == 0
    target.deployment_controller_caught_up()
    if case.cluster_change is not None:
        case.cluster_change(target)
        target.deployment_controller_caught_up()
        if case.git is not None:
            assert target.document("diff")[0] == 0, "a field only another manager sets is no change"
    if case.git is not None:
        write_app(app, {"web.yaml": case.git})

    code, report = target.document("diff")
    assert (code, report["hasChanges"]) == (case.exit_code, case.exit_code == 1)
    if case.exit_code == 0:
        assert report["changes"] == []
        return
    [web] = report["changes"]
    times = {f["time"]: target.entry_time(f["time"]) for f in case.fields if "time" in f}
    want = [{k: times[v] if k == "time" else v for k, v in f.items() if k != "time" or times[v] is not None}
            for f in case.fields]
    for expected in want:
        assert expected in web["fields"], (expected, web["fields"])
    counted = [f for f in web["fields"] if f["cause"] in ("git", "drift", "removed")]
    assert counted == [f for f in want if f["cause"] in ("git", "drift", "removed")], "one change, the case's own"

    def shown(lines: list[str]) -> set[str]:
        text = lines
        for manager, time in times.items():
            text = [line.replace(f" at <{manager}>", f" at {time}" if time else "") for line in text]
        return set(text)

    _, text = target.syncer("diff")
    assert field_lines(text) == shown(case.lines), text
    _, verbose = target.syncer("diff", "-v")
    assert shown(case.lines + case.verbose_lines) <= field_lines(verbose), verbose

    # sync --dry-run and sync read the same explanation, and say it before the write
    for args in (("--dry-run",), ()):
        sync_code, synced = target.document("sync", *args)
        assert sync_code == 0, synced
        [change] = [c for c in synced["changes"] if c["kind"] == "Deployment"]
        assert (change["action"], change["fields"]) == ("configured", web["fields"])
    assert target.document("diff")[0] == 0, "after the sync nothing is left to explain"
