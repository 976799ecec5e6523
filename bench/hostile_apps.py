"""`python -m bench.hostile_apps`: the daemon's memory under hostile Apps (issue 20, report 8).

    python -m bench.hostile_apps                                   # this checkout's syncer
    python -m bench.hostile_apps --syncer-root /tmp/syncer-main --label before

On a local control plane of its own (etcd, kube-apiserver, kube-controller-manager 1.20),
one `syncer run` serves three Apps, each in a namespace of its own, from one Git repository:

    huge-a, huge-b   a path of 99 MB each: 10 files of 9.9 MB, each 150 ConfigMaps of 66 KB
                     (under the old 100 MiB limit, over the new 64 MiB bound)
    many             20,000 small ConfigMaps in 20 files (the old limit's most; over the new
                     10,000 objects)

Phases: `idle` (no Apps, 10 s), `hostile` (the three Apps created at once, until each has an
outcome for the commit: Ready, Stalled or failed), `deleted` (the Apps deleted, 30 s later),
`objects deleted` (their namespaces too, 60 s later). The daemon and every process it started
(its render workers, git, kustomize) are sampled every 0.2 s from /proc: the daemon's own
VmHWM (exact), the highest VmHWM seen of any of its children, the highest sum of the tree's
VmRSS seen, and the VmRSS at the end of each phase. Results go to
`bench/results-hostile-apps-LABEL.json`; RESULTS.md has the recorded numbers.

Runs take minutes (the old daemon applies 23,000 objects, 200 MB of them): run it under the
machine's control-plane lock, `flock /tmp/syncer-controlplane.lock python -m bench.hostile_apps`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml
from kubernetes import client as k8s, config as k8s_config

from syncer.devcluster.controlplane import ControlPlane
from syncer.devcluster.processes import free_ports

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
CRD_FILE = REPO_ROOT / "examples" / "deploy" / "crd.yaml"
GROUP, VERSION, PLURAL = "syncer.dev", "v1alpha1", "apps"
MiB = 1024 * 1024

HUGE_FILES, HUGE_OBJECTS_PER_FILE, HUGE_VALUE_BYTES = 10, 150, 66_000
MANY_FILES, MANY_OBJECTS_PER_FILE = 20, 1_000
APPS = {"huge-a": "huge-a", "huge-b": "huge-b", "many": "many"}
"""App (and its namespace) -> its path in the repository."""


# -- the repository ---------------------------------------------------------------------------


def huge_file(index: int) -> str:
    value = "x" * (HUGE_VALUE_BYTES // 6)
    return "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: huge-{index}-{n}\ndata:\n"
        + "".join(f"  k{key}: {value}\n" for key in range(6))
        for n in range(HUGE_OBJECTS_PER_FILE))


def many_file(index: int) -> str:
    return "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: many-{index}-{n}\ndata:\n  color: blue\n"
        for n in range(MANY_OBJECTS_PER_FILE))


def make_repository(root: Path) -> tuple[str, dict[str, int]]:
    """The repository and its commit; the size in bytes of each App's path."""
    sizes: dict[str, int] = {}
    for path in ("huge-a", "huge-b"):
        (root / path).mkdir(parents=True)
        for index in range(HUGE_FILES):
            (root / path / f"part-{index:02d}.yaml").write_text(huge_file(index))
    (root / "many").mkdir()
    for index in range(MANY_FILES):
        (root / "many" / f"part-{index:02d}.yaml").write_text(many_file(index))
    for path in APPS.values():
        sizes[path] = sum(file.stat().st_size for file in (root / path).iterdir())
    git = ["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "hostile Apps"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    return head, sizes


# -- sampling the daemon's process tree ---------------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {line.split(":")[0]: int(line.split()[1]) * 1024 for line in text.splitlines()
            if line.startswith(("VmRSS:", "VmHWM:"))}


def _children(pid: int) -> list[int]:
    """Every descendant of `pid`, from the parent field of /proc/*/stat."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, of in parents.items() if of == parent]
        found += kids
        frontier += kids
    return found


@dataclass
class Sampler:
    pid: int
    daemon_rss_peak: int = 0
    tree_rss_peak: int = 0
    child_hwm_peak: int = 0
    children_seen: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def now(self) -> dict[str, int]:
        daemon = _status(self.pid)
        children = [_status(child) for child in _children(self.pid)]
        return {"daemon_rss": daemon.get("VmRSS", 0), "daemon_hwm": daemon.get("VmHWM", 0),
                "children": len(children), "children_rss": sum(child.get("VmRSS", 0) for child in children)}

    def _run(self) -> None:
        while not self._stop.is_set():
            daemon = _status(self.pid)
            tree = daemon.get("VmRSS", 0)
            for child in _children(self.pid):
                status = _status(child)
                self.children_seen.add(child)
                tree += status.get("VmRSS", 0)
                self.child_hwm_peak = max(self.child_hwm_peak, status.get("VmHWM", 0))
            self.daemon_rss_peak = max(self.daemon_rss_peak, daemon.get("VmRSS", 0))
            self.tree_rss_peak = max(self.tree_rss_peak, tree)
            time.sleep(0.2)


# -- the run ------------------------------------------------------------------------------------


def _outcome(obj: dict[str, Any], head: str) -> str | None:
    """The App's answer for the commit: `Ready`, `Stalled (reason)`, `Failed`, or None yet."""
    status = obj.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    ready, stalled = conditions.get("Ready", {}), conditions.get("Stalled", {})
    if status.get("lastAttemptedRevision") != head:
        return None
    if ready.get("status") == "True":
        return "Ready"
    if stalled.get("status") == "True":
        return f"Stalled ({stalled.get('reason')}): {stalled.get('message', '')[:300]}"
    if (status.get("lastSync") or {}).get("result") == "Failed":
        return f"Failed: {(status.get('lastSync') or {}).get('error', '')[:300]}"
    return None


def _mb(count: int) -> float:
    return round(count / MiB, 1)


def run(*, syncer_root: Path, label: str, timeout: float, workdir: Path) -> dict[str, Any]:
    head, sizes = make_repository(workdir / "repo")
    click.echo(f"repository ready: {', '.join(f'{path} {_mb(size)} MiB' for path, size in sizes.items())}")
    results: dict[str, Any] = {"label": label, "syncer_root": str(syncer_root), "paths_bytes": sizes,
                               "machine": {"nproc": os.cpu_count(), "load_average_at_start": os.getloadavg()}}
    with ControlPlane() as plane:
        api = k8s_config.new_client_from_config(config_file=str(plane.kubeconfig))  # type: ignore[no-untyped-call]
        k8s.ApiextensionsV1Api(api).create_custom_resource_definition(yaml.safe_load(CRD_FILE.read_text()))
        core, custom = k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)
        for namespace in APPS:
            core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the CRD served
            try:
                custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
                break
            except k8s.ApiException:
                time.sleep(0.5)
        (port,) = free_ports(1)
        env = {key: value for key, value in os.environ.items() if key not in ("KUBECONFIG", "PYTHONPATH")}
        env["PYTHONPATH"] = str(syncer_root)
        log = (workdir / "syncer-run.log").open("wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "syncer", "run", "--listen", f"127.0.0.1:{port}", "--kubeconfig",
             str(plane.kubeconfig), "--cache-dir", str(workdir / "cache"), "--allow-local-repos"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
        sampler = Sampler(daemon.pid)
        sampler.start()
        phases: dict[str, Any] = {}
        try:
            time.sleep(10)
            phases["idle"] = sampler.now()
            started = time.monotonic()
            for name, path in APPS.items():
                custom.create_namespaced_custom_object(GROUP, VERSION, name, PLURAL, {
                    "apiVersion": f"{GROUP}/{VERSION}", "kind": "App", "metadata": {"name": name},
                    "spec": {"repo": str(workdir / "repo"), "revision": "main", "path": path, "interval": "10m"}})
            outcomes: dict[str, str] = {}
            while len(outcomes) < len(APPS) and time.monotonic() - started < timeout and daemon.poll() is None:
                for name in APPS:
                    app: Any = custom.get_namespaced_custom_object(GROUP, VERSION, name, PLURAL, name)
                    found = _outcome(app, head)
                    if found is not None and name not in outcomes:
                        outcomes[name] = found
                        click.echo(f"  {name}: {found[:160]} ({time.monotonic() - started:.0f} s)")
                time.sleep(1)
            phases["hostile"] = {**sampler.now(), "seconds": round(time.monotonic() - started, 1),
                                 "outcomes": outcomes, "daemon_exited": daemon.poll()}
            for name in APPS:
                custom.delete_namespaced_custom_object(GROUP, VERSION, name, PLURAL, name)
            time.sleep(30)
            phases["deleted"] = sampler.now()
            for name in APPS:
                core.delete_namespace(name)
            time.sleep(60)
            phases["objects deleted"] = sampler.now()
        finally:
            sampler.stop()
            final = _status(daemon.pid)
            daemon.terminate()
            try:
                daemon.wait(timeout=90)
            except subprocess.TimeoutExpired:
                daemon.kill()
            log.close()
    results["phases"] = phases
    results["peaks"] = {"daemon_hwm": final.get("VmHWM", 0), "daemon_rss_sampled": sampler.daemon_rss_peak,
                        "children_hwm_sampled": sampler.child_hwm_peak, "tree_rss_sampled": sampler.tree_rss_peak,
                        "children_seen": len(sampler.children_seen)}
    return results


def report(results: dict[str, Any]) -> str:
    peaks, phases = results["peaks"], results["phases"]
    lines = [f"{results['label']}: daemon VmHWM {_mb(peaks['daemon_hwm'])} MiB; highest child VmHWM "
             f"{_mb(peaks['children_hwm_sampled'])} MiB; highest tree VmRSS {_mb(peaks['tree_rss_sampled'])} MiB"]
    for name, phase in phases.items():
        lines.append(f"  {name:>16}: daemon VmRSS {_mb(phase['daemon_rss'])} MiB, {phase['children']} children "
                     f"{_mb(phase['children_rss'])} MiB" + (f", {phase['seconds']} s" if "seconds" in phase else ""))
    for name, outcome in phases.get("hostile", {}).get("outcomes", {}).items():
        lines.append(f"  {name}: {outcome[:200]}")
    return "\n".join(lines)


@click.command()
@click.option("--syncer-root", type=click.Path(file_okay=False, path_type=Path), default=REPO_ROOT,
              show_default=True, help="The checkout whose syncer runs (e.g. an export of main, for 'before').")
@click.option("--label", default="after", show_default=True, help="Names the result file.")
@click.option("--timeout", type=float, default=900.0, show_default=True,
              help="Seconds the hostile phase may take before the outcomes so far are recorded.")
@click.option("--keep", is_flag=True, help="Keep the work directory (repository, daemon log).")
def main(syncer_root: Path, label: str, timeout: float, keep: bool) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="syncer-hostile-"))
    try:
        results = run(syncer_root=syncer_root.resolve(), label=label, timeout=timeout, workdir=workdir)
    finally:
        if keep:
            click.echo(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    out = BENCH_DIR / f"results-hostile-apps-{label}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    click.echo(report(results))
    click.echo(f"written to {out}")


if __name__ == "__main__":
    main()
